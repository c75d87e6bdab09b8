// GGUF reader and writer. Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
// n_kv x (string key, u32 type, value), n_tensors x (string name, u32 n_dims, u64 dims[n_dims]
// innermost first, u32 ggml type, u64 offset), padding to general.alignment, the data section.
// Strings are u64 length + bytes; arrays are u32 element type + u64 count + elements.
#include "lmforge/io/gguf.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <tuple>

#include "io/io_util.h"

namespace lmf::io {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read little-endian
constexpr int kMaxDims = 4;              // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;

struct TypeRow {
  GgmlType t;
  const char* name;
  int64_t block, bytes;
};
constexpr TypeRow kTypes[] = {
    {GgmlType::F32, "F32", 1, 4},
    {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, 18},
    {GgmlType::Q4_1, "Q4_1", 32, 20},
    {GgmlType::Q5_0, "Q5_0", 32, 22},
    {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q8_0, "Q8_0", 32, 34},
    {GgmlType::Q8_1, "Q8_1", 32, 40},
    {GgmlType::Q2_K, "Q2_K", 256, 84},
    {GgmlType::Q3_K, "Q3_K", 256, 110},
    {GgmlType::Q4_K, "Q4_K", 256, 144},
    {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210},
    {GgmlType::Q8_K, "Q8_K", 256, 292},
    {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66},
    {GgmlType::IQ2_XS, "IQ2_XS", 256, 74},
    {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98},
    {GgmlType::IQ1_S, "IQ1_S", 256, 50},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18},
    {GgmlType::IQ3_S, "IQ3_S", 256, 110},
    {GgmlType::IQ2_S, "IQ2_S", 256, 82},
    {GgmlType::IQ4_XS, "IQ4_XS", 256, 136},
    {GgmlType::I8, "I8", 1, 1},
    {GgmlType::I16, "I16", 1, 2},
    {GgmlType::I32, "I32", 1, 4},
    {GgmlType::I64, "I64", 1, 8},
    {GgmlType::F64, "F64", 1, 8},
    {GgmlType::IQ1_M, "IQ1_M", 256, 56},
    {GgmlType::BF16, "BF16", 1, 2},
    {GgmlType::TQ1_0, "TQ1_0", 256, 54},
    {GgmlType::TQ2_0, "TQ2_0", 256, 66},
    {GgmlType::MXFP4, "MXFP4", 32, 17},
    {GgmlType::NVFP4, "NVFP4", 64, 36},
    {GgmlType::Q1_0, "Q1_0", 128, 18},
};

const TypeRow* type_row(GgmlType t) {
  for (const auto& r : kTypes)
    if (r.t == t) return &r;
  return nullptr;
}

constexpr const char* kSupported = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K";

// f16 -> f32 through a table (exactly f16_to_f32, NaN payloads kept as numpy does).
const float* f16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = f16_to_f32(static_cast<uint16_t>(h));
    return t;
  }();
  return table.data();
}

// Bounds-checked little-endian cursor over the header.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& what)
      : p_(data), size_(size), what_(what) {}
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  void need(size_t n, std::string_view item) const {
    if (n > left())
      fail<IoError>("{}: truncated GGUF file: {} needs {} bytes at offset {} but only {} remain",
                    what_, item, n, pos_, left());
  }
  uint8_t u8(std::string_view item) {
    need(1, item);
    return p_[pos_++];
  }
  uint16_t u16(std::string_view item) {
    need(2, item);
    const uint16_t v = detail::le16(p_ + pos_);
    pos_ += 2;
    return v;
  }
  uint32_t u32(std::string_view item) {
    need(4, item);
    const uint32_t v = detail::le32(p_ + pos_);
    pos_ += 4;
    return v;
  }
  uint64_t u64(std::string_view item) {
    need(8, item);
    const uint64_t v = detail::le64(p_ + pos_);
    pos_ += 8;
    return v;
  }
  std::string str(std::string_view item) {
    const size_t at = pos_;
    const uint64_t n = u64(item);
    if (n > left())
      fail<IoError>(
          "{}: truncated GGUF file: {} is a string of {} bytes at offset {} but only {} "
          "bytes remain",
          what_, item, n, at, left());
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& what_;
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL:
      return 1;
    case GgufType::U16:
    case GgufType::I16:
      return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32:
      return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
      return 8;
    case GgufType::STRING:
      return 8;  // at least its length field
    case GgufType::ARRAY:
      return 12;  // at least its type and count
  }
  return 1;
}

bool valid_value_type(uint32_t t) {
  return t <= 12;
}

