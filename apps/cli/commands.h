// Sub-commands of the lmforge CLI that live in their own files.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

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
