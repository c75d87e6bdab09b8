// Helpers shared by the pretraining, fine-tuning and training-step tests: input files written to
// a temp folder, the message of the lmf::Error a call throws, L2 norms and relative differences of
// tensors (the goldens' tolerances are relative L2).
#pragma once
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "lmforge/core/error.h"
#include "lmforge/core/tensor.h"

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

}  // namespace lmf::test
