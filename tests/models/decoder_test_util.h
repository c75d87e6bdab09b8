// Shared helpers of the decoder tests: the fixtures of scripts/reference/gen_decoder_goldens.py
// (tests/fixtures/decoder/<name>/), tensors from golden JSON, comparisons.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "lmforge/io/checkpoint.h"
#include "lmforge/models/decoder.h"
#include "lmforge/models/model.h"

namespace lmf::models::test {

using nlohmann::json;

inline std::string decoder_fixture(const std::string& name) {
  return std::string(LMF_FIXTURES_DIR) + "/decoder/" + name;
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline json read_decoder_golden(const std::string& name) {
  return json::parse(read_text(decoder_fixture(name) + "/golden.json"));
}

inline Tensor golden_tensor(const json& j) {
  Shape shape = j.at("shape").get<Shape>();
  const json& d = j.at("data");
  if (!d.empty() && d[0].is_number_integer())
    return Tensor::from_vector(d.get<std::vector<int64_t>>(), shape);
  return Tensor::from_vector(d.get<std::vector<float>>(), shape);
}

// Max |a - b| over rows where mask [B, T] is 1 (a, b: [B, T, ...]).
inline double max_abs_diff_masked(const Tensor& a, const Tensor& b, const Tensor& mask) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return 1e9;
  const auto x = a.contiguous().to_vector<float>(), y = b.contiguous().to_vector<float>();
  const auto m = mask.to_vector<int64_t>();
  const size_t inner = x.size() / m.size();
  double r = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (m[i / inner]) r = std::max(r, std::abs(double(x[i]) - double(y[i])));
  return r;
}

// max |a - b| / max |b|.
inline double rel_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return 1e9;
  const auto x = a.contiguous().to_vector<float>(), y = b.contiguous().to_vector<float>();
  double d = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    d = std::max(d, std::abs(double(x[i]) - double(y[i])));
    n = std::max(n, std::abs(double(y[i])));
  }
  return d / std::max(n, 1e-30);
}

// logits [B, T, V] -> the golden's views: [..., :128], logsumexp and argmax over V.
inline Tensor logits_head(const Tensor& logits, int64_t keep = 128) {
  return logits.narrow(2, 0, keep).contiguous();
}
inline Tensor logsumexp_last(const Tensor& logits) {
  const Tensor m = max(logits, -1, true);
  return (log(sum(exp(logits - m), {-1})) + m.squeeze(-1)).contiguous();
}

// save_pretrained(m) into a temporary folder named by `tag`: config.json and model.safetensors must
// equal those of `dir` (what transformers wrote) byte for byte.
inline void expect_saved_like(const PretrainedModel& m, const std::string& dir,
                              const std::string& tag) {
  const std::string out = ::testing::TempDir() + "/lmf_save_" + tag;
  std::filesystem::remove_all(out);
  save_pretrained(m, out);
  EXPECT_EQ(read_text(out + "/config.json"), read_text(dir + "/config.json")) << tag;
  EXPECT_TRUE(read_text(out + "/model.safetensors") == read_text(dir + "/model.safetensors"))
      << tag << ": model.safetensors differs from transformers'";
  std::filesystem::remove_all(out);
}

}  // namespace lmf::models::test
