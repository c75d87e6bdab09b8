// Tensor: a strided view (shape, strides, offset in elements) over 64-byte-aligned Storage, with
// autograd state. Copying a Tensor copies a handle; use clone() for a deep copy.
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lmforge/core/dtype.h"
#include "lmforge/core/error.h"

namespace lmf {

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);

class Tensor;

// Raw bytes of one device allocation; either owned (aligned alloc) or borrowed with a deleter
// (e.g. an mmapped checkpoint).
class Storage {
 public:
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device = Device::cpu);
  static std::shared_ptr<Storage> wrap(void* data, size_t nbytes, std::function<void()> release,
                                       Device device = Device::cpu);
  // CPU bytes for a long-lived buffer that is streamed over and over (packed inference weights):
  // carved 64-byte aligned from 2 MiB-aligned pools of transparent huge pages (a pool's memory
  // goes back when its last buffer does), so each layer's weights need not be a whole number of
  // 2 MiB pages to be read without a page walk every 4 KiB. Buffers above half a pool get a pool
  // of their own. LMFORGE_HUGEPAGES=0: allocate() instead.
  static std::shared_ptr<Storage> allocate_pooled(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // Whether the bytes are a private memory mapping of a file (a checkpoint read in place).
  bool file_mapped() const { return file_mapped_; }
  void set_file_mapped(bool mapped) { file_mapped_ = mapped; }

  // Takes the whole pages inside [data, data + nbytes) of a file mapping out of this process's
  // resident memory, for bytes that will not be read again soon (a checkpoint's weights once a
  // packed or dequantized copy exists): pages that still hold the file's bytes are unmapped
  // (MADV_DONTNEED; a later read maps them again from the page cache), written (copy-on-write)
  // pages are kept, as are pages shared with bytes outside the range. `known_clean`: nothing ever
  // wrote the range, skip the per-page check (/proc/self/pagemap). A hint: never fails, no-op
  // off Linux.
  static void release_pages(const void* data, size_t nbytes, bool known_clean = false);
  // release_pages over a contiguous tensor's bytes when its storage is a file mapping; else
  // nothing.
  static void release_mapped(const Tensor& t);

 private:
  Storage() = default;
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_ = Device::cpu;
  bool file_mapped_ = false;
  std::function<void()> release_;
};

struct Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Factories.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  static Tensor arange(int64_t n, DType dtype = DType::i64);
  static Tensor scalar(double value, DType dtype = DType::f32);
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
    LMF_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), ShapeError,
              "from_vector: {} values do not fill shape {}", values.size(), shape_str(shape));
    Tensor t = empty(shape, dtype_of<T>());
    if (!values.empty()) std::memcpy(t.data_ptr(), values.data(), values.size() * sizeof(T));
    return t;
  }
  static Tensor from_blob(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype,
                          int64_t offset = 0);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;
  int64_t numel() const;
  int64_t offset() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  const std::shared_ptr<Storage>& storage() const;
  void* data_ptr() const;  // address of element 0 (storage + offset)
  template <class T>
  T* data() const {
    LMF_CHECK(dtype() == dtype_of<T>(), DTypeError, "data<{}>() on a {} tensor",
              dtype_name(dtype_of<T>()), dtype_name(dtype()));
    return static_cast<T*>(data_ptr());
  }
  std::string describe() const;  // "f32[2, 3]"

  // Views and copies. All are differentiable (their backward lives in core).
  Tensor reshape(const Shape& shape) const;  // view when strides allow, copy otherwise
  Tensor view(const Shape& shape) const;     // view only; ShapeError if impossible
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // narrow + squeeze
  Tensor expand(const Shape& shape) const;          // broadcast view (stride 0), -1 keeps a size
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;  // converted copy (RNE for bf16/f16); same tensor if equal
  Tensor detach() const;         // shares storage, no autograd history
  Tensor alias_with(const Shape& shape, const Shape& strides, int64_t offset) const;  // raw view

  // In-place (not recorded by autograd; for optimizers and initialisers).
  void copy_(const Tensor& src);  // broadcasting, converting copy
  void fill_(double value);
  void zero_() { fill_(0.0); }

  // Element access for tests and small data.
  double item() const;
  double at(const std::vector<int64_t>& index) const;
  template <class T>
  std::vector<T> to_vector() const {
    Tensor c = to(dtype_of<T>()).contiguous();
    const T* p = c.data<T>();
    return std::vector<T>(p, p + c.numel());
  }

  // Autograd.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool r);
  bool is_leaf() const;
  Tensor grad() const;
  void set_grad(const Tensor& g);
  void zero_grad();
  const std::shared_ptr<Node>& grad_fn() const;
  void set_grad_fn(std::shared_ptr<Node> fn);
  void backward(const Tensor& grad = Tensor()) const;

  TensorImpl* impl() const { return impl_.get(); }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }
  long handle_count() const { return impl_.use_count(); }  // handles sharing this tensor

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  int64_t offset = 0;
  DType dtype = DType::f32;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
};

// Normalises a possibly negative dim against rank `rank`, throwing IndexError naming `op`.
int64_t wrap_dim(int64_t d, int64_t rank, const char* op);
// Broadcast result shape of a and b (numpy rules), ShapeError naming `op` otherwise.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Sums `t` down to `shape` (the reverse of broadcasting); used by backward passes.
Tensor sum_to(const Tensor& t, const Shape& shape);

}  // namespace lmf
