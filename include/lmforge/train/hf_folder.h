// What the training objectives share: copying a model folder's tokenizer files next to the saved
// weights, reloading saved weights into live parameters, reading data and config files.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "lmforge/core/error.h"
#include "lmforge/models/model.h"

namespace lmf::tok {
class Tokenizer;
}

namespace lmf::train {

// Copies each of `names` that exists in `from` into `to` (overwriting); IoError naming the file
// when a copy fails. `from` empty: nothing.
void copy_existing_files(const std::string& from, const std::string& to,
                         std::initializer_list<const char*> names);

// The whole file as bytes; IoError naming it when it cannot be opened or read.
std::string read_file_bytes(const std::string& path);

// config.json text's "model_type" ("" when absent or not an object); ValueError naming `origin`
// when the text is not JSON.
std::string config_model_type(const std::string& config_text, const std::string& origin);

// Calls fn(record, where) for every record of a JSON file: one array of records ("file: record N")
// or JSON Lines ("file:line"; blank lines skipped). ValueError for invalid UTF-8 or JSON (naming
// file:line for JSON Lines); IoError when unreadable.
void for_each_json_record(
    const std::string& path,
    const std::function<void(const nlohmann::ordered_json&, const std::string&)>& fn);

// The records of a JSON(L) file that `parse(json, record)` accepts (it returns why a record is
// unusable, "" when it is usable; record.where is "file:line" before the call). Unusable ones are
// skipped and listed as "where: why" in `skipped`, or with `strict` refused (ValueError naming
// file:line); a file without a usable record is a ValueError naming `what` ("preference pair").
// `Data` has `records` (of a type with `where`) and `skipped`.
template <class Data, class Parse>
Data read_usable_records(const std::string& path, bool strict, const char* what, Parse parse) {
  Data out;
  for_each_json_record(path, [&](const nlohmann::ordered_json& j, const std::string& where) {
    typename decltype(Data::records)::value_type r;
    r.where = where;
    const std::string why = parse(j, r);
    if (why.empty()) {
      out.records.push_back(std::move(r));
      return;
    }
    LMF_CHECK(!strict, ValueError, "{}: {} (drop --strict-data to skip such records)", where, why);
    out.skipped.push_back(where + ": " + why);
  });
  LMF_CHECK(!out.records.empty(), ValueError, "{}: no usable {} ({} malformed{}{})", path, what,
            out.skipped.size(), out.skipped.empty() ? "" : ", e.g. ",
            out.skipped.empty() ? "" : out.skipped.front());
  return out;
}

// The named special tokens of a tokenizer folder's tokenizer_config.json as chat templates see them
// (bos_token, eos_token, ...; empty without the file) and its EOS string ("" when none).
struct TokenizerSpecials {
  nlohmann::ordered_json tokens = nlohmann::ordered_json::object();
  std::string eos;
};
TokenizerSpecials read_tokenizer_specials(const std::string& tokenizer_dir);

// Helpers the decoder objectives (clm, sft, reward, dpo) share to turn text into training ids.
// The folder's tokenizer with truncation and padding off (training data is cut by the objective).
tok::Tokenizer load_training_tokenizer(const std::string& tokenizer_dir);
// tokenizer(text) ids, with or without the tokenizer's special tokens.
std::vector<int32_t> encode_ids(const tok::Tokenizer& t, const std::string& text, bool special);
// How many leading ids a and b share (TRL's common_prefix_length).
size_t common_prefix_length(const std::vector<int32_t>& a, const std::vector<int32_t>& b);
// text with `eos` appended unless it already ends with it (TRL's add_eos); eos "" : unchanged.
std::string with_eos(std::string text, const std::string& eos);
// The chat template of a task: the file's text when given, else the tokenizer folder's
// (chat_template.jinja / tokenizer_config.json), else none.
std::optional<std::string> task_chat_template(const std::string& tokenizer_dir,
                                              const std::string& chat_template_file);
// ValueError naming `where` when an id is outside [0, vocab).
void check_ids_in_vocab(const std::vector<int32_t>& ids, int64_t vocab, const std::string& where);

// Moves a seeded share of `train` (at least one item) to `held_out`, keeping the order of both
// (a permutation seeded with `seed` picks the items). ValueError when nothing is left to train on.
template <class T>
void hold_out_share(std::vector<T>& train, std::vector<T>& held_out, double share, uint64_t seed) {
  std::vector<size_t> order(train.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t n =
      std::max<size_t>(1, static_cast<size_t>(share * static_cast<double>(order.size())));
  if (n >= order.size())
    throw ValueError("--eval-split " + std::to_string(share) + " leaves nothing to train on of " +
                     std::to_string(order.size()) + " examples");
  std::vector<bool> held(order.size(), false);
  for (size_t i = 0; i < n; ++i) held[order[i]] = true;
  std::vector<T> kept;
  for (size_t i = 0; i < train.size(); ++i)
    (held[i] ? held_out : kept).push_back(std::move(train[i]));
  train = std::move(kept);
}

// The training and held-out records of a task: read(train_file), and read(eval_file) when given,
// else a seeded share of the training records held out (hold_out_share); then capped at max_train /
// max_eval records (-1: all). `Data` has `records` and `skipped` (malformed records' places).
template <class Data>
struct TrainEvalRecords {
  decltype(Data::records) train, eval;
  std::vector<std::string> skipped;
};
template <class Data, class Read>
TrainEvalRecords<Data> read_train_eval(Read read, const std::string& train_file,
                                       const std::string& eval_file, double eval_split,
                                       uint64_t seed, int64_t max_train, int64_t max_eval) {
  TrainEvalRecords<Data> out;
  Data train = read(train_file);
  out.train = std::move(train.records);
  out.skipped = std::move(train.skipped);
  if (!eval_file.empty()) {
    Data e = read(eval_file);
    out.eval = std::move(e.records);
    out.skipped.insert(out.skipped.end(), e.skipped.begin(), e.skipped.end());
  } else if (eval_split > 0) {
    hold_out_share(out.train, out.eval, eval_split, seed);
  }
  if (max_train >= 0 && static_cast<int64_t>(out.train.size()) > max_train)
    out.train.resize(max_train);
  if (max_eval >= 0 && static_cast<int64_t>(out.eval.size()) > max_eval) out.eval.resize(max_eval);
  return out;
}

// Loads dir/model.safetensors into `model` strictly, copying into the existing parameter tensors
// (the optimizer holds them), as Objective::load_pretrained needs for --resume and the best model.
void load_saved_weights(models::PretrainedModel& model, const std::string& dir);

}  // namespace lmf::train
