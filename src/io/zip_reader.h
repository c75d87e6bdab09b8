// A minimal reader of stored (uncompressed) ZIP archives, what torch.save writes: central
// directory (with ZIP64), local headers, every offset and size checked against the buffer.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace lmf::io::detail {

struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;  // byte offset of the entry's data in the archive
  uint64_t size = 0;         // uncompressed size
  uint16_t method = 0;       // 0 = stored
  uint16_t flags = 0;
};

class ZipReader {
 public:
  // Parses the directory of `size` bytes at `data`; IoError naming `what` when malformed.
  ZipReader(const uint8_t* data, size_t size, std::string what);
  const std::vector<ZipEntry>& entries() const { return entries_; }
  // The entry called `name`, or nullptr.
  const ZipEntry* find(const std::string& name) const;
  // The entry's data offset, after refusing compressed or encrypted entries.
  uint64_t stored_offset(const ZipEntry& e) const;

 private:
  std::string what_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace lmf::io::detail