bool is_int_type(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::U16:
    case GgufType::I16:
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::U64:
    case GgufType::I64:
      return true;
    default:
      return false;
  }
}

// Reads one integer / bool scalar of type t as int64 (u64 kept in `u`).
int64_t read_int(Cursor& c, GgufType t, uint64_t* u, std::string_view item) {
  switch (t) {
    case GgufType::U8: {
      const uint8_t v = c.u8(item);
      *u = v;
      return v;
    }
    case GgufType::I8: {
      const auto v = static_cast<int8_t>(c.u8(item));
      *u = static_cast<uint64_t>(v);
      return v;
    }
    case GgufType::BOOL: {
      const uint8_t v = c.u8(item);
      if (v > 1)
        fail<IoError>("GGUF {}: BOOL byte at offset {} is {}, not 0 or 1", item, c.pos() - 1, v);
      *u = v;
      return v;
    }
    case GgufType::U16: {
      const uint16_t v = c.u16(item);
      *u = v;
      return v;
    }
    case GgufType::I16: {
      const auto v = static_cast<int16_t>(c.u16(item));
      *u = static_cast<uint64_t>(v);
      return v;
    }
    case GgufType::U32: {
      const uint32_t v = c.u32(item);
      *u = v;
      return v;
    }
    case GgufType::I32: {
      const auto v = static_cast<int32_t>(c.u32(item));
      *u = static_cast<uint64_t>(v);
      return v;
    }
    case GgufType::U64:
    case GgufType::I64: {
      const uint64_t v = c.u64(item);
      *u = v;
      return static_cast<int64_t>(v);
    }
    default:
      return 0;
  }
}

double read_float(Cursor& c, GgufType t, std::string_view item) {
  if (t == GgufType::F32) {
    const uint32_t b = c.u32(item);
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  const uint64_t b = c.u64(item);
  double d;
  std::memcpy(&d, &b, 8);
  return d;
}

GgufValue read_value(Cursor& c, GgufType t, const std::string& what, const std::string& key,
                     int depth) {
  GgufValue v;
  v.type = t;
  if (is_int_type(t) || t == GgufType::BOOL) {
    v.i = read_int(c, t, &v.u, key);
  } else if (t == GgufType::F32 || t == GgufType::F64) {
    v.f = read_float(c, t, key);
  } else if (t == GgufType::STRING) {
    v.s = c.str(key);
  } else {  // ARRAY
    if (depth >= kMaxArrayDepth)
      fail<IoError>("{}: metadata key '{}' nests arrays deeper than {} at offset {}", what,
                    detail::printable(key), kMaxArrayDepth, c.pos());
    const size_t at = c.pos();
    const uint32_t et = c.u32(key);
    if (!valid_value_type(et))
      fail<IoError>(
          "{}: metadata key '{}' is an array of unknown value type {} (offset {}); "
          "GGUF defines types 0..12",
          what, detail::printable(key), et, at);
    v.elem = static_cast<GgufType>(et);
    const uint64_t n = c.u64(key);
    const size_t min = scalar_size(v.elem);
    if (n > c.left() / min)
      fail<IoError>(
          "{}: metadata key '{}' claims an array of {} {} elements at offset {} but only "
          "{} bytes remain (truncated or corrupt file)",
          what, detail::printable(key), n, gguf_type_name(v.elem), at, c.left());
    const auto count = static_cast<size_t>(n);
    if (is_int_type(v.elem) || v.elem == GgufType::BOOL) {
      v.ints.resize(count);
      uint64_t u;
      for (size_t k = 0; k < count; ++k) v.ints[k] = read_int(c, v.elem, &u, key);
    } else if (v.elem == GgufType::F32 || v.elem == GgufType::F64) {
      v.floats.resize(count);
      for (size_t k = 0; k < count; ++k) v.floats[k] = read_float(c, v.elem, key);
    } else if (v.elem == GgufType::STRING) {
      v.strings.resize(count);
      for (size_t k = 0; k < count; ++k) v.strings[k] = c.str(key);
    } else {
      v.items.reserve(count);
      for (size_t k = 0; k < count; ++k)
        v.items.push_back(read_value(c, GgufType::ARRAY, what, key, depth + 1));
    }
  }
  return v;
}

[[noreturn]] void wrong_type(std::string_view key, const GgufValue& v, const char* wanted) {
  std::string actual = gguf_type_name(v.type);
  if (v.type == GgufType::ARRAY) actual += " of " + gguf_type_name(v.elem);
  fail<IoError>("GGUF metadata key '{}' is {}, expected {}", key, actual, wanted);
}

uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

}  // namespace

