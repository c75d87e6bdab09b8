// Helpers shared by the pretraining, fine-tuning and training-step tests: input files written to
// a temp folder, the message of the lmf::Error a call throws, L2 norms and relative differences of
// tensors (the goldens' tolerances are relative L2).
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "lmforge/core/error.h"
#include "lmforge/core/tensor.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/train/trainer.h"

namespace lmf::test {

// Writes `content` to <temp dir>/<folder>/<name> (binary) and returns the path.
inline std::string write_temp_file(const std::string& folder, const std::string& name,
                                   const std::string& content) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / folder;
  std::filesystem::create_directories(dir);
  const std::filesystem::path p = dir / name;
  std::ofstream(p, std::ios::binary) << content;
  return p.string();
}

// What f() throws as an lmf::Error, or "" when it throws nothing.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const lmf::Error& e) {
    return e.what();
  }
  return "";
}

// ||t|| (L2, in double).
inline double l2_norm(const lmf::Tensor& t) {
  double s = 0;
  for (float v : t.to_vector<float>()) s += double(v) * v;
  return std::sqrt(s);
}

// ||a - b|| / ||b|| (L2, in double); a and b must have the same number of elements.
inline double rel_l2(const lmf::Tensor& a, const lmf::Tensor& b) {
  const auto x = a.to_vector<float>(), y = b.to_vector<float>();
  if (x.size() != y.size()) return INFINITY;
  double d = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    d += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    n += double(y[i]) * y[i];
  }
  return std::sqrt(d) / std::max(std::sqrt(n), 1e-30);
}

// The options of the one-step comparisons with the goldens' Trainer step: one optimizer step of
// `batch` x `accumulation` examples, AdamW lr 1e-3 with weight decay 0.01, clipping 1.0, a log
// line per step, no checkpoints, no progress bar.
inline lmf::train::TrainerOptions one_step_options(const std::filesystem::path& out, int64_t batch,
                                                   int64_t accumulation = 1) {
  lmf::train::TrainerOptions t;
  t.output_dir = out.string();
  t.max_steps = 1;
  t.per_device_train_batch_size = batch;
  t.gradient_accumulation_steps = accumulation;
  t.learning_rate = 1e-3;
  t.weight_decay = 0.01;
  t.max_grad_norm = 1.0;
  t.save_steps = 0;
  t.progress = false;
  t.logging_steps = 1;
  return t;
}

// A fresh copy of the decoder fixture folder `src` in `dst` without golden.json and with every
// dropout of its config.json at 0 (as the goldens' models run).
inline void copy_decoder_without_dropout(const std::filesystem::path& src,
                                         const std::filesystem::path& dst) {
  namespace fs = std::filesystem;
  fs::remove_all(dst);
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "golden.json") fs::copy_file(e.path(), dst / e.path().filename());
  std::ifstream in(dst / "config.json");
  nlohmann::json c = nlohmann::json::parse(in);
  in.close();
  for (const char* k :
       {"attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_first_dropout", "attention_dropout"})
    if (c.contains(k)) c[k] = 0.0;
  std::ofstream(dst / "config.json") << c.dump(2);
}

// Every tensor of the model.safetensors a one-step run wrote against the golden's
// "param.<name>": a failure when the golden lacks it, else rel-L2 <= 1e-3 (the goldens' tolerance
// for updated parameters). Returns how many were compared, for the caller's count check.
inline int expect_saved_params_match_golden(const std::filesystem::path& model_file,
                                            const lmf::io::StateDict& golden) {
  const lmf::io::StateDict after = lmf::io::load_safetensors(model_file.string());
  int checked = 0;
  for (const auto& [name, t] : after) {
    auto p = golden.find("param." + name);
    if (p == golden.end()) {
      ADD_FAILURE() << "the golden has no param." << name;
      continue;
    }
    EXPECT_LE(rel_l2(t, p->second), 1e-3) << name;
    ++checked;
  }
  return checked;
}

// The tiny decoders' tokenizer (fixtures/decoder/llama/tokenizer.json) with <s>, </s>, <pad> and
// <unk> as its special tokens and no chat template, in <temp dir>/lmf_<tag>_tok_<pid>.
inline std::string tiny_decoder_tokenizer(const std::string& fixtures, const std::string& tag) {
  namespace fs = std::filesystem;
  const fs::path d =
      fs::temp_directory_path() / ("lmf_" + tag + "_tok_" + std::to_string(::getpid()));
  fs::create_directories(d);
  fs::copy_file(fixtures + "/decoder/llama/tokenizer.json", d / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  std::ofstream(d / "tokenizer_config.json")
      << R"({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"})";
  return d.string();
}

}  // namespace lmf::test
