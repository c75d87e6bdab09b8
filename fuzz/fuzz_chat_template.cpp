// libFuzzer target: arbitrary bytes as a chat template (untrusted input from model folders).
// Parsing and rendering must succeed or throw lmf::Error, within bounded time and memory.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi 😀 \"q\""},
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
      "function": {"name": "f", "arguments": {"x": 1, "y": [true, null, 2.5]}}}]},
    {"role": "tool", "content": "{\"ok\": 1}"}])");
  static const nlohmann::ordered_json extra = nlohmann::ordered_json::parse(
      R"({"bos_token": "<s>", "eos_token": "</s>",
          "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]})");
  try {
    const auto t = lmf::tok::ChatTemplate::parse(text);
    nlohmann::ordered_json ctx = extra;
    ctx["messages"] = messages;
    ctx["add_generation_prompt"] = true;
    (void)t.render(ctx);
  } catch (const lmf::Error&) {
  }
  return 0;
}