// ---- types ----------------------------------------------------------------------------------

std::string ggml_type_name(GgmlType t) {
  if (const TypeRow* r = type_row(t)) return r->name;
  return fmt::format("type {}", static_cast<uint32_t>(t));
}

std::pair<int64_t, int64_t> ggml_block_layout(GgmlType t) {
  if (const TypeRow* r = type_row(t)) return {r->block, r->bytes};
  return {0, 0};
}

bool ggml_type_supported(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q4_K:
    case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

std::string gguf_type_name(GgufType t) {
  static const char* names[] = {"UINT8",  "INT8",    "UINT16", "INT16",  "UINT32",
                                "INT32",  "FLOAT32", "BOOL",   "STRING", "ARRAY",
                                "UINT64", "INT64",   "FLOAT64"};
  const auto k = static_cast<uint32_t>(t);
  if (k <= 12) return names[k];
  return fmt::format("type {}", k);
}

// ---- GgufValue ------------------------------------------------------------------------------

bool GgufValue::is_int() const {
  return is_int_type(type);
}
bool GgufValue::is_float() const {
  return type == GgufType::F32 || type == GgufType::F64;
}
size_t GgufValue::array_size() const {
  if (type != GgufType::ARRAY) return 0;
  return ints.size() + floats.size() + strings.size() + items.size();
}

int64_t GgufValue::as_int(std::string_view key) const {
  if (!is_int()) wrong_type(key, *this, "an integer");
  if (type == GgufType::U64 && u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail<IoError>("GGUF metadata key '{}' holds {} which does not fit a signed 64-bit integer", key,
                  u);
  return i;
}
double GgufValue::as_float(std::string_view key) const {
  if (is_float()) return f;
  if (is_int()) return type == GgufType::U64 ? static_cast<double>(u) : static_cast<double>(i);
  wrong_type(key, *this, "a number");
}
bool GgufValue::as_bool(std::string_view key) const {
  if (type != GgufType::BOOL) wrong_type(key, *this, "BOOL");
  return i != 0;
}
const std::string& GgufValue::as_string(std::string_view key) const {
  if (type != GgufType::STRING) wrong_type(key, *this, "STRING");
  return s;
}
const std::vector<std::string>& GgufValue::as_strings(std::string_view key) const {
  if (type != GgufType::ARRAY || elem != GgufType::STRING)
    wrong_type(key, *this, "an ARRAY of STRING");
  return strings;
}
const std::vector<int64_t>& GgufValue::as_ints(std::string_view key) const {
  if (type != GgufType::ARRAY || !(is_int_type(elem) || elem == GgufType::BOOL))
    wrong_type(key, *this, "an ARRAY of integers");
  return ints;
}
const std::vector<double>& GgufValue::as_floats(std::string_view key) const {
  if (type != GgufType::ARRAY || !(elem == GgufType::F32 || elem == GgufType::F64))
    wrong_type(key, *this, "an ARRAY of floats");
  return floats;
}

GgufValue GgufValue::u32(uint32_t v) {
  GgufValue x;
  x.type = GgufType::U32;
  x.i = v;
  x.u = v;
  return x;
}
GgufValue GgufValue::i32(int32_t v) {
  GgufValue x;
  x.type = GgufType::I32;
  x.i = v;
  x.u = static_cast<uint64_t>(static_cast<int64_t>(v));
  return x;
}
GgufValue GgufValue::u64(uint64_t v) {
  GgufValue x;
  x.type = GgufType::U64;
  x.i = static_cast<int64_t>(v);
  x.u = v;
  return x;
}
GgufValue GgufValue::f32(float v) {
  GgufValue x;
  x.type = GgufType::F32;
  x.f = v;
  return x;
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue x;
  x.type = GgufType::BOOL;
  x.i = v ? 1 : 0;
  x.u = x.i;
  return x;
}
GgufValue GgufValue::string(std::string v) {
  GgufValue x;
  x.type = GgufType::STRING;
  x.s = std::move(v);
  return x;
}
GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = GgufType::STRING;
  x.strings = std::move(v);
  return x;
}
GgufValue GgufValue::int_array(GgufType elem, std::vector<int64_t> v) {
  LMF_CHECK(is_int_type(elem) || elem == GgufType::BOOL, ValueError,
            "GgufValue::int_array: element type {} is not an integer type", gguf_type_name(elem));
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = elem;
  x.ints = std::move(v);
  return x;
}
GgufValue GgufValue::f32_array(std::vector<float> v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = GgufType::F32;
  x.floats.assign(v.begin(), v.end());
  return x;
}

// ---- reader ---------------------------------------------------------------------------------

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f = parse(detail::map_file(path), path);
  f.path_ = path;
  return f;
}

