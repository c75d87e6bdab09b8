#include "lmforge/core/tensor.h"

#if defined(__linux__)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "core/strided.h"
#include "lmforge/core/autograd.h"

namespace lmf {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

std::string shape_str(const Shape& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

int64_t wrap_dim(int64_t d, int64_t rank, const char* op) {
  const int64_t r = std::max<int64_t>(rank, 1);
  LMF_CHECK(d >= -r && d < r, IndexError, "{}: dim {} out of range for a tensor of rank {}", op, d,
            rank);
  return d < 0 ? d + r : d;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    LMF_CHECK(da == db || da == 1 || db == 1, ShapeError,
              "{}: shapes {} and {} cannot be broadcast together (dim {}: {} vs {})", op,
              shape_str(a), shape_str(b), i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace detail {
Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  const size_t n = shape.size(), r = t.shape().size();
  LMF_CHECK(r <= n, ShapeError, "cannot broadcast {} to {}", t.describe(), shape_str(shape));
  Shape st(n, 0);
  for (size_t i = 0; i < r; ++i) {
    const int64_t d = t.shape()[i], target = shape[n - r + i];
    LMF_CHECK(d == target || d == 1, ShapeError, "cannot broadcast {} to {}", t.describe(),
              shape_str(shape));
    st[n - r + i] = d == 1 ? 0 : t.strides()[i];
  }
  return st;
}
}  // namespace detail

// ---- Storage ---------------------------------------------------------------------------------

namespace {

// Freed CPU blocks of at least kLargeBlock bytes are kept (1 GiB, or LMFORGE_BLOCK_CACHE_MB) and
// handed out again for requests of the same or a slightly smaller size. Op outputs are allocated
// and freed constantly, and fresh memory is page-faulted in 4 KiB at a time: measured here, a new
// 19-48 MB GEMM output cost 8-20 ms against a 50-110 ms GEMM. Blocks from 64 KiB up are kept:
// left to malloc, the 0.1-1 MB activations of a decoder's prompt pieces fragment its heap (73 MB
// freed but resident after a SmolLM2 prefill, against ~20 MB of reused blocks here).
constexpr size_t kLargeBlock = size_t{64} << 10;
// The default limit: a quarter of the physical memory, at least 1 GiB and at most 8 GiB. A training
// step frees more than 1 GiB of activations (SmolLM2-135M, 4 x 256 tokens: ~2-3 GiB); what the
// cache cannot keep goes back to malloc, which unmaps it, and the next step faults it in again:
// measured on the 2-core machine, a full fine-tune step took 5.6-5.9 s with 1 GiB and 4.5 s with
// 4 GiB (8 GiB: the same), peak RSS +3 %; LoRA 3.7 -> 3.6 s with RSS 4.4 -> 3.7 GB (less
// fragmentation). The peak is bounded by the step's own peak, since blocks are only cached once
// freed. LMFORGE_BLOCK_CACHE_MB overrides it (0: no cache, every block goes back to malloc).
size_t cache_limit() {
  static const size_t limit = [] {
    size_t fallback = size_t{1} << 30;
#if defined(__linux__)
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0)
      fallback = std::clamp<size_t>(static_cast<size_t>(pages) * static_cast<size_t>(page) / 4,
                                    size_t{1} << 30, size_t{8} << 30);
#endif
    const char* env = std::getenv("LMFORGE_BLOCK_CACHE_MB");
    if (env == nullptr || *env == '\0') return fallback;
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(env, &end, 10);
    return end != nullptr && *end == '\0' ? static_cast<size_t>(mb) << 20 : fallback;
  }();
  return limit;
}

class LargeBlockCache {
 public:
  static LargeBlockCache& get() {
    static auto* cache = new LargeBlockCache();  // never destroyed: storages may outlive statics
    return *cache;
  }
  // A cached block of at least `capacity` bytes (and at most 1/8 more), or null; on success
  // `capacity` becomes the block's size.
  void* take(size_t& capacity) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.lower_bound(capacity);
    if (it == blocks_.end() || it->first > capacity + capacity / 8) return nullptr;
    void* p = it->second;
    capacity = it->first;
    bytes_ -= it->first;
    blocks_.erase(it);
    return p;
  }
  // Keeps a freed block, evicting the largest cached ones when over the limit.
  void put(void* p, size_t capacity) {
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks_.emplace(capacity, p);
      bytes_ += capacity;
      while (bytes_ > cache_limit()) {
        auto last = std::prev(blocks_.end());
        bytes_ -= last->first;
        evicted.push_back(last->second);
        blocks_.erase(last);
      }
    }
    for (void* e : evicted) std::free(e);
  }

 private:
  std::mutex mu_;
  std::multimap<size_t, void*> blocks_;
  size_t bytes_ = 0;
};

// Blocks of at least kHugeBlock bytes start on a 2 MiB boundary and ask for transparent huge pages
// over their whole 2 MiB chunks (the partial last chunk stays in small pages, so resident memory
// does not grow). Streaming a decoder's packed weights (0.5 GB per token) then walks the page
// tables once per 2 MiB instead of once per 4 KiB. LMFORGE_HUGEPAGES=0 turns it off.
constexpr size_t kHugeBlock = size_t{4} << 20, kHugePage = size_t{2} << 20;
bool huge_pages_wanted() {
  static const bool on = [] {
    const char* e = std::getenv("LMFORGE_HUGEPAGES");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

// `size` bytes on a 2 MiB boundary with MADV_HUGEPAGE over the first `advised` bytes (advice
// only: errors ignored); null when out of memory.
void* huge_aligned_alloc(size_t size, size_t advised) {
  void* p = nullptr;
  if (::posix_memalign(&p, kHugePage, size) != 0) return nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (advised > 0) ::madvise(p, advised, MADV_HUGEPAGE);
#endif
  return p;
}

void* allocate_block(size_t capacity) {
  if (capacity >= kHugeBlock && huge_pages_wanted())
    return huge_aligned_alloc(capacity, capacity / kHugePage * kHugePage);
  return std::aligned_alloc(64, capacity);
}

// A 2 MiB-aligned huge-page region that pooled storages are carved from; freed with its last user.
struct HugePool {
  void* base = nullptr;
  size_t size = 0, used = 0;
  ~HugePool() { std::free(base); }
};

std::shared_ptr<HugePool> new_pool(size_t size) {
  auto pool = std::make_shared<HugePool>();
  pool->size = (size + kHugePage - 1) / kHugePage * kHugePage;
  pool->base = huge_aligned_alloc(pool->size, pool->size);
  return pool->base ? pool : nullptr;
}

}  // namespace

std::shared_ptr<Storage> Storage::allocate_pooled(size_t nbytes) {
  if (!huge_pages_wanted()) return allocate(nbytes);
  constexpr size_t kPool = size_t{32} << 20;
  static std::mutex mu;
  // Live pools, first fit: a buffer that does not fit the newest pool's tail may fit an older
  // one's, so a pool's unused tail (resident once its first huge page is touched) stays small.
  static std::vector<std::weak_ptr<HugePool>> pools;
  const size_t capacity = std::max<size_t>(64, (nbytes + 63) / 64 * 64);
  std::shared_ptr<HugePool> pool;
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (capacity > kPool / 2) {
      pool = new_pool(capacity);
    } else {
      std::erase_if(pools, [](const std::weak_ptr<HugePool>& w) { return w.expired(); });
      for (const auto& w : pools) {
        auto live = w.lock();
        if (live && live->used + capacity <= live->size) {
          pool = std::move(live);
          break;
        }
      }
      if (!pool) {
        pool = new_pool(kPool);
        if (pool) pools.push_back(pool);
      }
    }
    if (pool) {
      p = static_cast<char*>(pool->base) + pool->used;
      pool->used += capacity;
    }
  }
  if (!pool) fail("out of memory allocating {} bytes", nbytes);
  return wrap(p, nbytes, [pool] {});
}

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  LMF_CHECK(device == Device::cpu, Error, "device {} is not built into this lmforge",
            device_name(device));
  auto s = std::shared_ptr<Storage>(new Storage());
  size_t capacity = std::max<size_t>(64, (nbytes + 63) / 64 * 64);
  const bool large = capacity >= kLargeBlock;
  s->data_ = large ? LargeBlockCache::get().take(capacity) : nullptr;
  if (!s->data_) s->data_ = allocate_block(capacity);
  if (!s->data_) fail("out of memory allocating {} bytes", nbytes);
  s->nbytes_ = nbytes;
  s->device_ = device;
  void* p = s->data_;
  if (large)
    s->release_ = [p, capacity] { LargeBlockCache::get().put(p, capacity); };
  else
    s->release_ = [p] { std::free(p); };
  return s;
}

