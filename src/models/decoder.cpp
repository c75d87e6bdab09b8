// The decoder-only models' per-layer KV cache (preallocated, bounded memory) and
// DecoderModel::make_cache.
#include "lmforge/models/decoder.h"

#include <cstring>

#include "lmforge/core/runtime.h"
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
  bool identity = nb == batch_;
  for (int64_t b = 0; identity && b < nb; ++b) identity = rows[b] == b;
  if (identity) return;  // beam search often keeps every beam in place
  if (relabel(rows)) return;
  for (auto [bufs, spares] : {std::pair{&k_, &spare_k_}, std::pair{&v_, &spare_v_}}) {
    spares->resize(bufs->size());
    for (size_t l = 0; l < bufs->size(); ++l) {
      Tensor& buf = (*bufs)[l];
      // Only the valid positions move; the destination keeps the full capacity. A (row, head)
      // block's first length_ positions are contiguous in [B, H, capacity, D]: one memcpy each,
      // spread over the threads. The destination is the spare buffer of the last reorder when
      // its shape fits (beam search: always), and the source becomes the next spare.
      const int64_t H = buf.size(1), D = buf.size(3);
      Tensor& spare = (*spares)[l];
      const bool reuse = spare.defined() && spare.dtype() == buf.dtype() && spare.dim() == 4 &&
                         spare.size(0) == nb && spare.size(1) == H &&
                         spare.size(2) == capacity_ && spare.size(3) == D &&
                         spare.is_contiguous() && spare.data_ptr() != buf.data_ptr();
      Tensor out = reuse ? spare : Tensor::empty({nb, H, capacity_, D}, buf.dtype());
      {
        const Tensor src = buf.contiguous();
        const auto* from = static_cast<const char*>(src.data_ptr());
        auto* to = static_cast<char*>(out.data_ptr());
        const int64_t block = capacity_ * D * static_cast<int64_t>(dtype_size(buf.dtype()));
        const int64_t used = length_ * D * static_cast<int64_t>(dtype_size(buf.dtype()));
#pragma omp parallel for num_threads(num_threads()) if (nb * H * used >= (int64_t{1} << 18))
        for (int64_t bh = 0; bh < nb * H; ++bh) {
          const int64_t b = bh / H, h = bh % H;
          if (used > 0)
            std::memcpy(to + (b * H + h) * block, from + (physical_row(rows[b]) * H + h) * block,
                        static_cast<size_t>(used));
        }
      }
      // Recycled only when nothing else holds the old buffer (no other handle, view or storage
      // user), so no tensor handed out earlier is overwritten later.
      const bool sole = buf.is_contiguous() && buf.handle_count() == 1 &&
                        buf.storage().use_count() == 1;
      spare = sole ? buf : Tensor();
      buf = out;
    }
  }
  batch_ = nb;
  rows_.clear();  // compacted: row b is buffer row b again
}

// Beam search keeps the batch size and mostly shuffles rows: row b becomes a new label for the
// buffer row that held old row rows[b] (rows_), so only a source taken by several rows is copied,
// into a buffer row nobody keeps. Not when something else holds the buffers (they are written).
bool KVCache::relabel(const std::vector<int64_t>& rows) {
  const int64_t nb = static_cast<int64_t>(rows.size());
  if (nb != batch_ || k_.empty()) return false;
  for (const auto* bufs : {&k_, &v_})
    for (const Tensor& buf : *bufs)
      if (!buf.is_contiguous() || buf.handle_count() != 1 || buf.storage().use_count() != 1)
        return false;
  std::vector<char> used(static_cast<size_t>(nb), 0);
  std::vector<int64_t> next(static_cast<size_t>(nb), -1);
  std::vector<std::pair<int64_t, int64_t>> copies;  // (from, to) buffer rows
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t p = physical_row(rows[b]);
    if (!used[p]) {
      used[p] = 1;
      next[b] = p;
    }
  }
  int64_t free_row = 0;
  for (int64_t b = 0; b < nb; ++b) {
    if (next[b] >= 0) continue;
    while (used[free_row]) ++free_row;
    used[free_row] = 1;
    next[b] = free_row;
    copies.emplace_back(physical_row(rows[b]), free_row);
  }
  if (!copies.empty() && length_ > 0) {
    const int64_t H = k_[0].size(1), D = k_[0].size(3);
    const int64_t es = static_cast<int64_t>(dtype_size(k_[0].dtype()));
    const int64_t block = capacity_ * D * es, used_bytes = length_ * D * es;
    const int64_t layers = static_cast<int64_t>(k_.size());
    const int64_t nc = static_cast<int64_t>(copies.size());
    const int64_t work = 2 * layers * nc * H;
#pragma omp parallel for num_threads(num_threads()) if (work * used_bytes >= (int64_t{1} << 18))
    for (int64_t w = 0; w < work; ++w) {
      const int64_t i = w / (nc * H), c = (w / H) % nc, h = w % H;
      auto* base = static_cast<char*>((i < layers ? k_[i] : v_[i - layers]).data_ptr());
      std::memcpy(base + (copies[c].second * H + h) * block, base + (copies[c].first * H + h) * block,
                  static_cast<size_t>(used_bytes));
    }
  }
  bool identity = true;
  for (int64_t b = 0; identity && b < nb; ++b) identity = next[b] == b;
  if (identity)
    rows_.clear();
  else
    rows_ = std::move(next);
  return true;
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
