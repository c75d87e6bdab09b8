// `lmforge tokenize`: tokens, ids, type ids and offsets of texts under a model's tokenizer.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "lmforge/core/error.h"
#include "lmforge/tasks/tokenize.h"

namespace {

using lmf::tok::Encoding;

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void print_json(const std::string& text, const Encoding& e,
                const std::optional<std::string>& pair) {
  nlohmann::json j;
  j["text"] = text;
  if (pair) j["pair"] = *pair;
  j["tokens"] = e.tokens;
  j["ids"] = e.ids;
  j["type_ids"] = e.type_ids;
  j["attention_mask"] = e.attention_mask;
  j["special_tokens_mask"] = e.special_tokens_mask;
  auto& off = j["offsets"] = nlohmann::json::array();
  for (const auto& [b, en] : e.offsets) off.push_back({b, en});
  auto& w = j["word_ids"] = nlohmann::json::array();
  for (const auto& x : e.word_ids) w.push_back(x ? nlohmann::json(*x) : nlohmann::json(nullptr));
  j["overflowing"] = e.overflowing.size();
  fmt::print("{}\n", dump(j));
}

void print_table(const std::string& text, const Encoding& e,
                 const std::optional<std::string>& pair) {
  fmt::print("text: {}\n", dump(text));
  if (pair) fmt::print("pair: {}\n", dump(*pair));
  size_t width = 5;
  std::vector<std::string> shown;
  for (const auto& t : e.tokens) {
    shown.push_back(dump(t));
    width = std::max(width, shown.back().size());
  }
  fmt::print("  {:>4}  {:<{}}  {:>7}  {:>4}  {}\n", "#", "token", width, "id", "type", "offsets");
  for (size_t i = 0; i < e.size(); ++i)
    fmt::print("  {:>4}  {:<{}}  {:>7}  {:>4}  {}-{}\n", i, shown[i], width, e.ids[i],
               e.type_ids[i], e.offsets[i].first, e.offsets[i].second);
  fmt::print("  {} tokens", e.size());
  if (!e.overflowing.empty()) fmt::print(", {} overflowing windows", e.overflowing.size());
  fmt::print("\n\n");
}

}  // namespace

CLI::App* add_tokenize_command(CLI::App& app, TokenizeOptions& opt) {
  auto* c = app.add_subcommand(
      "tokenize",
      "Tokenize text with a model's tokenizer (tokenizer.json, or vocab.txt + "
      "tokenizer_config.json)\n"
      "and print tokens, ids, type ids and character offsets. Text comes from the arguments, from\n"
      "--file (one text per line), or from stdin lines.\n"
      "Example: lmforge tokenize --model models/all-MiniLM-L6-v2 \"Hello, world!\"");
  c->add_option("--model", opt.model, "model folder or tokenizer.json file")->required();
  c->add_option("text", opt.texts, "texts to tokenize");
  c->add_option("--file", opt.file, "read one text per line from this file ('-' for stdin)");
  c->add_option("--pair", opt.pair, "second sequence (e.g. the context of a question)");
  c->add_option("--max-length", opt.max_length, "truncate to this many tokens (longest first)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 30));
  c->add_option("--stride", opt.stride, "overlap of overflowing windows with --max-length")
      ->capture_default_str();
  c->add_flag("--json", opt.json, "print one JSON object per text instead of a table");
  c->add_flag("--no-special", opt.no_special, "do not add special tokens ([CLS], [SEP], ...)");
  return c;
}

int run_tokenize_command(const TokenizeOptions& opt) {
  lmf::tasks::TokenizeOptions to;
  to.max_length = opt.max_length;
  to.stride = opt.stride;
  to.add_special_tokens = !opt.no_special;
  const auto tok = lmf::tasks::TextTokenizer::load(opt.model, to);
  auto one = [&](const std::string& text) {
    const Encoding e = opt.pair ? tok.encode(text, *opt.pair) : tok.encode(text);
    if (opt.json)
      print_json(text, e, opt.pair);
    else
      print_table(text, e, opt.pair);
  };
  if (!opt.texts.empty()) {
    for (const auto& t : opt.texts) one(t);
    return 0;
  }
  std::ifstream file;
  std::istream* in = &std::cin;
  if (!opt.file.empty() && opt.file != "-") {
    file.open(opt.file, std::ios::binary);
    LMF_CHECK(file.good(), lmf::IoError, "cannot read --file '{}'", opt.file);
    in = &file;
  }
  std::string line;
  while (std::getline(*in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    one(line);
  }
  return 0;
}
