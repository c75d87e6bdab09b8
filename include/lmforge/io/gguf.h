// GGUF (llama.cpp's model format, v2 and v3): a fully validated reader (metadata, tensor infos,
// memory-mapped data), dequantization to f32 bit-exact with the `gguf` Python package, and a v3
// writer (F32, F16, Q8_0 tensors) whose bytes equal gguf-py's GGUFWriter for the same input.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf::io {

// ggml tensor types (the numbers are the file's). Only some can be dequantized (see
// ggml_type_supported); the others are still parsed and size-checked.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41
};
// "Q4_K", ... or "type 123" for a number ggml does not define.
std::string ggml_type_name(GgmlType t);
// Elements per block and bytes per block; {0, 0} for an unknown type number.
std::pair<int64_t, int64_t> ggml_block_layout(GgmlType t);
// Whether dequantize() handles the type: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K.
bool ggml_type_supported(GgmlType t);

// GGUF metadata value types (the numbers are the file's).
enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12
};
std::string gguf_type_name(GgufType t);

// One metadata value. Scalars: `i` holds every integer type (u64 above INT64_MAX is stored as its
// two's complement; `u` holds it exactly) and bool; `f` holds f32/f64 exactly (f32 widened); `s`
// strings. Arrays (type ARRAY, element type `elem`): `ints` (integers and bools), `floats`,
// `strings`, or `items` for arrays of arrays.
struct GgufValue {
  GgufType type = GgufType::U32;
  GgufType elem = GgufType::U32;  // element type when type == ARRAY
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  std::vector<GgufValue> items;

  bool is_int() const;    // any integer scalar type
  bool is_float() const;  // F32 or F64
  size_t array_size() const;
  // Typed access; IoError naming `key` and the actual type when it does not fit.
  int64_t as_int(std::string_view key) const;
  double as_float(std::string_view key) const;  // floats and integers
  bool as_bool(std::string_view key) const;
  const std::string& as_string(std::string_view key) const;
  const std::vector<std::string>& as_strings(std::string_view key) const;
  const std::vector<int64_t>& as_ints(std::string_view key) const;
  const std::vector<double>& as_floats(std::string_view key) const;  // float arrays only

  // Builders for the writer.
  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue string_array(std::vector<std::string> v);
  static GgufValue int_array(GgufType elem, std::vector<int64_t> v);  // any integer type or BOOL
  static GgufValue f32_array(std::vector<float> v);
};

// One tensor of a GGUF file. `shape` is in PyTorch order (outermost first): the reverse of the
// file's ggml dims, as gguf-py's reader and transformers present it.
struct GgufTensorInfo {
  std::string name;
  Shape shape;
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t nbytes = 0;
};

// A parsed GGUF file. Every count, length, dim, type and offset is validated while parsing:
// IoError naming the file, the key or tensor, and the byte offset on a truncated file, a bad
// magic, version 1 or a big-endian file, an unknown value or tensor type, dims whose size
// overflows, a tensor outside the file, or an absurd count. The data stays memory-mapped.
class GgufFile {
 public:
  static GgufFile open(const std::string& path);
  // From bytes in memory (copied once); what the fuzz target drives. `what` names it in errors.
  static GgufFile from_buffer(const uint8_t* data, size_t size,
                              const std::string& what = "<memory>");

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }      // general.alignment, default 32
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  const std::string& path() const { return path_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;  // nullptr when absent
  const GgufValue& at(std::string_view key) const;    // IoError naming the key when absent
  bool has(std::string_view key) const { return find(key) != nullptr; }

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // The tensor's raw bytes (validated to lie inside the file).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const;
  // The tensor as f32 in `shape`, bit-exact with gguf.quants.dequantize (F32 tensors are a
  // zero-copy view of the mapping when aligned). IoError naming the tensor and type, and listing
  // the supported types, for the others.
  Tensor dequantize(const GgufTensorInfo& t) const;
  Tensor dequantize(std::string_view name) const;  // IoError when there is no such tensor

 private:
  static GgufFile parse(std::shared_ptr<Storage> storage, std::string what);
  std::shared_ptr<Storage> storage_;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Dequantizes `n` elements (a whole number of blocks) of type `t` from `src` into `dst`, as
// gguf-py does. IoError for unsupported types. Runs in parallel (OpenMP) over blocks.
void dequantize_into(GgmlType t, const uint8_t* src, float* dst, int64_t n,
                     std::string_view what = "tensor");
// Q8_0 blocks of `n` floats (n a multiple of 32), byte-identical to gguf.quants.quantize.
std::string quantize_q8_0(const float* src, int64_t n);

// Builds a GGUF v3 file like gguf-py's GGUFWriter(path, arch): general.architecture first, then
// the keys in the order added (adding a key again replaces its value in place), the tensor infos
// in the order added, data aligned to 32 bytes, each tensor padded to 32.
class GgufWriter {
 public:
  explicit GgufWriter(const std::string& arch);
  void add(const std::string& key, GgufValue value);
  // Adds a tensor (any floating dtype, converted from f32) stored as F32, F16 or Q8_0 (the last
  // dim must be a multiple of 32 for Q8_0). ValueError for other types, a duplicate name, or a
  // non-floating tensor.
  void add_tensor(const std::string& name, const Tensor& t, GgmlType type);
  // The file's bytes / written to `path` (via path.tmp + rename).
  std::string serialize() const;
  void write(const std::string& path) const;

 private:
  struct Item {
    std::string name;
    Shape shape;
    GgmlType type;
    std::string bytes;
  };
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Item> tensors_;
};

}  // namespace lmf::io
