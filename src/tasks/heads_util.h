// Internal helpers of the head pipelines (src/tasks/heads_*.cpp).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf::tasks {

// Byte position of each code point of UTF-8 `text`, plus text.size() at the end.
std::vector<size_t> code_point_starts(std::string_view text);
// A float tensor's values in row-major order.
std::vector<float> logits_row(const Tensor& t);
// Softmax of n values, computed in double.
std::vector<double> softmax(const float* x, size_t n);
// Unicode simple lower-casing (for comparing answers as HF's str.lower() does).
std::string lowercase(std::string_view text);
// Number of code points (Python len()).
size_t code_point_count(std::string_view text);

}  // namespace lmf::tasks
