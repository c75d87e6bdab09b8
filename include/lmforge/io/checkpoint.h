// Reading Hugging Face checkpoints: safetensors (memory-mapped, zero-copy for f32), sharded
// safetensors indexes, and torch pytorch_model.bin through a restricted unpickler that never
// executes anything. Every header is validated before any tensor data is touched.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf::io {

using StateDict = std::map<std::string, Tensor>;

// Describes one tensor of a checkpoint without reading its data.
struct TensorInfo {
  std::string name;
  DType dtype;  // what it loads as without conversion: F64 loads as f32, I16 widens to i32
  Shape shape;
  size_t begin = 0, end = 0;  // byte range in the data section
  std::string stored_dtype;   // the file's own dtype name: "F32", "F64", "I16", ...
};

// A parsed safetensors header: its tensors, __metadata__, and where the data section starts.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // ordered by name
  std::map<std::string, std::string> metadata;
  size_t data_start = 0;  // byte offset of the data section in the file (8 + header length)
};

// Loads every tensor of a .safetensors file. Tensors are views into one private mmap of the file
// (zero-copy; the mapping is copy-on-write, so writing into a tensor never changes the file).
// When `convert_to` (a floating dtype) is given, floating tensors (f16/bf16/f32/f64) are
// converted to it; F64 without `convert_to` loads as f32, I16 as i32. A tensor whose bytes are
// not aligned to its element size is copied. IoError naming the file, the tensor and the byte
// offsets on any inconsistency (truncated file, offsets out of range or overlapping, unknown
// dtype, shape x dtype size != byte length, bad JSON, duplicate names).
StateDict load_safetensors(const std::string& path, std::optional<DType> convert_to = DType::f32);
// The same from bytes in memory (copied once); what the fuzz target drives.
StateDict load_safetensors_buffer(const uint8_t* data, size_t size,
                                  std::optional<DType> convert_to = DType::f32);
// Header only (for `lmforge inspect`).
std::vector<TensorInfo> read_safetensors_header(const std::string& path);
// Parses and fully validates a header from memory: `data` holds the whole file, `size` bytes.
std::vector<TensorInfo> parse_safetensors_header(const uint8_t* data, size_t size);
// The same with __metadata__; `what` names the source in error messages.
SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size,
                                    const std::string& what = "<memory>");
// Writes tensors (contiguous copies) as a .safetensors file byte-identical to what the
// `safetensors` Python package writes (header keys ordered by dtype then name, padded with spaces
// to a multiple of 8). `metadata` empty means {"format": "pt"} (what transformers writes).
// Written to `path`.tmp, fsynced and renamed, so a crash never leaves a half-written checkpoint.
void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// The exact bytes save_safetensors writes (for tests and in-memory use).
std::string serialize_safetensors(const StateDict& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

// A sharded checkpoint index (model.safetensors.index.json or pytorch_model.bin.index.json,
// {"weight_map": {name: file}}): loads each listed shard once, from the index's folder. IoError
// when a shard is missing, a listed tensor is not in its shard, or a file name leaves the folder.
StateDict load_sharded_index(const std::string& index_path,
                             std::optional<DType> convert_to = DType::f32);

// pytorch_model.bin (torch.save zip format; legacy non-zip files are refused with a clear error).
// Tensors are views into one private mmap of the file (strides, offsets and storages shared
// between tensors, e.g. tied weights, are kept); conversion as for load_safetensors.
StateDict load_torch_bin(const std::string& path, std::optional<DType> convert_to = DType::f32);
// The same from bytes in memory (copied once); what the fuzz target drives.
StateDict load_torch_bin_buffer(const uint8_t* data, size_t size,
                                std::optional<DType> convert_to = DType::f32);

// A model folder: model.safetensors, model.safetensors.index.json (shards), pytorch_model.bin,
// or pytorch_model.bin.index.json, in that order of preference. IoError listing what was looked
// for when none exists.
StateDict load_checkpoint_dir(const std::string& dir, std::optional<DType> convert_to = DType::f32);

}  // namespace lmf::io
