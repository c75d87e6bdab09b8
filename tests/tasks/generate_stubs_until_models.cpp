// TEST-ONLY stand-ins for KVCache / DecoderModel::make_cache (until src/models/decoder.cpp from
// the models branch is merged) and PretrainedModel::load (until main's src/models/model.cpp is):
// each part compiles only while its real source file is absent, so merging needs no edit here
// (delete this file once both are in).
#include <algorithm>

#include "lmforge/core/error.h"
#include "lmforge/models/decoder.h"

namespace lmf::models {

#if !__has_include("models/decoder.cpp")
KVCache::KVCache(int64_t num_layers, int64_t batch, int64_t n_kv_heads, int64_t head_dim,
                 int64_t capacity)
    : batch_(batch), capacity_(capacity) {
  for (int64_t l = 0; l < num_layers; ++l) {
    k_.push_back(Tensor::zeros({batch, n_kv_heads, capacity, head_dim}));
    v_.push_back(Tensor::zeros({batch, n_kv_heads, capacity, head_dim}));
  }
}

void KVCache::advance(int64_t n) {
  LMF_CHECK(length_ + n <= capacity_, ValueError,
            "KVCache: {} + {} positions exceed the capacity {}", length_, n, capacity_);
  length_ += n;
}

void KVCache::reorder(const std::vector<int64_t>& rows) {
  for (auto* list : {&k_, &v_}) {
    for (auto& t : *list) {
      Tensor src = t.clone();
      Tensor dst =
          Tensor::zeros({static_cast<int64_t>(rows.size()), t.size(1), t.size(2), t.size(3)});
      for (size_t r = 0; r < rows.size(); ++r)
        dst.select(0, static_cast<int64_t>(r)).copy_(src.select(0, rows[r]));
      t = dst;
    }
  }
  batch_ = static_cast<int64_t>(rows.size());
}

void KVCache::truncate(int64_t length) {
  LMF_CHECK(length <= length_, ValueError, "KVCache::truncate: {} > length {}", length, length_);
  length_ = length;
}

size_t KVCache::bytes() const {
  size_t n = 0;
  for (const auto& t : k_) n += t.nbytes();
  for (const auto& t : v_) n += t.nbytes();
  return n;
}

KVCache DecoderModel::make_cache(int64_t batch, int64_t capacity) const {
  const DecoderSpec s = spec();
  return KVCache(s.num_layers, batch, s.n_kv_heads, s.head_dim, capacity);
}

#endif

#if !__has_include("models/model.cpp")
LoadReport PretrainedModel::load(const nn::StateDict&, const LoadOptions&, const std::string&) {
  return {};
}
#endif

}  // namespace lmf::models