std::shared_ptr<Storage> Storage::wrap(void* data, size_t nbytes, std::function<void()> release,
                                       Device device) {
  auto s = std::shared_ptr<Storage>(new Storage());
  s->data_ = data;
  s->nbytes_ = nbytes;
  s->device_ = device;
  s->release_ = std::move(release);
  return s;
}

void Storage::release_pages(const void* data, size_t nbytes, bool known_clean) {
#if defined(__linux__)
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (page_size <= 0) return;
  const auto page = static_cast<uintptr_t>(page_size);
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t first = (begin + page - 1) / page,
                  last = (begin + nbytes) / page;  // page numbers
  if (last <= first) return;
  auto drop = [&](uintptr_t from, uintptr_t to) {  // pages [from, to)
    if (to > from)
      ::madvise(reinterpret_cast<void*>(from * page), (to - from) * page, MADV_DONTNEED);
  };
  if (known_clean) return drop(first, last);
  // pagemap: one 64-bit entry per page; bit 63 present, bit 62 swapped, bit 61 file-backed (or
  // shared). A present private page without bit 61 was written (copy-on-write): keep it.
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  constexpr uintptr_t kChunk = 4096;
  std::vector<uint64_t> entries(kChunk);
  uintptr_t run = first;  // start of the current run of droppable pages
  for (uintptr_t p0 = first; p0 < last; p0 += kChunk) {
    const uintptr_t count = std::min(kChunk, last - p0);
    const ssize_t got = ::pread(fd, entries.data(), count * 8, static_cast<off_t>(p0 * 8));
    if (got != static_cast<ssize_t>(count * 8)) {
      drop(run, p0);
      run = last;
      break;
    }
    for (uintptr_t i = 0; i < count; ++i) {
      const uint64_t e = entries[i];
      const bool present = e >> 63 & 1, swapped = e >> 62 & 1, file = e >> 61 & 1;
      const bool droppable = present ? file : !swapped;
      if (!droppable) {
        drop(run, p0 + i);
        run = p0 + i + 1;
      }
    }
  }
  drop(run, last);
  ::close(fd);
#else
  (void)data, (void)nbytes, (void)known_clean;
#endif
}

