// The lmforge subcommands: each cmd_*.cpp registers its subcommands on the app and says how to
// run them; main.cpp lists the registrars. Shared input/output helpers live in cmd_common.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lmf::cli {

struct Command {
  CLI::App* app;             // the subcommand; it runs when it was given (*app is true)
  std::function<int()> run;  // returns the exit status; lmf::Error escapes to main (status 2)
};
using Commands = std::vector<Command>;
using Registrar = void (*)(CLI::App&, Commands&);

void register_embed_commands(CLI::App& app, Commands& out);   // embed, similarity, search
void register_inspect_command(CLI::App& app, Commands& out);  // inspect
void register_train_commands(CLI::App& app, Commands& out);   // pretrain, finetune, evaluate
// generate, chat, perplexity, convert (decoder language models)
void register_generate_commands(CLI::App& app, Commands& out);
void register_bleu_command(CLI::App& app, Commands& out);       // bleu (BLEU and chrF of files)
void register_tokenizer_command(CLI::App& app, Commands& out);  // tokenizer train
void register_translate_command(CLI::App& app, Commands& out);  // translate (encoder-decoder)
// Task heads (fill-mask, classify, ner, qa, nsp) come from apps/cli/cmd_heads.cpp: declare its
// registrar here and add it to kRegistrars in main.cpp.

// ---- shared helpers (cmd_common.cpp) ----------------------------------------------------------

// The default model folder, relative to the current directory.
inline constexpr const char* kDefaultModelDir = "./models/all-MiniLM-L6-v2";
// IoError when `dir` is not a model folder; for the default folder the message says to run
// scripts/setup.sh (which installs it).
void check_model_dir(const std::string& dir);

// Where a command's texts come from: arguments, --file (text lines or JSONL), or stdin.
struct InputOptions {
  std::vector<std::string> args;
  std::string file;             // "-" : stdin
  std::string format = "auto";  // auto | text | jsonl
  std::string field = "text";   // JSONL field holding the text
  // Blank lines of a text file become empty inputs instead of being skipped, so that outputs
  // stay line-aligned with the file (translate: hypotheses for `lmforge bleu`).
  bool keep_blank_lines = false;
};
// Adds --file, --format and --field (positional arguments are added by the caller).
void add_input_options(CLI::App* sub, InputOptions& in);
// Texts from the arguments, else --file, else stdin when it is not a terminal. Text input: one
// text per non-blank line (a trailing \r is dropped); JSONL: one object per non-blank line with a
// string `field`. ValueError naming the line for invalid UTF-8, bad JSON or a missing field, and
// when there is no text at all.
std::vector<std::string> read_inputs(const InputOptions& in, const std::string& what = "text");
// Reads a text-lines / JSONL file ("-" : stdin) the same way.
std::vector<std::string> read_text_file(const std::string& path, const std::string& format,
                                        const std::string& field, bool keep_blank_lines = false);
// ValueError "<where>: invalid UTF-8 at byte N" when `s` is not valid UTF-8.
void check_utf8(const std::string& s, const std::string& where);
// Shortens `s` to at most `width` display columns (code points), ending in "..." when cut.
std::string ellipsize(const std::string& s, size_t width);

}  // namespace lmf::cli

// ---- lmforge tokenize (apps/cli/cmd_tokenize.cpp, from the tokenizers branch) ------------------

struct TokenizeOptions {
  std::string model;               // model folder or tokenizer.json file
  std::vector<std::string> texts;  // positional; empty: --file or stdin lines
  std::string file;                // one text per line ("-" = stdin)
  std::optional<std::string> pair;
  std::optional<size_t> max_length;
  size_t stride = 0;
  bool json = false;
  bool no_special = false;
};

// `lmforge tokenize`: registers the sub-command and its options (bound to `opt`).
CLI::App* add_tokenize_command(CLI::App& app, TokenizeOptions& opt);
// Runs it: prints a table per text, or one JSON object per line with --json. Throws lmf::Error
// on bad input (missing folder, bad tokenizer.json, unreadable file).
int run_tokenize_command(const TokenizeOptions& opt);
