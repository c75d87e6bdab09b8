// The decoder-only models' per-layer KV cache (preallocated, bounded memory) and
// DecoderModel::make_cache.
#include "lmforge/models/decoder.h"

#include "lmforge/ops/ops.h"

namespace lmf::models {

KVCache::KVCache(int64_t num_layers, int64_t batch, int64_t n_kv_heads, int64_t head_dim,
                 int64_t capacity)
    : batch_(batch), capacity_(capacity) {
  LMF_CHECK(num_layers > 0 && batch > 0 && n_kv_heads > 0 && head_dim > 0 && capacity > 0,
            ValueError,
            "KVCache: layers {}, batch {}, kv heads {}, head size {} and capacity {} must all be "
            "positive",
            num_layers, batch, n_kv_heads, head_dim, capacity);
  k_.reserve(num_layers);
  v_.reserve(num_layers);
  for (int64_t i = 0; i < num_layers; ++i) {
    // Uninitialised: only positions [0, length) are ever read.
    k_.push_back(Tensor::empty({batch, n_kv_heads, capacity, head_dim}));
    v_.push_back(Tensor::empty({batch, n_kv_heads, capacity, head_dim}));
  }
}

void KVCache::advance(int64_t n) {
  LMF_CHECK(n >= 0 && length_ + n <= capacity_, ValueError,
            "KVCache: advancing {} positions past {} exceeds the capacity {}", n, length_,
            capacity_);
  length_ += n;
}

void KVCache::reorder(const std::vector<int64_t>& rows) {
  LMF_CHECK(!rows.empty(), ValueError, "KVCache::reorder: no rows given");
  for (int64_t r : rows)
    LMF_CHECK(r >= 0 && r < batch_, IndexError,
              "KVCache::reorder: row {} is outside the cache's batch of {}", r, batch_);
  const int64_t nb = static_cast<int64_t>(rows.size());
  for (std::vector<Tensor>* bufs : {&k_, &v_})
    for (Tensor& buf : *bufs) {
      // Only the valid positions move; the new buffer keeps the full capacity.
      Tensor out = Tensor::empty({nb, buf.size(1), capacity_, buf.size(3)});
      if (length_ > 0)
        for (int64_t b = 0; b < nb; ++b)
          out.select(0, b)
              .narrow(1, 0, length_)
              .copy_(buf.select(0, rows[b]).narrow(1, 0, length_));
      buf = out;
    }
  batch_ = nb;
}

void KVCache::truncate(int64_t length) {
  LMF_CHECK(length >= 0 && length <= length_, ValueError,
            "KVCache::truncate: length {} must lie in [0, {}]", length, length_);
  length_ = length;
}

size_t KVCache::bytes() const {
  size_t n = 0;
  for (const auto* bufs : {&k_, &v_})
    for (const Tensor& t : *bufs) n += t.nbytes();
  return n;
}

KVCache DecoderModel::make_cache(int64_t batch, int64_t capacity) const {
  const DecoderSpec s = spec();
  LMF_CHECK(s.max_positions <= 0 || capacity <= s.max_positions, ValueError,
            "{}: a KV cache of {} positions exceeds the model's {} maximum positions",
            architecture(), capacity, s.max_positions);
  return KVCache(s.num_layers, batch, s.n_kv_heads, s.head_dim, capacity);
}

}  // namespace lmf::models