void Storage::release_mapped(const Tensor& t) {
  if (t.defined() && t.storage() && t.storage()->file_mapped() && t.is_contiguous())
    release_pages(t.data_ptr(), t.nbytes());
}

Storage::~Storage() {
  if (release_) release_();
}

// ---- Tensor basics ---------------------------------------------------------------------------

namespace {
TensorImpl& checked(const std::shared_ptr<TensorImpl>& p) {
  LMF_CHECK(p != nullptr, ValueError, "use of an undefined (default-constructed) tensor");
  return *p;
}
std::shared_ptr<TensorImpl> make_impl(std::shared_ptr<Storage> st, Shape shape, Shape strides,
                                      int64_t offset, DType dt) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(st);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dt;
  return impl;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    LMF_CHECK(d >= 0, ShapeError, "negative dimension in shape {}", shape_str(shape));
  auto st = Storage::allocate(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  return Tensor(make_impl(std::move(st), shape, contiguous_strides(shape), 0, dtype));
}

Tensor Tensor::from_blob(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype,
                         int64_t offset) {
  const size_t need = static_cast<size_t>(offset + shape_numel(shape)) * dtype_size(dtype);
  LMF_CHECK(need <= storage->nbytes(), ShapeError,
            "from_blob: {} {} at offset {} needs {} bytes but the storage has {}",
            dtype_name(dtype), shape_str(shape), offset, need, storage->nbytes());
  return Tensor(make_impl(std::move(storage), shape, contiguous_strides(shape), offset, dtype));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.data_ptr(), 0, t.nbytes());
  return t;
}
Tensor Tensor::ones(const Shape& shape, DType dtype) {
  return full(shape, 1.0, dtype);
}
Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return t;
}
Tensor Tensor::scalar(double value, DType dtype) {
  return full({}, value, dtype);
}
Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, DType::i64);
  auto* p = t.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  return t.to(dtype);
}