GgufFile GgufFile::from_buffer(const uint8_t* data, size_t size, const std::string& what) {
  return parse(detail::copy_to_storage(data, size), what);
}

GgufFile GgufFile::parse(std::shared_ptr<Storage> storage, std::string what) {
  GgufFile f;
  f.storage_ = std::move(storage);
  const auto* data = static_cast<const uint8_t*>(f.storage_->data());
  const size_t size = f.storage_->nbytes();
  Cursor c(data, size, what);

  LMF_CHECK(size >= 4 && detail::le32(data) == kMagic, IoError,
            "{}: not a GGUF file (the first 4 bytes are '{}', expected 'GGUF')", what,
            detail::printable(
                std::string_view(reinterpret_cast<const char*>(data), std::min<size_t>(size, 4))));
  c.u32("magic");
  const uint32_t version = c.u32("the version");
  if (version == 1)
    fail<IoError>(
        "{}: GGUF version 1 is not supported (only v2 and v3); re-convert the model "
        "with a current llama.cpp",
        what);
  if (version != 2 && version != 3) {
    if ((version & 0xffff) == 0 && version != 0)
      fail<IoError>(
          "{}: this GGUF file is big-endian (version field {:#x}); only little-endian "
          "files are supported",
          what, version);
    fail<IoError>("{}: unsupported GGUF version {} (supported: 2, 3)", what, version);
  }
  f.version_ = version;
  const uint64_t n_tensors = c.u64("the tensor count");
  const uint64_t n_kv = c.u64("the metadata count");
  // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least
  // 8 + 4 + 4 + 8 bytes.
  if (n_kv > c.left() / 13)
    fail<IoError>(
        "{}: the header claims {} metadata entries but the file has only {} bytes after "
        "it (corrupt or truncated)",
        what, n_kv, c.left());
  if (n_tensors > c.left() / 24)
    fail<IoError>(
        "{}: the header claims {} tensors but the file has only {} bytes after it "
        "(corrupt or truncated)",
        what, n_tensors, c.left());

  f.kv_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    const size_t at = c.pos();
    std::string key = c.str(fmt::format("metadata key #{}", k));
    const size_t tat = c.pos();
    const uint32_t t = c.u32(key);
    if (!valid_value_type(t))
      fail<IoError>(
          "{}: metadata key '{}' has unknown value type {} at offset {}; GGUF defines "
          "types 0..12",
          what, detail::printable(key), t, tat);
    GgufValue v = read_value(c, static_cast<GgufType>(t), what, key, 0);
    if (f.kv_index_.count(key))
      fail<IoError>("{}: metadata key '{}' appears twice (second at offset {})", what,
                    detail::printable(key), at);
    f.kv_index_.emplace(key, f.kv_.size());
    f.kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->type != GgufType::U32)
      fail<IoError>("{}: general.alignment must be UINT32, got {}", what, gguf_type_name(a->type));
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      fail<IoError>("{}: general.alignment is {}, which is not a power of two", what, a->u);
    f.alignment_ = a->u;
  }

  f.tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo ti;
    const size_t at = c.pos();
    ti.name = c.str(fmt::format("the name of tensor #{}", k));
    const std::string pname = detail::printable(ti.name);
    const uint32_t nd = c.u32(pname);
    if (nd > kMaxDims)
      fail<IoError>("{}: tensor '{}' (info at offset {}) has {} dims; ggml allows at most {}", what,
                    pname, at, nd, kMaxDims);
    std::vector<uint64_t> ne(nd);
    for (uint32_t d = 0; d < nd; ++d) ne[d] = c.u64(pname);
    const uint32_t type = c.u32(pname);
    ti.type = static_cast<GgmlType>(type);
    const TypeRow* row = type_row(ti.type);
    if (!row)
      fail<IoError>("{}: tensor '{}' has unknown ggml type {} (info at offset {})", what, pname,
                    type, at);
    ti.offset = c.u64(pname);
    // Element count and byte size with overflow checks.
    // The product of the non-zero dims must fit too: shape arithmetic elsewhere multiplies dims
    // in any order, so [0, 2^40, 2^40] would overflow although it holds no element.
    uint64_t numel = 1, nonzero = 1;
    constexpr uint64_t kLimit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    for (uint32_t d = 0; d < nd; ++d) {
      if (ne[d] > kLimit || (ne[d] != 0 && nonzero > kLimit / ne[d]))
        fail<IoError>("{}: tensor '{}' dims [{}] overflow a 64-bit element count", what, pname,
                      fmt::join(ne, ", "));
      if (ne[d] != 0) nonzero *= ne[d];
      numel *= ne[d];
    }
    const uint64_t row_len = nd ? ne[0] : 1;
    if (row_len % static_cast<uint64_t>(row->block) != 0)
      fail<IoError>(
          "{}: tensor '{}' of type {} has rows of {} elements, not a multiple of its "
          "block size {}",
          what, pname, row->name, row_len, row->block);
    const uint64_t blocks = numel / static_cast<uint64_t>(row->block);
    if (blocks > kLimit / static_cast<uint64_t>(row->bytes))
      fail<IoError>("{}: tensor '{}' dims [{}] x {} overflow a 64-bit byte size", what, pname,
                    fmt::join(ne, ", "), row->name);
    ti.nbytes = blocks * static_cast<uint64_t>(row->bytes);
    ti.shape.assign(nd, 0);
    for (uint32_t d = 0; d < nd; ++d) ti.shape[nd - 1 - d] = static_cast<int64_t>(ne[d]);
    if (f.tensor_index_.count(ti.name))
      fail<IoError>("{}: tensor '{}' appears twice (second info at offset {})", what, pname, at);
    f.tensor_index_.emplace(ti.name, f.tensors_.size());
    f.tensors_.push_back(std::move(ti));
  }

  f.data_offset_ = align_up(c.pos(), f.alignment_);
  if (n_tensors > 0 && f.data_offset_ > size)
    fail<IoError>(
        "{}: truncated GGUF file: the data section starts at offset {} but the file has "
        "{} bytes",
        what, f.data_offset_, size);
  const uint64_t data_size = size >= f.data_offset_ ? size - f.data_offset_ : 0;
  for (const auto& ti : f.tensors_) {
    const std::string pname = detail::printable(ti.name);
    if (ti.offset % f.alignment_ != 0)
      fail<IoError>("{}: tensor '{}' has data offset {}, not a multiple of the alignment {}", what,
                    pname, ti.offset, f.alignment_);
    if (ti.offset > data_size || ti.nbytes > data_size - ti.offset)
      fail<IoError>(
          "{}: tensor '{}' ({} {}, {} bytes) at data offset {} (file offset {}) lies "
          "beyond the end of the file ({} bytes; truncated?)",
          what, pname, ggml_type_name(ti.type), shape_str(ti.shape), ti.nbytes, ti.offset,
          f.data_offset_ + ti.offset, size);
  }
  return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufValue& GgufFile::at(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v)
    fail<IoError>("{}: GGUF metadata key '{}' is missing", path_.empty() ? "GGUF" : path_, key);
  return *v;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& t) const {
  return static_cast<const uint8_t*>(storage_->data()) + data_offset_ + t.offset;
}

