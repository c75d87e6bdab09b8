// JSON accessors with clear errors, and the HF pattern / split-behaviour objects.
#include <variant>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/pattern.h"
#include "tokenizers/factory.h"

namespace lmf::tok {

const json& get_key(const json& j, std::string_view key, std::string_view where) {
  LMF_CHECK(j.is_object(), ValueError, "tokenizer.json: {} must be an object, got {}", where,
            j.type_name());
  auto it = j.find(key);
  LMF_CHECK(it != j.end(), ValueError, "tokenizer.json: {} has no key '{}'", where, key);
  return *it;
}

std::string get_string(const json& j, std::string_view key, std::string_view where) {
  const json& v = get_key(j, key, where);
  LMF_CHECK(v.is_string(), ValueError, "tokenizer.json: {}.{} must be a string, got {}", where, key,
            v.type_name());
  return v.get<std::string>();
}

bool get_bool(const json& j, std::string_view key, bool dflt) {
  if (!j.is_object()) return dflt;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  LMF_CHECK(it->is_boolean(), ValueError, "tokenizer.json: '{}' must be true or false, got {}", key,
            it->type_name());
  return it->get<bool>();
}

struct PatternSpec::Impl {
  std::variant<std::string, Regex> p;
};

PatternSpec::PatternSpec(const json& j, std::string_view where) {
  LMF_CHECK(j.is_object() && j.size() == 1, ValueError,
            "tokenizer.json: {}.pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}", where);
  if (j.contains("String") && j["String"].is_string()) {
    impl_ = std::make_unique<Impl>(Impl{j["String"].get<std::string>()});
  } else if (j.contains("Regex") && j["Regex"].is_string()) {
    impl_ = std::make_unique<Impl>(Impl{Regex(j["Regex"].get<std::string>())});
  } else {
    fail<ValueError>("tokenizer.json: {}.pattern must be {{\"String\": s}} or {{\"Regex\": r}}",
                     where);
  }
}
PatternSpec::~PatternSpec() = default;
PatternSpec::PatternSpec(PatternSpec&&) noexcept = default;

std::vector<Match> PatternSpec::find_matches(std::string_view text) const {
  if (auto* s = std::get_if<std::string>(&impl_->p)) {
    if (text.empty()) return {};
    return tok::find_matches(text, std::string_view(*s));
  }
  return std::get<Regex>(impl_->p).find_matches(text);
}

SplitBehavior split_behavior_from_json(const json& j, std::string_view where) {
  LMF_CHECK(j.is_string(), ValueError, "tokenizer.json: {}.behavior must be a string", where);
  const auto s = j.get<std::string>();
  if (s == "Removed") return SplitBehavior::Removed;
  if (s == "Isolated") return SplitBehavior::Isolated;
  if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (s == "Contiguous") return SplitBehavior::Contiguous;
  fail<ValueError>(
      "tokenizer.json: {}.behavior '{}' is not one of Removed, Isolated, "
      "MergedWithPrevious, MergedWithNext, Contiguous",
      where, s);
}

}  // namespace lmf::tok
