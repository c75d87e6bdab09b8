// lmforge fill-mask | classify | ner | qa | nsp: the head pipelines of lmf::tasks on inputs from
// arguments, a file or stdin, printed for people or as JSON lines.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands_heads.h"
#include "lmforge/core/error.h"
#include "lmforge/tasks/heads.h"

namespace lmf::cli {

namespace {

using json = nlohmann::ordered_json;

// One input: a plain text line (a JSON string) or a JSONL object.
std::vector<json> read_inputs(const HeadInputs& in) {
  std::vector<json> items;
  if (!in.texts.empty()) {
    for (const auto& t : in.texts) items.emplace_back(t);
    return items;
  }
  std::ifstream file;
  std::istream* src = &std::cin;
  std::string origin = "stdin";
  if (!in.file.empty() && in.file != "-") {
    file.open(in.file);
    LMF_CHECK(file.is_open(), IoError, "cannot read inputs from '{}'", in.file);
    src = &file;
    origin = in.file;
  } else if (in.file.empty() && isatty(STDIN_FILENO)) {
    fail<ValueError>("no input: give the text as an argument, --file PATH, or pipe lines on stdin");
  }
  std::string line;
  size_t lineno = 0;
  while (std::getline(*src, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (line[line.find_first_not_of(" \t")] == '{') {
      json j = json::parse(line, nullptr, false);
      LMF_CHECK(!j.is_discarded() && j.is_object(), ValueError,
                "{}:{}: the line starts with '{{' but is not a JSON object", origin, lineno);
      items.push_back(std::move(j));
    } else {
      items.emplace_back(line);
    }
  }
  LMF_CHECK(!items.empty(), ValueError, "no input lines in {}", origin);
  return items;
}

std::string field(const json& item, const char* key, bool required, size_t n) {
  auto it = item.find(key);
  if (it == item.end() || it->is_null()) {
    LMF_CHECK(!required, ValueError, "input {}: JSON object has no \"{}\" string", n, key);
    return "";
  }
  LMF_CHECK(it->is_string(), ValueError, "input {}: \"{}\" must be a string", n, key);
  return it->get<std::string>();
}

// text (+ optional pair): a JSON object {"text", "text_pair"} or a line "A<TAB>B".
std::pair<std::string, std::optional<std::string>> text_and_pair(const json& item, size_t n,
                                                                 const std::string& pair_opt,
                                                                 bool split_tab) {
  if (item.is_object()) {
    std::string pair = field(item, "text_pair", false, n);
    return {field(item, "text", true, n),
            pair.empty() ? std::nullopt : std::optional<std::string>(pair)};
  }
  std::string t = item.get<std::string>();
  if (!pair_opt.empty()) return {t, pair_opt};
  const size_t tab = split_tab ? t.find('\t') : std::string::npos;
  if (tab != std::string::npos) return {t.substr(0, tab), t.substr(tab + 1)};
  return {t, std::nullopt};
}

void print_json(const json& j) {
  fmt::print("{}\n", j.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string pct(double p) {
  return fmt::format("{:.4f}", p);
}

}  // namespace

int run_fill_mask(const std::string& model_dir, const FillMaskCliOptions& opt,
                  const HeadInputs& in) {
  const auto items = read_inputs(in);
  tasks::FillMask pipe(model_dir);
  tasks::FillMaskOptions o;
  o.top_k = opt.top_k;
  if (opt.targets_given) {
    o.targets = opt.targets;
    if (o.targets.empty()) o.targets.emplace_back();
    for (const auto& w : pipe.resolve_targets(o.targets).warnings)
      fmt::print(stderr, "lmforge: warning: fill-mask: {}\n", w);
  }
  for (size_t n = 0; n < items.size(); ++n) {
    const std::string text =
        items[n].is_object() ? field(items[n], "text", true, n + 1) : items[n].get<std::string>();
    const auto rows = pipe(text, o);
    if (in.json) {
      json masks = json::array();
      for (const auto& row : rows) {
        json r = json::array();
        for (const auto& p : row)
          r.push_back({{"score", p.score},
                       {"token", p.token},
                       {"token_str", p.token_str},
                       {"sequence", p.sequence}});
        masks.push_back(std::move(r));
      }
      print_json({{"text", text}, {"masks", std::move(masks)}});
      continue;
    }
    fmt::print("{}\n", text);
    for (size_t m = 0; m < rows.size(); ++m) {
      if (rows.size() > 1) fmt::print("  mask {}:\n", m + 1);
      for (size_t r = 0; r < rows[m].size(); ++r)
        fmt::print("  {:2}. {:<14} {}  {}\n", r + 1, rows[m][r].token_str, pct(rows[m][r].score),
                   rows[m][r].sequence);
    }
    if (n + 1 < items.size()) fmt::print("\n");
  }
  return 0;
}

int run_classify(const std::string& model_dir, const ClassifyCliOptions& opt,
                 const HeadInputs& in) {
  const auto items = read_inputs(in);
  tasks::TextClassification pipe(model_dir);
  tasks::ClassificationOptions o;
  if (opt.top_k > 0)
    o.top_k = opt.top_k;
  else
    o.top_k = std::nullopt;
  o.function = tasks::parse_score_function(opt.function);
  for (size_t n = 0; n < items.size(); ++n) {
    const auto [text, pair] = text_and_pair(items[n], n + 1, opt.text_pair, true);
    const auto labels = pair ? pipe(text, std::string_view(*pair), o) : pipe(text, std::nullopt, o);
    if (in.json) {
      json l = json::array();
      for (const auto& s : labels) l.push_back({{"label", s.label}, {"score", s.score}});
      json j = {{"text", text}};
      if (pair) j["text_pair"] = *pair;
      j["labels"] = std::move(l);
      print_json(j);
      continue;
    }
    fmt::print("{}{}\n", text, pair ? "  ||  " + *pair : "");
    for (const auto& s : labels) fmt::print("  {:<20} {}\n", s.label, pct(s.score));
  }
  return 0;
}

int run_ner(const std::string& model_dir, const NerCliOptions& opt, const HeadInputs& in) {
  const auto items = read_inputs(in);
  tasks::TokenClassification pipe(model_dir);
  tasks::TokenClassificationOptions o;
  o.aggregation = tasks::parse_aggregation(opt.aggregation);
  o.ignore_labels = opt.ignore_labels;
  if (opt.stride >= 0) o.stride = static_cast<size_t>(opt.stride);
  const bool grouped = o.aggregation != tasks::Aggregation::none;
  for (size_t n = 0; n < items.size(); ++n) {
    const std::string text =
        items[n].is_object() ? field(items[n], "text", true, n + 1) : items[n].get<std::string>();
    const auto ents = pipe(text, o);
    if (in.json) {
      json e = json::array();
      for (const auto& x : ents) {
        json j = {{grouped ? "entity_group" : "entity", x.entity}, {"score", x.score}};
        if (x.index) j["index"] = *x.index;
        j["word"] = x.word;
        j["start"] = x.start;
        j["end"] = x.end;
        e.push_back(std::move(j));
      }
      json j = {{"text", text}, {"entities", std::move(e)}};
      if (o.stride) j["windows"] = pipe.windows_used();
      print_json(j);
      continue;
    }
    fmt::print("{}\n", text);
    if (o.stride && pipe.windows_used() > 1)
      fmt::print("  ({} windows of {} tokens, stride {})\n", pipe.windows_used(),
                 pipe.special_tokens().model_max_length, *o.stride);
    if (ents.empty()) fmt::print("  (no entities)\n");
    for (const auto& x : ents)
      fmt::print("  {:<8} {:<24} {}  [{}, {})\n", x.entity, x.word, pct(x.score), x.start, x.end);
  }
  return 0;
}

int run_qa(const std::string& model_dir, const QaCliOptions& opt, const HeadInputs& in) {
  std::vector<std::pair<std::string, std::string>> qas;
  if (!opt.question.empty() && !opt.context.empty()) {
    qas.emplace_back(opt.question, opt.context);
  } else {
    LMF_CHECK(opt.context.empty(), ValueError, "qa: --context given without --question; give both");
    const auto items = read_inputs(in);
    for (size_t n = 0; n < items.size(); ++n) {
      if (items[n].is_object()) {
        std::string q = field(items[n], "question", opt.question.empty(), n + 1);
        qas.emplace_back(q.empty() ? opt.question : q, field(items[n], "context", true, n + 1));
      } else {
        LMF_CHECK(!opt.question.empty(), ValueError,
                  "qa: input {} is plain text; give --question Q (the lines are then contexts) "
                  "or JSON lines {{\"question\": ..., \"context\": ...}}",
                  n + 1);
        qas.emplace_back(opt.question, items[n].get<std::string>());
      }
    }
  }
  tasks::QuestionAnswering pipe(model_dir);
  tasks::QuestionAnsweringOptions o;
  o.top_k = opt.top_k;
  if (opt.max_seq_len > 0) o.max_seq_len = opt.max_seq_len;
  if (opt.doc_stride > 0) o.doc_stride = opt.doc_stride;
  o.max_answer_len = opt.max_answer_len;
  o.handle_impossible_answer = opt.handle_impossible_answer;
  for (const auto& [q, c] : qas) {
    const auto answers = pipe(q, c, o);
    if (in.json) {
      json a = json::array();
      for (const auto& x : answers)
        a.push_back({{"score", x.score}, {"start", x.start}, {"end", x.end}, {"answer", x.answer}});
      print_json({{"question", q}, {"answers", std::move(a)}, {"windows", pipe.windows_used()}});
      continue;
    }
    fmt::print("Q: {}\n", q);
    for (const auto& x : answers)
      fmt::print("  A: {:<30} {}  [{}, {})\n", x.answer.empty() ? "(no answer)" : x.answer,
                 pct(x.score), x.start, x.end);
  }
  return 0;
}

int run_nsp(const std::string& model_dir, const NspCliOptions& opt, const HeadInputs& in) {
  const auto items = read_inputs(in);
  tasks::NextSentencePrediction pipe(model_dir);
  for (size_t n = 0; n < items.size(); ++n) {
    const auto [a, b] = text_and_pair(items[n], n + 1, opt.text_b, true);
    LMF_CHECK(b.has_value(), ValueError,
              "nsp: input {} has one sentence; give --next B, a line \"A<TAB>B\" or JSON "
              "{{\"text\": A, \"text_pair\": B}}",
              n + 1);
    const auto r = pipe(a, *b);
    if (in.json) {
      print_json({{"text", a},
                  {"text_pair", *b},
                  {"is_next", r.is_next},
                  {"not_next", r.not_next},
                  {"logits", {r.logits[0], r.logits[1]}}});
      continue;
    }
    fmt::print("A: {}\nB: {}\n  P(B follows A) = {}\n", a, *b, pct(r.is_next));
  }
  return 0;
}

void HeadCommands::add_to(CLI::App& app) {
  auto common = [&](CLI::App* c, const char* what) {
    c->add_option("model,--model,-m", model_dir,
                  "Hugging Face model folder (config.json, weights, tokenizer)")
        ->required()
        ->check(CLI::ExistingDirectory);
    c->add_option("inputs", in.texts, what);
    c->add_option("--file", in.file,
                  "read inputs from this file ('-': stdin), one per line: text "
                  "or a JSON object");
    c->add_flag("--json", in.json, "print one JSON object per input");
  };
  fill_mask_cmd = app.add_subcommand(
      "fill-mask",
      "Predict the masked token(s) with a masked language model (HF fill-mask pipeline).\n"
      "Example: lmforge fill-mask MODEL \"Paris is the [MASK] of France.\"");
  common(fill_mask_cmd, "texts with the mask token (default: stdin lines)");
  fill_mask_cmd->add_option("--top-k", fill_mask.top_k, "predictions per mask")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  targets_opt =
      fill_mask_cmd
          ->add_option(
              "--targets", fill_mask.targets,
              "score only these words, comma-separated (HF targets): a word not in the\n"
              "vocabulary is replaced by its first token, with a warning; --top-k is capped\n"
              "by the number of distinct targets")
          ->delimiter(',')
          ->expected(0, 1 << 20);

  classify_cmd = app.add_subcommand("classify",
                                    "Classify texts or text pairs with a sequence-classification "
                                    "model (HF text-classification).\n"
                                    "Example: lmforge classify MODEL \"I loved it\" --top-k 0");
  common(classify_cmd, "texts (stdin lines: \"A<TAB>B\" is a pair)");
  classify_cmd->add_option("--pair", classify.text_pair, "second text of the pair for each input");
  classify_cmd->add_option("--top-k", classify.top_k, "labels to show (0: all)")
      ->capture_default_str();
  classify_cmd
      ->add_option("--function", classify.function,
                   "score function: default (HF's choice) | softmax | sigmoid | none")
      ->check(CLI::IsMember({"default", "softmax", "sigmoid", "none"}))
      ->capture_default_str();

  ner_cmd = app.add_subcommand(
      "ner",
      "Tag entities with a token-classification model (HF token-classification pipeline).\n"
      "Example: lmforge ner MODEL \"Maria moved to Berlin.\" --aggregation simple");
  common(ner_cmd, "texts (default: stdin lines)");
  ner_cmd->add_option("--aggregation", ner.aggregation, "none | simple | first | average | max")
      ->check(CLI::IsMember({"none", "simple", "first", "average", "max"}))
      ->capture_default_str();
  ner_cmd->add_option("--ignore-labels", ner.ignore_labels, "labels left out of the output")
      ->capture_default_str();
  ner_cmd
      ->add_option("--stride", ner.stride,
                   "tag texts longer than the model's max length in windows of that length,\n"
                   "consecutive windows sharing N tokens; overlapping entities are merged as HF's\n"
                   "stride does (needs --aggregation other than none). Without --stride longer\n"
                   "texts are truncated to the max length.")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));

  qa_cmd = app.add_subcommand(
      "qa",
      "Extractive question answering (HF question-answering pipeline, doc-stride windows).\n"
      "Example: lmforge qa MODEL --question \"Where?\" --context \"Maria lives in Paris.\"");
  common(qa_cmd, "contexts for --question (or JSON lines {\"question\", \"context\"})");
  qa_cmd->add_option("--question,-q", qa.question, "the question");
  qa_cmd->add_option("--context,-c", qa.context, "the text to find the answer in");
  qa_cmd->add_option("--top-k", qa.top_k, "answers to show")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  qa_cmd
      ->add_option("--max-seq-len", qa.max_seq_len,
                   "tokens per window (0: min(model_max_length, 384))")
      ->capture_default_str();
  qa_cmd
      ->add_option("--doc-stride", qa.doc_stride,
                   "tokens shared by consecutive windows (0: min(max_seq_len / 2, 128))")
      ->capture_default_str();
  qa_cmd->add_option("--max-answer-len", qa.max_answer_len, "longest answer in tokens")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  qa_cmd->add_flag("--handle-impossible-answer", qa.handle_impossible_answer,
                   "allow the empty answer");

  nsp_cmd = app.add_subcommand(
      "nsp",
      "Probability that sentence B follows sentence A (BERT next-sentence / ALBERT order head).\n"
      "Example: lmforge nsp MODEL \"I went home.\" --next \"Then I slept.\"");
  common(nsp_cmd, "first sentences (stdin lines: \"A<TAB>B\")");
  nsp_cmd->add_option("--next", nsp.text_b, "the second sentence B for each input");
}

int HeadCommands::run() const {
  if (fill_mask_cmd && *fill_mask_cmd) {
    FillMaskCliOptions fm = fill_mask;
    fm.targets_given = targets_opt && targets_opt->count() > 0;
    return run_fill_mask(model_dir, fm, in);
  }
  if (classify_cmd && *classify_cmd) return run_classify(model_dir, classify, in);
  if (ner_cmd && *ner_cmd) return run_ner(model_dir, ner, in);
  if (qa_cmd && *qa_cmd) return run_qa(model_dir, qa, in);
  if (nsp_cmd && *nsp_cmd) return run_nsp(model_dir, nsp, in);
  return -1;
}

}  // namespace lmf::cli
