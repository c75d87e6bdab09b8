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
  if (reorder_in_place(rows)) return;
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
            std::memcpy(to + (b * H + h) * block, from + (rows[b] * H + h) * block,
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
}

// Beam search keeps most beams where they are: rows with rows[b] == b stay untouched, a moved
// row copies its source in place, and a source that is itself overwritten is saved first. Taken
// when that moves fewer rows than a full copy would (and nothing else shares the buffers).
bool KVCache::reorder_in_place(const std::vector<int64_t>& rows) {
  const int64_t nb = static_cast<int64_t>(rows.size());
  if (nb != batch_ || length_ == 0 || k_.empty()) return false;
  std::vector<int64_t> moved, saved;
  std::vector<int64_t> slot(nb, -1);  // old row -> its index in `saved`, or -1
  for (int64_t b = 0; b < nb; ++b) {
    if (rows[b] == b) continue;
    moved.push_back(b);
    const int64_t r = rows[b];
    if (rows[r] != r && slot[r] < 0) {
      slot[r] = static_cast<int64_t>(saved.size());
      saved.push_back(r);
    }
  }
  if (2 * (moved.size() + saved.size()) > static_cast<size_t>(nb)) return false;
  for (const auto* bufs : {&k_, &v_})
    for (const Tensor& buf : *bufs)
      if (!buf.is_contiguous() || buf.handle_count() != 1 || buf.storage().use_count() != 1)
        return false;
  const int64_t H = k_[0].size(1), D = k_[0].size(3);
  const size_t esize = dtype_size(k_[0].dtype());
  const int64_t block = capacity_ * D * static_cast<int64_t>(esize);  // bytes per (row, head)
  const int64_t used = length_ * D * static_cast<int64_t>(esize);
  const int64_t layers = static_cast<int64_t>(k_.size());
  // saved rows: [2 * layers][saved][H][used bytes]
  const int64_t per_buf = static_cast<int64_t>(saved.size()) * H * used;
  scratch_.resize(static_cast<size_t>(2 * layers * per_buf));
  auto buf_of = [&](int64_t i) -> Tensor& { return i < layers ? k_[i] : v_[i - layers]; };
  const int64_t ns = static_cast<int64_t>(saved.size()), nm = static_cast<int64_t>(moved.size());
  const bool par = (nm + ns) * H * used * 2 * layers >= (int64_t{1} << 18);
#pragma omp parallel num_threads(num_threads()) if (par)
  {
#pragma omp for collapse(2)
    for (int64_t i = 0; i < 2 * layers; ++i)
      for (int64_t e = 0; e < ns * H; ++e) {
        const auto* from = static_cast<const char*>(buf_of(i).data_ptr());
        const int64_t r = saved[e / H], h = e % H;
        std::memcpy(scratch_.data() + i * per_buf + e * used, from + (r * H + h) * block,
                    static_cast<size_t>(used));
      }
#pragma omp for collapse(2)
    for (int64_t i = 0; i < 2 * layers; ++i)
      for (int64_t e = 0; e < nm * H; ++e) {
        auto* base = static_cast<char*>(buf_of(i).data_ptr());
        const int64_t b = moved[e / H], h = e % H, r = rows[b];
        const char* from = slot[r] >= 0 ? scratch_.data() + i * per_buf + (slot[r] * H + h) * used
                                        : base + (r * H + h) * block;
        std::memcpy(base + (b * H + h) * block, from, static_cast<size_t>(used));
      }
  }
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
