// Token classification as transformers' TokenClassificationPipeline: per-token softmax, special
// tokens skipped, then aggregation none | simple | first | average | max with B-/I- grouping.
#include <algorithm>
#include <cmath>

#include "heads_util.h"
#include "lmforge/core/error.h"
#include "lmforge/tasks/heads.h"
#include "lmforge/tokenizers/bpe.h"
#include "lmforge/tokenizers/unicode.h"
#include "lmforge/tokenizers/wordpiece.h"

namespace lmf::tasks {

Aggregation parse_aggregation(const std::string& name) {
  if (name == "none") return Aggregation::none;
  if (name == "simple") return Aggregation::simple;
  if (name == "first") return Aggregation::first;
  if (name == "average") return Aggregation::average;
  if (name == "max") return Aggregation::max;
  fail<ValueError>("unknown aggregation strategy '{}'; use none, simple, first, average or max",
                   name);
}

std::string aggregation_name(Aggregation a) {
  switch (a) {
    case Aggregation::none:
      return "none";
    case Aggregation::simple:
      return "simple";
    case Aggregation::first:
      return "first";
    case Aggregation::average:
      return "average";
    case Aggregation::max:
      return "max";
  }
  return "none";
}

namespace {

struct PreEntity {
  std::string word;
  std::vector<double> scores;
  size_t start = 0, end = 0, index = 0;
  bool is_subword = false;
};

size_t argmax(const std::vector<double>& v) {
  return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// HF get_tag: ("B"|"I", tag); a label without B-/I- counts as a continuation.
std::pair<char, std::string> bio_tag(const std::string& label) {
  if (label.rfind("B-", 0) == 0) return {'B', label.substr(2)};
  if (label.rfind("I-", 0) == 0) return {'I', label.substr(2)};
  return {'I', label};
}

// True when the tokenizer's model marks continuation pieces (WordPiece "##", BPE with a prefix).
bool has_subword_prefix(const tok::Tokenizer& tk) {
  if (auto* wp = dynamic_cast<const tok::WordPiece*>(&tk.model()))
    return !wp->continuing_subword_prefix().empty();
  if (auto* bpe = dynamic_cast<const tok::BPE*>(&tk.model()))
    return bpe->options().continuing_subword_prefix.has_value() &&
           !bpe->options().continuing_subword_prefix->empty();
  return false;
}

}  // namespace

TokenClassification::TokenClassification(const std::string& model_dir,
                                         const models::LoadOptions& opt)
    : HeadPipeline(model_dir, "ner", {models::EncoderHead::token_classification}, opt) {}

std::vector<TokenEntity> TokenClassification::operator()(
    std::string_view raw_text, const TokenClassificationOptions& opt) const {
  const std::string text = tok::sanitize_utf8(raw_text);
  tok::TruncationParams trunc;
  trunc.max_length = special_.model_max_length;
  if (opt.stride) {
    LMF_CHECK(opt.aggregation != Aggregation::none, ValueError,
              "ner: stride windows need an aggregation strategy (simple, first, average or max), "
              "not none: overlapping windows are merged entity by entity");
    LMF_CHECK(*opt.stride < special_.model_max_length, ValueError,
              "ner: stride {} must be less than the model's max length {} (minus the special "
              "tokens); use a smaller --stride",
              *opt.stride, special_.model_max_length);
    trunc.stride = *opt.stride;
  }
  tok::Encoding first;
  try {
    first = encode(text, std::nullopt, trunc);
  } catch (const ValueError& e) {
    fail<ValueError>(
        "ner: cannot split the text into windows of {} tokens overlapping by {} ({}); use a "
        "smaller --stride",
        special_.model_max_length, trunc.stride, e.what());
  }
  std::vector<const tok::Encoding*> windows{&first};
  if (opt.stride)
    for (const auto& o : first.overflowing) windows.push_back(&o);
  windows_ = windows.size();
  std::vector<TokenEntity> all;
  for (const auto* w : windows) {
    auto ents = window_entities(text, *w, opt);
    all.insert(all.end(), std::make_move_iterator(ents.begin()),
               std::make_move_iterator(ents.end()));
  }
  if (windows.size() < 2 || all.empty()) return all;
  // HF aggregate_overlapping_entities: sorted by start (stable); of entities overlapping the
  // kept one, the longer wins, then the higher score.
  std::stable_sort(all.begin(), all.end(),
                   [](const TokenEntity& a, const TokenEntity& b) { return a.start < b.start; });
  std::vector<TokenEntity> merged;
  TokenEntity prev = all.front();
  for (auto& e : all) {
    if (prev.start <= e.start && e.start < prev.end) {
      const size_t len = e.end - e.start, prev_len = prev.end - prev.start;
      if (len > prev_len || (len == prev_len && e.score > prev.score)) prev = e;
    } else {
      merged.push_back(std::move(prev));
      prev = std::move(e);
    }
  }
  merged.push_back(std::move(prev));
  return merged;
}

std::vector<TokenEntity> TokenClassification::window_entities(
    const std::string& text, const tok::Encoding& enc,
    const TokenClassificationOptions& opt) const {
  const auto out = forward(enc);
  const auto logits = logits_row(out.logits);
  const size_t L = static_cast<size_t>(out.logits.size(-1));
  const auto& id2label = model_->config().id2label;
  auto label = [&](size_t i) {
    auto it = id2label.find(static_cast<int64_t>(i));
    return it != id2label.end() ? it->second : "LABEL_" + std::to_string(i);
  };
  auto tokens_to_string = [&](const std::vector<std::string>& toks) {
    if (tokenizer_.decoder()) return tokenizer_.decoder()->decode(toks);
    std::string s;
    for (const auto& t : toks) s += (s.empty() ? "" : " ") + t;
    return s;
  };

  // gather_pre_entities
  const bool word_aware = has_subword_prefix(tokenizer_);
  const auto starts = code_point_starts(text);
  const size_t n_chars = starts.size() - 1;
  auto char_at = [&](size_t i) { return text.substr(starts[i], starts[i + 1] - starts[i]); };
  std::vector<PreEntity> pre;
  for (size_t i = 0; i < enc.size(); ++i) {
    if (i < enc.special_tokens_mask.size() && enc.special_tokens_mask[i]) continue;
    if (i < enc.attention_mask.size() && !enc.attention_mask[i]) continue;
    PreEntity e;
    e.index = i;
    e.word = tokenizer_.id_to_token(enc.ids[i]).value_or(enc.tokens[i]);
    e.start = std::min(enc.offsets[i].first, n_chars);
    e.end = std::min(std::max(enc.offsets[i].second, e.start), n_chars);
    const std::string word_ref = substr_code_points(text, e.start, e.end);
    if (word_aware) {
      e.is_subword = code_point_count(e.word) != code_point_count(word_ref);
    } else {
      e.is_subword = e.start > 0;
      for (size_t c = e.start - (e.start > 0 ? 1 : 0); c < std::min(e.start + 1, n_chars); ++c)
        if (char_at(c) == " ") e.is_subword = false;
    }
    if (special_.unk_id && enc.ids[i] == *special_.unk_id) {
      e.word = word_ref;
      e.is_subword = false;
    }
    e.scores = softmax(logits.data() + i * L, L);
    pre.push_back(std::move(e));
  }

  // aggregate: one entity per token (none/simple) or per word (first/average/max)
  std::vector<TokenEntity> ents;
  if (opt.aggregation == Aggregation::none || opt.aggregation == Aggregation::simple) {
    for (const auto& p : pre) {
      const size_t k = argmax(p.scores);
      ents.push_back({label(k), p.scores[k], p.index, p.word, p.start, p.end});
    }
  } else {
    auto word_entity = [&](const std::vector<const PreEntity*>& g) {
      std::vector<std::string> toks;
      for (auto* p : g) toks.push_back(p->word);
      TokenEntity e;
      e.word = tokens_to_string(toks);
      e.start = g.front()->start;
      e.end = g.back()->end;
      std::vector<double> sc;
      if (opt.aggregation == Aggregation::first) {
        sc = g.front()->scores;
      } else if (opt.aggregation == Aggregation::max) {
        const PreEntity* best = g.front();
        double best_max = *std::max_element(best->scores.begin(), best->scores.end());
        for (auto* p : g) {
          const double m = *std::max_element(p->scores.begin(), p->scores.end());
          if (m > best_max) best = p, best_max = m;
        }
        sc = best->scores;
      } else {
        sc.assign(L, 0.0);
        for (auto* p : g)
          for (size_t j = 0; j < L; ++j) sc[j] += p->scores[j] / static_cast<double>(g.size());
      }
      const size_t k = argmax(sc);
      e.entity = label(k);
      e.score = sc[k];
      return e;
    };
    std::vector<const PreEntity*> group;
    for (const auto& p : pre) {
      if (!group.empty() && !p.is_subword) {
        ents.push_back(word_entity(group));
        group.clear();
      }
      group.push_back(&p);
    }
    if (!group.empty()) ents.push_back(word_entity(group));
  }

  std::vector<TokenEntity> result;
  auto ignored = [&](const std::string& l) {
    return std::find(opt.ignore_labels.begin(), opt.ignore_labels.end(), l) !=
           opt.ignore_labels.end();
  };
  if (opt.aggregation == Aggregation::none) {
    for (auto& e : ents)
      if (!ignored(e.entity)) result.push_back(std::move(e));
    return result;
  }
  // group_entities: adjacent entities with the same tag merge unless the next one is a B-.
  auto close_group = [&](const std::vector<const TokenEntity*>& g) {
    TokenEntity e;
    const std::string& first = g.front()->entity;
    const size_t dash = first.find('-');
    e.entity = dash == std::string::npos ? first : first.substr(dash + 1);
    std::vector<std::string> toks;
    double sum = 0;
    for (auto* x : g) sum += x->score, toks.push_back(x->word);
    e.score = sum / static_cast<double>(g.size());
    e.word = tokens_to_string(toks);
    e.start = g.front()->start;
    e.end = g.back()->end;
    if (!ignored(e.entity)) result.push_back(std::move(e));
  };
  std::vector<const TokenEntity*> group;
  for (const auto& e : ents) {
    if (!group.empty()) {
      const auto [bi, tag] = bio_tag(e.entity);
      const auto [last_bi, last_tag] = bio_tag(group.back()->entity);
      if (!(tag == last_tag && bi != 'B')) {
        close_group(group);
        group.clear();
      }
    }
    group.push_back(&e);
  }
  if (!group.empty()) close_group(group);
  return result;
}

}  // namespace lmf::tasks