Tensor GgufFile::dequantize(std::string_view name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t)
    fail<IoError>("{}: no tensor named '{}' in the GGUF file", path_.empty() ? "GGUF" : path_,
                  name);
  return dequantize(*t);
}

Tensor GgufFile::dequantize(const GgufTensorInfo& t) const {
  const std::string what = fmt::format("tensor '{}'", detail::printable(t.name));
  if (!ggml_type_supported(t.type))
    fail<IoError>("{}: {} has type {}, which lmforge cannot dequantize (supported: {})",
                  path_.empty() ? "GGUF" : path_, what, ggml_type_name(t.type), kSupported);
  const int64_t n = shape_numel(t.shape);
  const uint64_t file_off = data_offset_ + t.offset;
  if (t.type == GgmlType::F32 && file_off % alignof(float) == 0 &&
      reinterpret_cast<uintptr_t>(storage_->data()) % alignof(float) == 0)
    return Tensor::from_blob(storage_, t.shape, DType::f32, static_cast<int64_t>(file_off / 4));
  Tensor out = Tensor::empty(t.shape, DType::f32);
  dequantize_into(t.type, tensor_data(t), out.data<float>(), n, what);
  // The f32 copy is what the caller keeps: the quantized bytes (never written by lmforge, so clean)
  // need not stay resident beside it (a 540 MB model from an 80 MB Q4 file would otherwise hold
  // both). Reading them again faults them back in from the file.
  if (storage_->file_mapped()) Storage::release_pages(tensor_data(t), t.nbytes, true);
  return out;
}

// ---- dequantization (each mirrors gguf/quants.py; float ops in the same order, no fusion) ---

