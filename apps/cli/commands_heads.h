// The head-pipeline commands of the lmforge CLI: fill-mask, classify, ner, qa, nsp. Each reads its
// inputs from arguments, --file PATH (or "-") or stdin (text lines or JSONL) and prints a human
// report or, with --json, one JSON object per input line.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace lmf::cli {

// Where the inputs come from and how to print the results.
struct HeadInputs {
  std::vector<std::string> texts;  // positional arguments; when empty: --file, else stdin
  std::string file;                // a path, or "-" for stdin
  bool json = false;               // JSON lines instead of the human report
};

struct FillMaskCliOptions {
  size_t top_k = 5;
  std::vector<std::string> targets;  // --targets w1,w2: score only these tokens
  bool targets_given = false;        // --targets was on the command line (even if empty)
};

struct ClassifyCliOptions {
  size_t top_k = 1;                  // 0: every label
  std::string function = "default";  // default | softmax | sigmoid | none
  std::string text_pair;             // second text for every argument input (sentence pairs)
};

struct NerCliOptions {
  std::string aggregation = "simple";  // none | simple | first | average | max
  std::vector<std::string> ignore_labels = {"O"};
  int64_t stride = -1;  // -1: no windows (truncate to the model's length); else HF's stride
};

struct QaCliOptions {
  std::string question, context;  // when both are set they are the one input
  size_t top_k = 1;
  size_t max_seq_len = 0;  // 0: min(model_max_length, 384)
  size_t doc_stride = 0;   // 0: min(max_seq_len / 2, 128)
  size_t max_answer_len = 15;
  bool handle_impossible_answer = false;
};

struct NspCliOptions {
  std::string text_b;  // the second sentence for every argument input
};

// Each returns the process exit status (0) and throws lmf::Error on bad input or model folders.
// Plain input lines: classify/nsp read "A<TAB>B" as a pair; qa reads lines as contexts for
// --question. JSONL objects: {"text", "text_pair"} (classify, nsp), {"question", "context"} (qa).
int run_fill_mask(const std::string& model_dir, const FillMaskCliOptions& opt,
                  const HeadInputs& in);
int run_classify(const std::string& model_dir, const ClassifyCliOptions& opt, const HeadInputs& in);
int run_ner(const std::string& model_dir, const NerCliOptions& opt, const HeadInputs& in);
int run_qa(const std::string& model_dir, const QaCliOptions& opt, const HeadInputs& in);
int run_nsp(const std::string& model_dir, const NspCliOptions& opt, const HeadInputs& in);

// Registers the five subcommands on `app` with their options bound to this object; after parsing,
// run() dispatches to the selected one (returns -1 when none of them was selected).
struct HeadCommands {
  std::string model_dir;
  HeadInputs in;
  FillMaskCliOptions fill_mask;
  ClassifyCliOptions classify;
  NerCliOptions ner;
  QaCliOptions qa;
  NspCliOptions nsp;
  CLI::App *fill_mask_cmd = nullptr, *classify_cmd = nullptr, *ner_cmd = nullptr, *qa_cmd = nullptr,
           *nsp_cmd = nullptr;
  CLI::Option* targets_opt = nullptr;  // fill-mask --targets

  void add_to(CLI::App& app);
  int run() const;
};

}  // namespace lmf::cli
