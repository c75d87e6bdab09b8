// Chat templates rendered string-for-string as transformers' apply_chat_template / jinja2 does
// (goldens from scripts/reference/gen_chat_template_goldens.py), plus loading and robustness.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "lmforge/tokenizers/chat_template.h"

namespace lmf::tok {
namespace {

using ojson = nlohmann::ordered_json;

const ojson& goldens() {
  static const ojson g = [] {
    std::ifstream f(std::string(LMF_FIXTURES_DIR) + "/chat_templates/goldens.json");
    EXPECT_TRUE(f.good());
    std::stringstream ss;
    ss << f.rdbuf();
    return ojson::parse(ss.str());
  }();
  return g;
}

// Runs `fn` and compares with the golden outcome: the exact output, the exact raise_exception
// message (TemplateRaised), or some lmf::ValueError for jinja's other errors.
template <class Fn>
void check_outcome(const ojson& c, const std::string& label, Fn fn) {
  if (c.contains("output")) {
    try {
      EXPECT_EQ(fn(), c["output"].get<std::string>()) << label;
    } catch (const std::exception& e) {
      ADD_FAILURE() << label << ": threw " << e.what();
    }
    return;
  }
  const auto& err = c["error"];
  const std::string kind = err["kind"].get<std::string>();
  const std::string message = err["message"].get<std::string>();
  try {
    const std::string out = fn();
    ADD_FAILURE() << label << ": expected " << err["type"].get<std::string>() << " (" << message
                  << "), got output: " << out;
  } catch (const TemplateRaised& e) {
    EXPECT_EQ(kind, "raise") << label << ": raise_exception fired where jinja raised " << message;
    if (kind == "raise") EXPECT_EQ(std::string(e.what()), message) << label;
  } catch (const ValueError& e) {
    EXPECT_NE(kind, "raise") << label << ": expected raise_exception('" << message << "'), got "
                             << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": threw a non-lmf exception: " << e.what();
  }
}

TEST(ChatTemplate, ModelTemplatesMatchTransformers) {
  const auto& g = goldens();
  ASSERT_GE(g["model_cases"].size(), 700u);
  size_t outputs = 0, raises = 0;
  for (const auto& c : g["model_cases"]) {
    const std::string name = c["template"].get<std::string>();
    const std::string conv = c["conversation"].get<std::string>();
    const bool gen = c["add_generation_prompt"].get<bool>();
    const std::string label = name + "/" + conv + (gen ? "/gen" : "");
    const auto& t = g["templates"][name];
    ojson extra = t["special_tokens"];
    if (c["with_tools"].get<bool>()) extra["tools"] = g["tools"];
    outputs += c.contains("output");
    raises += c.contains("error") && c["error"]["kind"] == "raise";
    check_outcome(c, label, [&] {
      return apply_chat_template(t["template"].get<std::string>(), g["conversations"][conv], gen,
                                 extra);
    });
  }
  EXPECT_GT(outputs, 500u);
  EXPECT_GT(raises, 10u);
}

TEST(ChatTemplate, FeaturesMatchJinja) {
  const auto& g = goldens();
  ASSERT_GE(g["feature_cases"].size(), 60u);
  for (const auto& c : g["feature_cases"]) {
    check_outcome(c, c["name"].get<std::string>(), [&] {
      return ChatTemplate::parse(c["template"].get<std::string>()).render(c["context"]);
    });
  }
}

TEST(ChatTemplate, SmolLM2PromptForOneUserMessage) {
  const auto& t = goldens()["templates"]["smollm2_135m_instruct"];
  const ojson msgs = ojson::parse(R"([{"role": "user", "content": "Hi"}])");
  EXPECT_EQ(apply_chat_template(t["template"].get<std::string>(), msgs, true, t["special_tokens"]),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, SyntaxErrorsNameLineAndColumn) {
  try {
    ChatTemplate::parse("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}");
    FAIL() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("line 3, column"), std::string::npos) << e.what();
  }
  try {
    ChatTemplate::parse("{% for x in y %}");
    FAIL() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("endfor"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, RenderErrorsSayWhatFailed) {
  try {
    ChatTemplate::parse("a\n{{ messages[0].content.upper }}")
        .render(ojson::parse(R"({"messages": []})"));
    FAIL() << "no error";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("line 2"), std::string::npos) << m;
    EXPECT_NE(m.find("no element 0"), std::string::npos) << m;
  }
}

TEST(ChatTemplate, BoundsWorkAndNesting) {
  // Endless-looking work stops with an error instead of hanging or exhausting memory.
  EXPECT_THROW(ChatTemplate::parse("{% for i in range(99999) %}{% for j in range(99999) %}{{ j }}"
                                   "{% endfor %}{% endfor %}")
                   .render(ojson::object()),
               ValueError);
  EXPECT_THROW(ChatTemplate::parse("{{ 'x' * 999999999999 }}").render(ojson::object()), ValueError);
  EXPECT_THROW(ChatTemplate::parse("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
                   .render(ojson::object()),
               ValueError);
  std::string deep;
  for (int k = 0; k < 5000; ++k) deep += "(";
  EXPECT_THROW(ChatTemplate::parse("{{ " + deep + " }}"), ValueError);
  std::string ifs;
  for (int k = 0; k < 5000; ++k) ifs += "{% if true %}";
  EXPECT_THROW(ChatTemplate::parse(ifs), ValueError);
  // Deep values built by a loop, macro recursion inside nested expressions, namespace cycles.
  EXPECT_THROW(ChatTemplate::parse("{% set ns = namespace(x=none) %}{% for i in range(5000) %}"
                                   "{% set ns.x = [ns.x] %}{% endfor %}")
                   .render(ojson::object()),
               ValueError);
  std::string parens = "1";
  for (int k = 0; k < 60; ++k) parens = "(" + parens + " + f(n - 1)|int)";
  EXPECT_THROW(ChatTemplate::parse("{% macro f(n) %}{% if n > 0 %}{{ " + parens +
                                   " }}{% endif %}{% endmacro %}{{ f(60) }}")
                   .render(ojson::object()),
               ValueError);
  EXPECT_EQ(ChatTemplate::parse("{% set ns = namespace(a=1) %}{% set ns.a = [ns] %}ok")
                .render(ojson::object()),
            "ok");
  EXPECT_THROW(ChatTemplate::parse("{% set ns = namespace(a=1) %}{% set ns.a = ns %}{{ ns }}")
                   .render(ojson::object()),
               ValueError);
}

TEST(ChatTemplate, ApplyChatTemplateContext) {
  const std::string t =
      "{{ tools is none }}|{{ documents is none }}|{{ add_generation_prompt }}|{{ bos_token }}|"
      "{{ messages[0].keys()|list }}|{{ custom }}";
  const ojson msgs = ojson::parse(R"([{"role": "user", "content": "x", "tool_calls": null}])");
  EXPECT_EQ(
      apply_chat_template(t, msgs, true, ojson::parse(R"({"bos_token": "<s>", "custom": 7})")),
      "True|True|True|<s>|['role', 'content']|7");
  EXPECT_THROW(apply_chat_template(t, ojson::array(), false), ValueError);
  // Reasoning fields are aliased as transformers does.
  const ojson r = ojson::parse(R"([{"role": "assistant", "content": "a", "reasoning": "r"}])");
  EXPECT_EQ(
      apply_chat_template("{{ messages[0]|tojson }}", r, false),
      R"({"thinking": "r", "role": "assistant", "content": "a", "reasoning": "r", "reasoning_content": "r"})");
}

TEST(ChatTemplate, TemplateFromConfigAndFolder) {
  const auto cfg1 =
      nlohmann::json::parse(R"({"chat_template": "T1", "bos_token": {"content": "<s>"},
                                              "eos_token": "</s>", "pad_token": null})");
  EXPECT_EQ(chat_template_from_config(cfg1).value(), "T1");
  EXPECT_THROW(chat_template_from_config(cfg1, "tool_use"), ValueError);
  EXPECT_EQ(special_tokens_from_config(cfg1).dump(), R"({"bos_token":"<s>","eos_token":"</s>"})");
  const auto cfg2 = nlohmann::json::parse(
      R"({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "U"}]})");
  EXPECT_EQ(chat_template_from_config(cfg2).value(), "D");
  EXPECT_EQ(chat_template_from_config(cfg2, "", true).value(), "U");
  EXPECT_EQ(chat_template_from_config(cfg2, "tool_use").value(), "U");
  EXPECT_THROW(chat_template_from_config(cfg2, "rag"), ValueError);
  EXPECT_FALSE(chat_template_from_config(nlohmann::json::parse("{}")).has_value());
  EXPECT_THROW(chat_template_from_config(nlohmann::json::parse(R"({"chat_template": 3})")),
               ValueError);

  const auto dir = std::filesystem::temp_directory_path() / "lmf_chat_template_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  EXPECT_FALSE(load_chat_template(dir).has_value());
  std::ofstream(dir / "tokenizer_config.json") << cfg1.dump();
  EXPECT_EQ(load_chat_template(dir).value(), "T1");
  std::ofstream(dir / "chat_template.jinja") << "FILE";
  EXPECT_EQ(load_chat_template(dir).value(), "FILE");  // the separate file wins, as in transformers
  std::filesystem::remove_all(dir);
}

TEST(ChatTemplate, JsonContextKeepsKeyOrderOnlyWhenOrdered) {
  const auto t = ChatTemplate::parse("{{ d|tojson }}");
  EXPECT_EQ(t.render(ojson::parse(R"({"d": {"b": 1, "a": 2}})")), R"({"b": 1, "a": 2})");
  EXPECT_EQ(t.render(nlohmann::json::parse(R"({"d": {"b": 1, "a": 2}})")), R"({"a": 2, "b": 1})");
  EXPECT_THROW(t.render(ojson::array()), ValueError);
}

}  // namespace
}  // namespace lmf::tok