namespace {

inline float h2f(const uint8_t* p, const float* tab) {
  return tab[detail::le16(p)];
}

void deq_q8_0(const uint8_t* b, float* y, const float* tab) {
  const float d = h2f(b, tab);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}
void deq_q4_0(const uint8_t* b, float* y, const float* tab) {
  const float d = h2f(b, tab);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(static_cast<int>(qs[j] & 0x0F) - 8);
    y[j + 16] = d * static_cast<float>(static_cast<int>(qs[j] >> 4) - 8);
  }
}
void deq_q4_1(const uint8_t* b, float* y, const float* tab) {
  const float d = h2f(b, tab), m = h2f(b + 2, tab);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    const float lo = d * static_cast<float>(qs[j] & 0x0F);
    const float hi = d * static_cast<float>(qs[j] >> 4);
    y[j] = lo + m;
    y[j + 16] = hi + m;
  }
}
void deq_q4_k(const uint8_t* b, float* y, const float* tab) {
  const float d = h2f(b, tab), dmin = h2f(b + 2, tab);
  const uint8_t* s = b + 4;  // 12 bytes of packed 6-bit scales and mins
  const uint8_t* qs = b + 16;
  float sc[8], mn[8];
  for (int j = 0; j < 4; ++j) {
    sc[j] = d * static_cast<float>(s[j] & 0x3F);
    mn[j] = dmin * static_cast<float>(s[4 + j] & 0x3F);
    sc[4 + j] = d * static_cast<float>((s[8 + j] & 0x0F) | ((s[j] >> 2) & 0x30));
    mn[4 + j] = dmin * static_cast<float>((s[8 + j] >> 4) | ((s[4 + j] >> 2) & 0x30));
  }
  for (int g = 0; g < 4; ++g) {  // 32 bytes -> sub-blocks 2g (low nibbles) and 2g+1 (high)
    const uint8_t* q = qs + 32 * g;
    float* y0 = y + 64 * g;
    for (int j = 0; j < 32; ++j) {
      const float lo = sc[2 * g] * static_cast<float>(q[j] & 0x0F);
      const float hi = sc[2 * g + 1] * static_cast<float>(q[j] >> 4);
      y0[j] = lo - mn[2 * g];
      y0[32 + j] = hi - mn[2 * g + 1];
    }
  }
}
void deq_q6_k(const uint8_t* b, float* y, const float* tab) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = h2f(b + 208, tab);
  float ds[16];
  for (int j = 0; j < 16; ++j) ds[j] = d * static_cast<float>(scales[j]);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, r = e % 128;
    const int lo = (ql[h * 64 + r % 64] >> (4 * (r / 64))) & 0x0F;
    const int hi = (qh[h * 32 + r % 32] >> (2 * (r / 32))) & 0x03;
    const int q = static_cast<int>(static_cast<int8_t>(static_cast<uint8_t>(lo | (hi << 4)))) - 32;
    y[e] = ds[e / 16] * static_cast<float>(q);
  }
}

}  // namespace

void dequantize_into(GgmlType t, const uint8_t* src, float* dst, int64_t n, std::string_view what) {
  if (!ggml_type_supported(t))
    fail<IoError>("{} has type {}, which lmforge cannot dequantize (supported: {})", what,
                  ggml_type_name(t), kSupported);
  const auto layout = ggml_block_layout(t);
  const int64_t block = layout.first, bytes = layout.second;
  LMF_CHECK(n % block == 0, IoError, "{}: {} elements are not a whole number of {} blocks of {}",
            what, n, ggml_type_name(t), block);
  const int64_t nb = n / block;
  const float* tab = f16_table();
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
#pragma omp parallel for schedule(static) if (n > (1 << 22))
      for (int64_t k = 0; k < n; ++k) dst[k] = tab[detail::le16(src + 2 * k)];
      return;
    case GgmlType::BF16:
#pragma omp parallel for schedule(static) if (n > (1 << 22))
      for (int64_t k = 0; k < n; ++k) {
        const uint32_t u = static_cast<uint32_t>(detail::le16(src + 2 * k)) << 16;
        std::memcpy(dst + k, &u, 4);
      }
      return;
    default:
      break;
  }
  void (*fn)(const uint8_t*, float*, const float*) = nullptr;
  switch (t) {
    case GgmlType::Q8_0:
      fn = deq_q8_0;
      break;
    case GgmlType::Q4_0:
      fn = deq_q4_0;
      break;
    case GgmlType::Q4_1:
      fn = deq_q4_1;
      break;
    case GgmlType::Q4_K:
      fn = deq_q4_k;
      break;
    case GgmlType::Q6_K:
      fn = deq_q6_k;
      break;
    default:
      break;
  }
