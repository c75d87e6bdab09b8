// ChatTemplate: parse/render entry points, transformers' apply_chat_template context, and
// locating a model's template (chat_template.jinja, additional_chat_templates/, tokenizer_config).
#include "lmforge/tokenizers/chat_template.h"

#include <fstream>
#include <map>
#include <sstream>

#include "tokenizers/jinja.h"

namespace lmf::tok {

ChatTemplate ChatTemplate::parse(const std::string& source) {
  ChatTemplate t;
  t.prog_ = jinja::parse(source);
  t.source_ = source;
  return t;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context) const {
  LMF_CHECK(prog_, ValueError, "chat template: render() on a template that was never parsed");
  LMF_CHECK(context.is_object(), ValueError,
            "chat template: the context must be a JSON object, got {}", context.type_name());
  return jinja::render(*prog_, jinja::from_json(context));
}

std::string ChatTemplate::render(const nlohmann::json& context) const {
  // nlohmann::json keeps keys sorted; the order is lost already, so sorted order it is.
  return render(nlohmann::ordered_json::parse(
      context.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

namespace {

const char* const kReasoningFields[] = {"reasoning_content", "thinking", "reasoning"};

// transformers: drop null-valued keys, then alias reasoning fields
// ({"thinking": r, **message, "reasoning_content": r}).
nlohmann::ordered_json normalize_message(const nlohmann::ordered_json& m) {
  LMF_CHECK(m.is_object(), ValueError,
            "Chat messages should be dicts, dataclasses or pydantic models, but got {}", m.dump());
  nlohmann::ordered_json clean = nlohmann::ordered_json::object();
  for (auto it = m.begin(); it != m.end(); ++it)
    if (!it.value().is_null()) clean[it.key()] = it.value();
  const nlohmann::ordered_json* reasoning = nullptr;
  for (const char* k : kReasoningFields)
    if (clean.contains(k)) {
      reasoning = &clean[k];
      break;
    }
  if (!reasoning) return clean;
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  out["thinking"] = *reasoning;
  for (auto it = clean.begin(); it != clean.end(); ++it) out[it.key()] = it.value();
  out["reasoning_content"] = *reasoning;
  return out;
}

std::optional<std::string> read_text(const std::filesystem::path& p) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec)) return std::nullopt;
  std::ifstream f(p, std::ios::binary);
  LMF_CHECK(f.good(), IoError, "cannot read {}", p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::optional<std::string> select_template(const std::map<std::string, std::string>& named,
                                           const std::optional<std::string>& single,
                                           const std::string& name, bool with_tools,
                                           const std::string& where) {
  if (single) {
    if (name.empty() || name == "default") return single;
    fail<ValueError>("{} has a single chat template, not one named '{}'", where, name);
  }
  if (named.empty()) return std::nullopt;
  if (!name.empty()) {
    auto it = named.find(name);
    if (it == named.end()) {
      std::string names;
      for (const auto& [k, v] : named) names += (names.empty() ? "" : ", ") + k;
      fail<ValueError>("{} has no chat template named '{}' (it has: {})", where, name, names);
    }
    return it->second;
  }
  if (with_tools && named.count("tool_use")) return named.at("tool_use");
  if (named.count("default")) return named.at("default");
  std::string names;
  for (const auto& [k, v] : named) names += (names.empty() ? "" : ", ") + k;
  fail<ValueError>(
      "{} has several chat templates and none is named 'default'; pass one of these names: {}",
      where, names);
}

}  // namespace

std::string apply_chat_template(const std::string& source, const nlohmann::ordered_json& messages,
                                bool add_generation_prompt, const nlohmann::ordered_json& extra) {
  LMF_CHECK(messages.is_array(), ValueError, "chat template: messages must be a JSON array, got {}",
            messages.type_name());
  LMF_CHECK(!messages.empty(), ValueError,
            "Cannot apply chat template to an empty conversation. Provide at least one message.");
  LMF_CHECK(extra.is_object() || extra.is_null(), ValueError,
            "chat template: extra variables must be a JSON object, got {}", extra.type_name());
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  for (const auto& m : messages) msgs.push_back(normalize_message(m));
  ctx["messages"] = std::move(msgs);
  ctx["tools"] = nullptr;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = add_generation_prompt;
  if (extra.is_object()) {
    for (auto it = extra.begin(); it != extra.end(); ++it) {
      LMF_CHECK(
          it.key() != "messages" && it.key() != "add_generation_prompt", ValueError,
          "chat template: '{}' is given as an argument; do not repeat it in the extra variables",
          it.key());
      ctx[it.key()] = it.value();
    }
  }
  return ChatTemplate::parse(source).render(ctx);
}

std::optional<std::string> chat_template_from_config(const nlohmann::json& config,
                                                     const std::string& name, bool with_tools) {
  if (!config.is_object()) return std::nullopt;
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return std::nullopt;
  std::map<std::string, std::string> named;
  std::optional<std::string> single;
  if (it->is_string()) {
    single = it->get<std::string>();
  } else if (it->is_array()) {
    for (const auto& e : *it) {
      LMF_CHECK(e.is_object() && e.contains("name") && e["name"].is_string() &&
                    e.contains("template") && e["template"].is_string(),
                ValueError,
                "tokenizer_config.json: each chat_template entry must be {{\"name\": ..., "
                "\"template\": ...}}, got {}",
                e.dump().substr(0, 200));
      named[e["name"].get<std::string>()] = e["template"].get<std::string>();
    }
  } else {
    fail<ValueError>("tokenizer_config.json: chat_template must be a string or a list, got {}",
                     it->type_name());
  }
  return select_template(named, single, name, with_tools, "tokenizer_config.json");
}

std::optional<std::string> load_chat_template(const std::filesystem::path& dir,
                                              const std::string& name, bool with_tools) {
  std::map<std::string, std::string> named;
  if (auto t = read_text(dir / "chat_template.jinja")) named["default"] = *t;
  std::error_code ec;
  const auto extra_dir = dir / "additional_chat_templates";
  if (std::filesystem::is_directory(extra_dir, ec)) {
    for (const auto& e : std::filesystem::directory_iterator(extra_dir, ec))
      if (e.path().extension() == ".jinja")
        if (auto t = read_text(e.path())) named[e.path().stem().string()] = *t;
  }
  if (!named.empty()) {
    if (named.size() == 1 && named.count("default"))
      return select_template({}, named["default"], name, with_tools,
                             (dir / "chat_template.jinja").string());
    return select_template(named, std::nullopt, name, with_tools, dir.string());
  }
  if (auto text = read_text(dir / "tokenizer_config.json")) {
    nlohmann::json cfg;
    try {
      cfg = nlohmann::json::parse(*text);
    } catch (const nlohmann::json::exception& e) {
      fail<ValueError>("{}: invalid JSON ({})", (dir / "tokenizer_config.json").string(), e.what());
    }
    return chat_template_from_config(cfg, name, with_tools);
  }
  return std::nullopt;
}

nlohmann::ordered_json special_tokens_from_config(const nlohmann::json& config) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  if (!config.is_object()) return out;
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                          "cls_token", "mask_token"}) {
    auto it = config.find(key);
    if (it == config.end()) continue;
    if (it->is_string())
      out[key] = it->get<std::string>();
    else if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
      out[key] = (*it)["content"].get<std::string>();
  }
  return out;
}

}  // namespace lmf::tok