const Shape& Tensor::shape() const {
  return checked(impl_).shape;
}
const Shape& Tensor::strides() const {
  return checked(impl_).strides;
}
int64_t Tensor::size(int64_t d) const {
  return shape()[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::numel() const {
  return shape_numel(shape());
}
int64_t Tensor::offset() const {
  return checked(impl_).offset;
}
DType Tensor::dtype() const {
  return checked(impl_).dtype;
}
Device Tensor::device() const {
  return checked(impl_).storage->device();
}
const std::shared_ptr<Storage>& Tensor::storage() const {
  return checked(impl_).storage;
}
void* Tensor::data_ptr() const {
  auto& i = checked(impl_);
  return static_cast<char*>(i.storage->data()) +
         i.offset * static_cast<int64_t>(dtype_size(i.dtype));
}
bool Tensor::is_contiguous() const {
  const auto& s = shape();
  const auto& st = strides();
  int64_t expect = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (s[i] == 1) continue;
    if (st[i] != expect) return false;
    expect *= s[i];
  }
  return true;
}
std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  return fmt::format("{}{}", dtype_name(dtype()), shape_str(shape()));
}

Tensor Tensor::alias_with(const Shape& shape, const Shape& strides, int64_t offset) const {
  auto& i = checked(impl_);
  return Tensor(make_impl(i.storage, shape, strides, offset, i.dtype));
}

Tensor Tensor::detach() const {
  auto& i = checked(impl_);
  return Tensor(make_impl(i.storage, i.shape, i.strides, i.offset, i.dtype));
}

// ---- In-place copy / fill ----------------------------------------------------------------------

void Tensor::copy_(const Tensor& src) {
  const Shape bst = detail::broadcast_strides(src, shape());
  const DType dd = dtype(), sd = src.dtype();
  if (dd == sd && is_contiguous() && src.is_contiguous() && src.shape() == shape()) {
    std::memmove(data_ptr(), src.data_ptr(), nbytes());
    return;
  }
  char* dbase = static_cast<char*>(data_ptr());
  const char* sbase = static_cast<const char*>(src.data_ptr());
  const Shape& dst_st = strides();
  visit_dtype(dd, [&](auto dz) {
    using D = decltype(dz);
    visit_dtype(sd, [&](auto sz) {
      using S = decltype(sz);
      D* d = reinterpret_cast<D*>(dbase);
      const S* s = reinterpret_cast<const S*>(sbase);
      detail::for_each_run<2>(shape(), {&dst_st, &bst}, [&](auto off, int64_t n, auto inner) {
        D* dp = d + off[0];
        const S* sp = s + off[1];
        for (int64_t k = 0; k < n; ++k) {
          if constexpr (std::is_same_v<D, S>) {
            dp[k * inner[0]] = sp[k * inner[1]];
          } else if constexpr (std::is_same_v<D, bf16_t> && std::is_same_v<S, float>) {
            dp[k * inner[0]].bits = f32_to_bf16(sp[k * inner[1]]);
          } else if constexpr (std::is_same_v<D, float> && std::is_same_v<S, bf16_t>) {
            dp[k * inner[0]] = bf16_to_f32(sp[k * inner[1]].bits);
          } else {
            dp[k * inner[0]] = from_double<D>(to_double(sp[k * inner[1]]));
          }
        }
      });
    });
  });
}

void Tensor::fill_(double value) {
  const Shape& st = strides();
  visit_dtype(dtype(), [&](auto z) {
    using T = decltype(z);
    const T v = from_double<T>(value);
    T* p = static_cast<T*>(data_ptr());
    detail::for_each_run<1>(shape(), {&st}, [&](auto off, int64_t n, auto inner) {
      for (int64_t k = 0; k < n; ++k) p[off[0] + k * inner[0]] = v;
    });
  });
}

