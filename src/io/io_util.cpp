#include "io/io_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace lmf::io::detail {

std::shared_ptr<Storage> map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail<IoError>("cannot open '{}': {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail<IoError>("'{}' is not a regular file", path);
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return Storage::allocate(0);
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED)
    fail<IoError>("cannot map '{}' ({} bytes): {}", path, size, std::strerror(err));
  auto storage = Storage::wrap(p, size, [p, size] { ::munmap(p, size); });
  storage->set_file_mapped(true);
  return storage;
}

std::shared_ptr<Storage> copy_to_storage(const uint8_t* data, size_t size) {
  auto s = Storage::allocate(size);
  if (size) std::memcpy(s->data(), data, size);
  return s;
}

size_t stored_size(StoredType t) {
  switch (t) {
    case StoredType::f64:
    case StoredType::i64:
      return 8;
    case StoredType::f32:
    case StoredType::i32:
      return 4;
    case StoredType::f16:
    case StoredType::bf16:
    case StoredType::i16:
      return 2;
    case StoredType::i8:
    case StoredType::u8:
    case StoredType::boolean:
      return 1;
  }
  return 1;
}

std::string_view stored_name(StoredType t) {
  switch (t) {
    case StoredType::f32:
      return "F32";
    case StoredType::f16:
      return "F16";
    case StoredType::bf16:
      return "BF16";
    case StoredType::f64:
      return "F64";
    case StoredType::i64:
      return "I64";
    case StoredType::i32:
      return "I32";
    case StoredType::i16:
      return "I16";
    case StoredType::i8:
      return "I8";
    case StoredType::u8:
      return "U8";
    case StoredType::boolean:
      return "BOOL";
  }
  return "?";
}

namespace {
std::optional<DType> native_dtype(StoredType t) {
  switch (t) {
    case StoredType::f32:
      return DType::f32;
    case StoredType::f16:
      return DType::f16;
    case StoredType::bf16:
      return DType::bf16;
    case StoredType::i64:
      return DType::i64;
    case StoredType::i32:
      return DType::i32;
    case StoredType::i8:
      return DType::i8;
    case StoredType::u8:
      return DType::u8;
    case StoredType::boolean:
      return DType::boolean;
    case StoredType::f64:
    case StoredType::i16:
      return std::nullopt;
  }
  return std::nullopt;
}
bool stored_floating(StoredType t) {
  return t == StoredType::f32 || t == StoredType::f16 || t == StoredType::bf16 ||
         t == StoredType::f64;
}
}  // namespace

DType loaded_dtype(StoredType t, std::optional<DType> convert_to) {
  if (convert_to && stored_floating(t)) return *convert_to;
  if (t == StoredType::f64) return DType::f32;
  if (t == StoredType::i16) return DType::i32;
  return *native_dtype(t);
}

void check_convert_to(std::optional<DType> convert_to) {
  LMF_CHECK(!convert_to || is_floating(*convert_to), ValueError,
            "convert_to must be a floating dtype (f32, bf16, f16) or none, got {}",
            dtype_name(*convert_to));
}

Tensor load_flat(const std::shared_ptr<Storage>& storage, size_t byte_offset, int64_t numel,
                 StoredType t, std::optional<DType> convert_to, const std::string& what) {
  const size_t es = stored_size(t);
  const auto* src = static_cast<const uint8_t*>(storage->data()) + byte_offset;
  if (t == StoredType::boolean) {
    for (int64_t i = 0; i < numel; ++i)
      if (src[i] > 1)
        fail<IoError>("{} is BOOL but byte {} holds 0x{:02x} (only 0 and 1 are booleans)", what,
                      byte_offset + static_cast<size_t>(i), src[i]);
  }
  const DType out = loaded_dtype(t, convert_to);
  const auto native = native_dtype(t);
  if (native) {
    Tensor flat;
    // Zero-copy only when the element is aligned for its type (safetensors does not promise it).
    if (reinterpret_cast<uintptr_t>(src) % es == 0) {
      flat = Tensor::from_blob(storage, {numel}, *native, static_cast<int64_t>(byte_offset / es));
    } else {
      flat = Tensor::empty({numel}, *native);
      if (numel) std::memcpy(flat.data_ptr(), src, static_cast<size_t>(numel) * es);
    }
    return flat.to(out).detach();
  }
  Tensor res = Tensor::empty({numel}, out);
  visit_dtype(out, [&](auto z) {
    using T = decltype(z);
    T* dst = static_cast<T*>(res.data_ptr());
    for (int64_t i = 0; i < numel; ++i) {
      double v;
      if (t == StoredType::f64) {
        std::memcpy(&v, src + i * 8, 8);
      } else {
        int16_t s;
        std::memcpy(&s, src + i * 2, 2);
        v = s;
      }
      if constexpr (std::is_same_v<T, float>)
        dst[i] = static_cast<float>(v);
      else
        dst[i] = from_double<T>(v);
    }
  });
  return res;
}

std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f)
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace lmf::io::detail
