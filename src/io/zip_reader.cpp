#include "io/zip_reader.h"

#include "io/io_util.h"

namespace lmf::io::detail {

namespace {
constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50,
                   kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;

// a + b <= limit without overflow.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }
}  // namespace

ZipReader::ZipReader(const uint8_t* data, size_t size, std::string what) : what_(std::move(what)) {
  const std::string& w = what_;
  LMF_CHECK(size >= 22, IoError, "{}: {} bytes is too short for a zip archive (truncated?)", w,
            size);
  // End of central directory: the last 22 bytes plus an optional comment of up to 64 KiB.
  size_t eocd = SIZE_MAX;
  const size_t lowest = size - 22 > 65535 ? size - 22 - 65535 : 0;
  for (size_t p = size - 22 + 1; p-- > lowest;) {
    if (le32(data + p) == kEndSig && p + 22 + le16(data + p + 20) <= size) {
      eocd = p;
      break;
    }
  }
  LMF_CHECK(eocd != SIZE_MAX, IoError,
            "{}: no zip end-of-central-directory record (truncated or not a zip archive)", w);
  uint64_t count = le16(data + eocd + 10);
  uint64_t cd_size = le32(data + eocd + 12);
  uint64_t cd_offset = le32(data + eocd + 16);
  if (count == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff) {
    LMF_CHECK(eocd >= 20 && le32(data + eocd - 20) == kLocator64Sig, IoError,
              "{}: zip directory fields overflow but there is no ZIP64 locator", w);
    const uint64_t z64 = le64(data + eocd - 20 + 8);
    LMF_CHECK(fits(z64, 56, eocd - 20) && le32(data + z64) == kEnd64Sig, IoError,
              "{}: ZIP64 end-of-central-directory record at byte {} is missing or out of range",
              w, z64);
    count = le64(data + z64 + 32);
    cd_size = le64(data + z64 + 40);
    cd_offset = le64(data + z64 + 48);
  }
  LMF_CHECK(fits(cd_offset, cd_size, size), IoError,
            "{}: zip central directory [{}, +{}) lies outside the {}-byte file (truncated?)", w,
            cd_offset, cd_size, size);
  LMF_CHECK(count <= cd_size / 46, IoError,
            "{}: zip directory claims {} entries in {} bytes", w, count, cd_size);
  const uint8_t* cd = data + cd_offset;
  uint64_t pos = 0;
  for (uint64_t i = 0; i < count; ++i) {
    LMF_CHECK(fits(pos, 46, cd_size) && le32(cd + pos) == kCentralSig, IoError,
              "{}: zip central directory entry {} at byte {} is malformed", w, i, cd_offset + pos);
    const uint8_t* h = cd + pos;
    ZipEntry e;
    e.flags = le16(h + 8);
    e.method = le16(h + 10);
    uint64_t csize = le32(h + 20), usize = le32(h + 24), local = le32(h + 42);
    const uint64_t nlen = le16(h + 28), xlen = le16(h + 30), clen = le16(h + 32);
    LMF_CHECK(fits(pos + 46, nlen + xlen + clen, cd_size), IoError,
              "{}: zip central directory entry {} runs past the directory", w, i);
    e.name.assign(reinterpret_cast<const char*>(h + 46), nlen);
    // ZIP64 extended information: only the fields that overflowed are present, in this order.
    const uint8_t* x = h + 46 + nlen;
    for (uint64_t xp = 0; xp + 4 <= xlen;) {
      const uint16_t id = le16(x + xp), len = le16(x + xp + 2);
      if (xp + 4 + len > xlen) break;
      if (id == 0x0001) {
        const uint8_t* f = x + xp + 4;
        uint64_t left = len;
        auto take = [&](uint64_t& v) {
          if (v != 0xffffffff) return;
          LMF_CHECK(left >= 8, IoError, "{}: zip entry '{}' has a short ZIP64 field", w,
                    printable(e.name));
          v = le64(f);
          f += 8;
          left -= 8;
        };
        take(usize);
        take(csize);
        take(local);
      }
      xp += 4 + len;
    }
    LMF_CHECK(usize != 0xffffffff && csize != 0xffffffff && local != 0xffffffff, IoError,
              "{}: zip entry '{}' needs ZIP64 sizes but has none", w, printable(e.name));
    LMF_CHECK(fits(local, 30, size) && le32(data + local) == kLocalSig, IoError,
              "{}: zip entry '{}' points to a local header at byte {} that is missing or out of "
              "range (truncated?)",
              w, printable(e.name), local);
    const uint64_t start = local + 30 + le16(data + local + 26) + le16(data + local + 28);
    LMF_CHECK(fits(start, csize, size), IoError,
              "{}: zip entry '{}' data [{}, +{}) runs past the end of the {}-byte file "
              "(truncated?)",
              w, printable(e.name), start, csize, size);
    LMF_CHECK(e.method != 0 || csize == usize, IoError,
              "{}: stored zip entry '{}' has compressed size {} != size {}", w, printable(e.name),
              csize, usize);
    LMF_CHECK(index_.emplace(e.name, entries_.size()).second, IoError, "{}: zip entry '{}' appears twice", w,
              printable(e.name));
    e.data_offset = start;
    e.size = e.method == 0 ? usize : csize;
    entries_.push_back(std::move(e));
    pos += 46 + nlen + xlen + clen;
  }
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

uint64_t ZipReader::stored_offset(const ZipEntry& e) const {
  LMF_CHECK(e.method == 0, IoError,
            "{}: zip entry '{}' is compressed (method {}); torch.save writes stored entries, so "
            "re-save the checkpoint with torch.save (or convert it to safetensors)",
            what_, printable(e.name), e.method);
  LMF_CHECK((e.flags & 1) == 0, IoError, "{}: zip entry '{}' is encrypted", what_,
            printable(e.name));
  return e.data_offset;
}

}  // namespace lmf::io::detail
