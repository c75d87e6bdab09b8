// Hugging Face chat templates: the Jinja2 subset real models ship, rendered exactly as
// transformers' `tokenizer.apply_chat_template(messages, tokenize=False, ...)` does.
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "lmforge/core/error.h"

namespace lmf::tok {

namespace jinja {
struct Program;
}

// Thrown by a template's `raise_exception('...')`; what() is exactly the template's message.
// Every other parse or render failure is a plain lmf::ValueError naming line:column.
class TemplateRaised : public ValueError {
  using ValueError::ValueError;
};

// A parsed template, as jinja2's ImmutableSandboxedEnvironment(trim_blocks=True,
// lstrip_blocks=True) with loopcontrols compiles it. Immutable and cheap to copy.
class ChatTemplate {
 public:
  // Throws lmf::ValueError ("chat template: line L, column C: ...") on a syntax error.
  static ChatTemplate parse(const std::string& source);
  // Renders with `context` (an object) as the template's variables; the globals
  // raise_exception, strftime_now, namespace, dict and range are always present. Key order of
  // objects is kept (it shows in `tojson`). Output is bounded (64 MiB) and so is the work.
  std::string render(const nlohmann::ordered_json& context) const;
  std::string render(const nlohmann::json& context) const;
  const std::string& source() const { return source_; }

 private:
  std::shared_ptr<const jinja::Program> prog_;
  std::string source_;
};

// transformers' apply_chat_template(messages, tokenize=False, add_generation_prompt=...): the
// context is `extra` (special tokens such as bos_token/eos_token, tools, documents, any template
// kwargs) plus `messages` (keys whose value is null dropped, as transformers does),
// `add_generation_prompt`, and `tools`/`documents` (null unless given in `extra`).
// Throws lmf::ValueError on an empty conversation, TemplateRaised from raise_exception.
std::string apply_chat_template(
    const std::string& source, const nlohmann::ordered_json& messages, bool add_generation_prompt,
    const nlohmann::ordered_json& extra = nlohmann::ordered_json::object());

// The template named `name` in a tokenizer_config.json object: `chat_template` as a string, or
// the list-of-{name, template} form ("default" when name is empty; "tool_use" when name is empty
// and with_tools). nullopt when the config has none; ValueError when `name` is not there.
std::optional<std::string> chat_template_from_config(const nlohmann::json& tokenizer_config,
                                                     const std::string& name = "",
                                                     bool with_tools = false);

// The model folder's template: chat_template.jinja when present (as transformers prefers it),
// else tokenizer_config.json's. nullopt when neither has one.
std::optional<std::string> load_chat_template(const std::filesystem::path& model_dir,
                                              const std::string& name = "",
                                              bool with_tools = false);

// The named special tokens transformers passes to every template (bos_token, eos_token,
// unk_token, sep_token, pad_token, cls_token, mask_token), as strings, from
// tokenizer_config.json (plain strings or AddedToken objects with "content").
nlohmann::ordered_json special_tokens_from_config(const nlohmann::json& tokenizer_config);

}  // namespace lmf::tok