double Tensor::at(const std::vector<int64_t>& index) const {
  LMF_CHECK(static_cast<int64_t>(index.size()) == dim(), IndexError,
            "at: {} indices for a tensor of rank {}", index.size(), dim());
  int64_t off = 0;
  for (int64_t i = 0; i < dim(); ++i) {
    LMF_CHECK(index[i] >= 0 && index[i] < shape()[i], IndexError,
              "at: index {} out of range for dim {} of size {}", index[i], i, shape()[i]);
    off += index[i] * strides()[i];
  }
  return visit_dtype(dtype(), [&](auto z) {
    using T = decltype(z);
    return to_double(static_cast<const T*>(data_ptr())[off]);
  });
}

double Tensor::item() const {
  LMF_CHECK(numel() == 1, ValueError, "item() on {} which has {} elements", describe(), numel());
  return at(std::vector<int64_t>(dim(), 0));
}

// ---- Differentiable views and copies ----------------------------------------------------------

namespace {
bool view_strides(const Tensor& t, const Shape& shape, Shape& out) {
  // Computes strides for viewing t with `shape` without copying (as torch's computeStride).
  const Shape& os = t.shape();
  const Shape& ost = t.strides();
  out.assign(shape.size(), 0);
  if (t.numel() == 0 || os.empty()) {  // empty or a scalar: any shape of that numel is a view
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = ost.empty() ? 1 : ost.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t td = static_cast<int64_t>(os.size()) - 1; td >= 0; --td) {
    tensor_numel *= os[td];
    if (td == 0 || (os[td - 1] != 1 && ost[td - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (td > 0) {
        chunk_base_stride = ost[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape s = shape;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      LMF_CHECK(infer < 0, ShapeError, "{}: only one dimension can be -1 in {}", op,
                shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      LMF_CHECK(s[i] >= 0, ShapeError, "{}: invalid size in {}", op, shape_str(shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    LMF_CHECK(known > 0 && numel % known == 0, ShapeError,
              "{}: cannot infer -1 in {} for {} elements", op, shape_str(shape), numel);
    s[infer] = numel / known;
  }
  LMF_CHECK(shape_numel(s) == numel, ShapeError, "{}: shape {} is invalid for {} elements", op,
            shape_str(shape), numel);
  return s;
}

// Records a view/copy whose backward maps the output gradient back to the input's shape.
Tensor with_grad(Tensor out, const Tensor& in, const char* name, BackwardFn fn) {
  if (needs_grad({in})) record(out, name, {in}, std::move(fn));
  return out;
}
}  // namespace

Tensor Tensor::view(const Shape& shape) const {
  const Shape s = infer_shape(shape, numel(), "view");
  Shape st;
  LMF_CHECK(view_strides(*this, s, st), ShapeError,
            "view: {} cannot be viewed as {} without a copy; use reshape()", describe(),
            shape_str(s));
  Shape in_shape = this->shape();
  return with_grad(alias_with(s, st, offset()), *this, "view", [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

Tensor Tensor::reshape(const Shape& shape) const {
  const Shape s = infer_shape(shape, numel(), "reshape");
  Shape st;
  if (view_strides(*this, s, st)) return view(s);
  return contiguous().view(s);
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  Shape s(shape().begin(), shape().begin() + start);
  int64_t m = 1;
  for (int64_t i = start; i <= end; ++i) m *= shape()[i];
  s.push_back(m);
  s.insert(s.end(), shape().begin() + end + 1, shape().end());
  return reshape(s);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  LMF_CHECK(static_cast<int64_t>(dims.size()) == dim(), ShapeError, "permute: {} dims given for {}",
            dims.size(), describe());
  Shape s(dim()), st(dim());
  std::vector<int64_t> inv(dim(), -1);
  for (int64_t i = 0; i < dim(); ++i) {
    const int64_t d = wrap_dim(dims[i], dim(), "permute");
    LMF_CHECK(inv[d] < 0, ShapeError, "permute: dim {} repeated", d);
    inv[d] = i;
    s[i] = shape()[d];
    st[i] = strides()[d];
  }
  return with_grad(alias_with(s, st, offset()), *this, "permute",
                   [inv](const Tensor& g) { return std::vector<Tensor>{g.permute(inv)}; });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> p(dim());
  std::iota(p.begin(), p.end(), 0);
  if (dim() == 0) return *this;
  std::swap(p[wrap_dim(d0, dim(), "transpose")], p[wrap_dim(d1, dim(), "transpose")]);
  return permute(p);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  const int64_t n = shape()[d];
  if (start < 0) start += n;
  LMF_CHECK(start >= 0 && length >= 0 && start + length <= n, IndexError,
            "narrow: [{}, {}) out of range for dim {} of {}", start, start + length, d, describe());
  Shape s = shape();
  s[d] = length;
  Shape in_shape = shape();
  DType dt = dtype();
  return with_grad(alias_with(s, strides(), offset() + start * strides()[d]), *this, "narrow",
                   [in_shape, dt, d, start, length](const Tensor& g) {
                     Tensor full = Tensor::zeros(in_shape, dt);
                     full.narrow(d, start, length).copy_(g);
                     return std::vector<Tensor>{full};
                   });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  if (index < 0) index += shape()[d];
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return view(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (shape()[d] != 1) return *this;
  Shape s = shape();
  s.erase(s.begin() + d);
  return view(s);
}

Tensor Tensor::expand(const Shape& shape) const {
  Shape target = shape;
  const size_t r = this->shape().size();
  LMF_CHECK(target.size() >= r, ShapeError, "expand: cannot expand {} to fewer dims {}", describe(),
            shape_str(shape));
  for (size_t i = 0; i < r; ++i) {
    int64_t& t = target[target.size() - r + i];
    if (t == -1) t = this->shape()[i];
  }
  Shape st = detail::broadcast_strides(*this, target);
  Shape in_shape = this->shape();
  return with_grad(alias_with(target, st, offset()), *this, "expand", [in_shape](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, in_shape)};
  });
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), dtype());
  out.copy_(*this);
  return with_grad(out, *this, "clone", [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::contiguous() const {
  return is_contiguous() ? *this : clone();
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor out = Tensor::empty(shape(), dt);
  out.copy_(*this);
  DType src = dtype();
  if (!is_floating(dt) || !is_floating(src)) return out;
  return with_grad(out, *this, "to",
                   [src](const Tensor& g) { return std::vector<Tensor>{g.to(src)}; });
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const Shape& ts = t.shape();
  LMF_CHECK(ts.size() >= shape.size(), ShapeError, "sum_to: {} to {}", t.describe(),
            shape_str(shape));
  // The result viewed at the input's rank with stride 0 on summed dims; accumulate in double.
  Tensor acc = Tensor::zeros(shape, DType::f32);
  Tensor src = t.to(DType::f32);
  Shape acc_st(ts.size(), 0);
  const size_t lead = ts.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) {
    LMF_CHECK(shape[i] == ts[lead + i] || shape[i] == 1, ShapeError, "sum_to: {} to {}",
              t.describe(), shape_str(shape));
    acc_st[lead + i] = shape[i] == 1 ? 0 : acc.strides()[i];
  }
  float* a = acc.data<float>();
  const float* s = src.data<float>();
  const Shape& sst = src.strides();
  detail::for_each_run<2>(ts, {&acc_st, &sst}, [&](auto off, int64_t n, auto inner) {
    if (inner[0] == 0) {
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) sum += s[off[1] + k * inner[1]];
      a[off[0]] += static_cast<float>(sum);
    } else {
      for (int64_t k = 0; k < n; ++k) a[off[0] + k * inner[0]] += s[off[1] + k * inner[1]];
    }
  });
  return acc.to(t.dtype());
}

// ---- Autograd accessors ------------------------------------------------------------------------

bool Tensor::requires_grad() const {
  return checked(impl_).requires_grad;
}
Tensor& Tensor::set_requires_grad(bool r) {
  auto& i = checked(impl_);
  LMF_CHECK(!r || is_floating(i.dtype), DTypeError,
            "only floating-point tensors can require gradients, not {}", describe());
  i.requires_grad = r;
  return *this;
}
bool Tensor::is_leaf() const {
  return checked(impl_).grad_fn == nullptr;
}
Tensor Tensor::grad() const {
  return checked(impl_).grad;
}
void Tensor::set_grad(const Tensor& g) {
  checked(impl_).grad = g;
}
void Tensor::zero_grad() {
  checked(impl_).grad = Tensor();
}
const std::shared_ptr<Node>& Tensor::grad_fn() const {
  return checked(impl_).grad_fn;
}
void Tensor::set_grad_fn(std::shared_ptr<Node> fn) {
  checked(impl_).grad_fn = std::move(fn);
}

}  // namespace lmf
