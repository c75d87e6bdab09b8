// A restricted unpickler for torch.save's data.pkl: builds a state dict from the handful of
// opcodes and allow-listed globals (OrderedDict, torch._utils._rebuild_tensor_v2 /
// _rebuild_parameter, torch.*Storage) a state dict needs. It never imports or calls anything;
// every other global or opcode is refused with an IoError.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "lmforge/io/checkpoint.h"

namespace lmf::io::detail {

// The bytes of one persistent storage: `nbytes` bytes at `byte_offset` of `storage`.
struct StorageBytes {
  std::shared_ptr<Storage> storage;
  size_t byte_offset = 0;
  size_t nbytes = 0;
};
// Maps a storage key (the archive's data/<key> entry) to its bytes; throws IoError when missing.
using StorageResolver = std::function<StorageBytes(const std::string& key)>;

// Unpickles `size` bytes at `data` into a flat {name: tensor} dict. Tensors are strided views of
// their storages (storages shared between tensors stay shared); floating storages are converted
// to `convert_to` when given (f64 -> f32 and i16 -> i32 always). `what` names the source in errors.
StateDict unpickle_state_dict(const uint8_t* data, size_t size, const StorageResolver& resolve,
                              const std::string& what, std::optional<DType> convert_to);

}  // namespace lmf::io::detail
