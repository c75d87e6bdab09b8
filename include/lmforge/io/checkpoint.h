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
  DType dtype;  // as stored (F64 and others not in DType are reported as errors when loaded)
  Shape shape;
  size_t begin = 0, end = 0;  // byte range in the data section
};

// Loads every tensor of a .safetensors file. f32 (and other supported dtypes) tensors are views
// into one read-only mmap of the file (zero-copy); when `convert_to` is given, tensors of other
// floating dtypes (f16/bf16/f64) are converted to it. IoError naming the file, the tensor and the
// byte offsets on any inconsistency (truncated file, offsets out of range or overlapping, unknown
// dtype, shape x dtype size != byte length, bad JSON).
StateDict load_safetensors(const std::string& path, std::optional<DType> convert_to = DType::f32);
// Header only (for `lmforge inspect`).
std::vector<TensorInfo> read_safetensors_header(const std::string& path);
// Parses a header from memory (what the fuzz target drives). `file_size` is the whole file's size.
std::vector<TensorInfo> parse_safetensors_header(const uint8_t* data, size_t size);
// Writes tensors (contiguous copies) as a .safetensors file with optional __metadata__;
// written to a temporary file and renamed, so a crash never leaves a half-written checkpoint.
void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// pytorch_model.bin (torch.save zip format; legacy non-zip files are refused with a clear error).
StateDict load_torch_bin(const std::string& path, std::optional<DType> convert_to = DType::f32);

// A model folder: model.safetensors, model.safetensors.index.json (shards), or pytorch_model.bin,
// in that order of preference. IoError listing what was looked for when none exists.
StateDict load_checkpoint_dir(const std::string& dir, std::optional<DType> convert_to = DType::f32);

}  // namespace lmf::io
