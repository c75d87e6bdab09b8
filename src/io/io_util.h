// Shared pieces of the io layer: private file mappings, bounds-checked little-endian reads,
// dtype conversion of raw storages and printable excerpts of hostile bytes for error messages.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lmforge/core/tensor.h"

namespace lmf::io::detail {

// Maps `path` privately (PROT_READ|PROT_WRITE, MAP_PRIVATE): reads are zero-copy, writes are
// copy-on-write and never reach the file. The Storage unmaps on release. IoError on failure.
std::shared_ptr<Storage> map_file(const std::string& path);
// Copies `size` bytes into a fresh 64-byte aligned Storage.
std::shared_ptr<Storage> copy_to_storage(const uint8_t* data, size_t size);

inline uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t le64(const uint8_t* p) {
  return static_cast<uint64_t>(le32(p)) | (static_cast<uint64_t>(le32(p + 4)) << 32);
}

// Element types a checkpoint may hold: lmforge's dtypes plus f64 and i16, which are converted.
enum class StoredType : uint8_t { f32, f16, bf16, f64, i64, i32, i16, i8, u8, boolean };
size_t stored_size(StoredType t);
std::string_view stored_name(StoredType t);  // safetensors spelling: "F32", "BOOL", ...
// The dtype a stored type becomes: `convert_to` for floating types when given, else its own
// dtype (f64 -> f32, i16 -> i32).
DType loaded_dtype(StoredType t, std::optional<DType> convert_to);
// ValueError unless `convert_to` is empty or a floating dtype.
void check_convert_to(std::optional<DType> convert_to);
// Makes `numel` elements of type `t` starting at byte `byte_offset` of `storage` into a storage of
// dtype loaded_dtype(t, convert_to), returned as a flat contiguous tensor. Zero-copy when no
// conversion is needed and the bytes are aligned for `t`; otherwise a converted or aligned copy.
// BOOL bytes other than 0/1 are an IoError naming `what`.
Tensor load_flat(const std::shared_ptr<Storage>& storage, size_t byte_offset, int64_t numel,
                 StoredType t, std::optional<DType> convert_to, const std::string& what);

// Up to `max` bytes of `s` with non-printable bytes escaped (\xNN), for error messages.
std::string printable(std::string_view s, size_t max = 80);

}  // namespace lmf::io::detail