#pragma omp parallel for schedule(static) if (nb > (1 << 17))
  for (int64_t k = 0; k < nb; ++k) fn(src + k * bytes, dst + k * block, tab);
}

std::string quantize_q8_0(const float* src, int64_t n) {
  LMF_CHECK(n % 32 == 0, ValueError, "Q8_0 needs a multiple of 32 values, got {}", n);
  const int64_t nb = n / 32;
  std::string out(static_cast<size_t>(nb * 34), '\0');
  auto* o = reinterpret_cast<uint8_t*>(out.data());
#pragma omp parallel for schedule(static) if (nb > (1 << 17))
  for (int64_t k = 0; k < nb; ++k) {
    const float* x = src + 32 * k;
    uint8_t* b = o + 34 * k;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    const uint16_t dh = f32_to_f16(d);
    b[0] = static_cast<uint8_t>(dh & 0xff);
    b[1] = static_cast<uint8_t>(dh >> 8);
    for (int j = 0; j < 32; ++j) {
      const float v = x[j] * id;  // np_roundf: round half away from zero
      const float r = std::isfinite(v) ? std::clamp(std::round(v), -128.0f, 127.0f) : 0.0f;
      b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(r));
    }
  }
  return out;
}

// ---- writer ---------------------------------------------------------------------------------

