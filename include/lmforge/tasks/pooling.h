// Sentence pooling as sentence-transformers' Pooling module does it, and L2 normalisation as
// torch.nn.functional.normalize.
#pragma once
#include <string>

#include "lmforge/core/tensor.h"

namespace lmf::tasks {

enum class Pooling { cls, mean, max, mean_sqrt_len, pooler };

// Parses "cls" | "mean" | "max" | "mean_sqrt_len" | "pooler" (ValueError listing them otherwise).
Pooling parse_pooling(const std::string& name);
std::string pooling_name(Pooling p);

// hidden [B, T, H], attention_mask [B, T] (1 = token). cls: hidden[:, 0]; mean: masked mean with
// the token count clamped to >= 1e-9; max: masked max (padding set to -1e9 first);
// mean_sqrt_len: masked sum / sqrt(count). `pooler` is not a reduction: ValueError here.
Tensor pool(const Tensor& hidden, const Tensor& attention_mask, Pooling mode);

// x / max(||x||_2, eps) over the last dim.
Tensor l2_normalize(const Tensor& x, double eps = 1e-12);

// Cosine similarity matrix [Na, Nb] of the rows of a [Na, H] and b [Nb, H].
Tensor cosine_similarity_matrix(const Tensor& a, const Tensor& b);

}  // namespace lmf::tasks