namespace {

void put32(std::string& s, uint32_t v) {
  for (int k = 0; k < 4; ++k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}
void put64(std::string& s, uint64_t v) {
  for (int k = 0; k < 8; ++k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}
void put_str(std::string& s, const std::string& v) {
  put64(s, v.size());
  s += v;
}
void put_int(std::string& s, GgufType t, int64_t v) {
  const auto u = static_cast<uint64_t>(v);
  switch (scalar_size(t)) {
    case 1:
      s.push_back(static_cast<char>(u & 0xff));
      break;
    case 2:
      s.push_back(static_cast<char>(u & 0xff));
      s.push_back(static_cast<char>((u >> 8) & 0xff));
      break;
    case 4:
      put32(s, static_cast<uint32_t>(u));
      break;
    default:
      put64(s, u);
      break;
  }
}
void put_float(std::string& s, GgufType t, double v) {
  if (t == GgufType::F32) {
    const auto f = static_cast<float>(v);
    uint32_t b;
    std::memcpy(&b, &f, 4);
    put32(s, b);
  } else {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    put64(s, b);
  }
}
void put_value(std::string& s, const GgufValue& v, const std::string& key) {
  if (is_int_type(v.type) || v.type == GgufType::BOOL) {
    put_int(s, v.type, v.type == GgufType::U64 ? static_cast<int64_t>(v.u) : v.i);
  } else if (v.type == GgufType::F32 || v.type == GgufType::F64) {
    put_float(s, v.type, v.f);
  } else if (v.type == GgufType::STRING) {
    put_str(s, v.s);
  } else {
    LMF_CHECK(v.array_size() > 0, ValueError,
              "GgufWriter: metadata key '{}' is an empty array (gguf-py refuses them)", key);
    put32(s, static_cast<uint32_t>(v.elem));
    put64(s, v.array_size());
    if (is_int_type(v.elem) || v.elem == GgufType::BOOL)
      for (int64_t x : v.ints) put_int(s, v.elem, x);
    else if (v.elem == GgufType::F32 || v.elem == GgufType::F64)
      for (double x : v.floats) put_float(s, v.elem, x);
    else if (v.elem == GgufType::STRING)
      for (const auto& x : v.strings) put_str(s, x);
    else
      for (const auto& x : v.items) put_value(s, x, key);
  }
}

constexpr uint64_t kWriteAlign = 32;

}  // namespace

GgufWriter::GgufWriter(const std::string& arch) {
  add("general.architecture", GgufValue::string(arch));
}

void GgufWriter::add(const std::string& key, GgufValue value) {
  for (auto& [k, v] : kv_)
    if (k == key) {
      v = std::move(value);
      return;
    }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, const Tensor& t, GgmlType type) {
  for (const auto& it : tensors_)
    LMF_CHECK(it.name != name, ValueError, "GgufWriter: duplicate tensor name '{}'", name);
  LMF_CHECK(is_floating(t.dtype()), ValueError,
            "GgufWriter: tensor '{}' is {}, only floating tensors can be written", name,
            dtype_name(t.dtype()));
  LMF_CHECK(t.dim() >= 1 && t.dim() <= kMaxDims, ValueError,
            "GgufWriter: tensor '{}' has {} dims; GGUF holds 1 to {}", name, t.dim(), kMaxDims);
  const Tensor c = t.dtype() == DType::f32 ? t.contiguous() : t.to(DType::f32).contiguous();
  const float* x = c.data<float>();
  const int64_t n = c.numel();
  Item item{name, t.shape(), type, {}};
  switch (type) {
    case GgmlType::F32:
      item.bytes.assign(reinterpret_cast<const char*>(x), static_cast<size_t>(n) * 4);
      break;
    case GgmlType::F16: {
      item.bytes.resize(static_cast<size_t>(n) * 2);
      auto* o = reinterpret_cast<uint8_t*>(item.bytes.data());
#pragma omp parallel for schedule(static) if (n > (1 << 22))
      for (int64_t k = 0; k < n; ++k) {
        const uint16_t h = f32_to_f16(x[k]);
        o[2 * k] = static_cast<uint8_t>(h & 0xff);
        o[2 * k + 1] = static_cast<uint8_t>(h >> 8);
      }
      break;
    }
    case GgmlType::Q8_0:
      LMF_CHECK(t.shape().back() % 32 == 0, ValueError,
                "GgufWriter: tensor '{}' {} cannot be Q8_0: its last dim is not a multiple of 32",
                name, shape_str(t.shape()));
      item.bytes = quantize_q8_0(x, n);
      break;
    default:
      fail<ValueError>("GgufWriter: tensor '{}': writing {} is not supported (F32, F16, Q8_0)",
                       name, ggml_type_name(type));
  }
  tensors_.push_back(std::move(item));
}

namespace {
// The header, metadata and tensor infos, padded to the data section.
std::string header_bytes(
    const std::vector<std::pair<std::string, GgufValue>>& kv,
    const std::vector<std::tuple<const std::string*, const Shape*, GgmlType, size_t>>& infos) {
  std::string s;
  put32(s, kMagic);
  put32(s, 3);
  put64(s, infos.size());
  put64(s, kv.size());
  for (const auto& [k, v] : kv) {
    put_str(s, k);
    put32(s, static_cast<uint32_t>(v.type));
    put_value(s, v, k);
  }
  uint64_t off = 0;
  for (const auto& [name, shape, type, nbytes] : infos) {
    put_str(s, *name);
    put32(s, static_cast<uint32_t>(shape->size()));
    for (size_t d = shape->size(); d-- > 0;) put64(s, static_cast<uint64_t>((*shape)[d]));
    put32(s, static_cast<uint32_t>(type));
    put64(s, off);
    off += align_up(nbytes, kWriteAlign);
  }
  s.resize(align_up(s.size(), kWriteAlign), '\0');
  return s;
}
}  // namespace

std::string GgufWriter::serialize() const {
  std::vector<std::tuple<const std::string*, const Shape*, GgmlType, size_t>> infos;
  for (const auto& it : tensors_) infos.emplace_back(&it.name, &it.shape, it.type, it.bytes.size());
  std::string s = header_bytes(kv_, infos);
  for (const auto& it : tensors_) {
    s += it.bytes;
    s.resize(align_up(s.size(), kWriteAlign), '\0');
  }
  return s;
}

void GgufWriter::write(const std::string& path) const {
  std::vector<std::tuple<const std::string*, const Shape*, GgmlType, size_t>> infos;
  for (const auto& it : tensors_) infos.emplace_back(&it.name, &it.shape, it.type, it.bytes.size());
  const std::string header = header_bytes(kv_, infos);  // before opening: throws on bad metadata
  const std::string tmp = path + ".tmp";
  std::FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) fail<IoError>("cannot create '{}': {}", tmp, std::strerror(errno));
  static const char zeros[kWriteAlign] = {};
  bool ok = std::fwrite(header.data(), 1, header.size(), fp) == header.size();
  for (const auto& it : tensors_) {
    if (!ok) break;
    const size_t pad = align_up(it.bytes.size(), kWriteAlign) - it.bytes.size();
    ok = std::fwrite(it.bytes.data(), 1, it.bytes.size(), fp) == it.bytes.size() &&
         std::fwrite(zeros, 1, pad, fp) == pad;
  }
  ok = ok && std::fflush(fp) == 0 && ::fsync(fileno(fp)) == 0;
  const int err = errno;
  std::fclose(fp);
  if (!ok) {
    std::remove(tmp.c_str());
    fail<IoError>("cannot write '{}': {}", tmp, std::strerror(err));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail<IoError>("cannot rename '{}' to '{}': {}", tmp, path, ec.message());
  }
}

}  // namespace lmf::io
