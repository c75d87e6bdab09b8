// pytorch_model.bin: the zip archive torch.save writes (<archive>/data.pkl, <archive>/data/<key>,
// <archive>/byteorder, <archive>/version), read through the restricted unpickler.
#include "io/io_util.h"
#include "io/unpickler.h"
#include "io/zip_reader.h"
#include "lmforge/io/checkpoint.h"

namespace lmf::io {

namespace {

StateDict load_archive(const std::shared_ptr<Storage>& file, const std::string& what,
                       std::optional<DType> convert_to) {
  detail::check_convert_to(convert_to);
  const auto* data = static_cast<const uint8_t*>(file->data());
  const size_t size = file->nbytes();
  if (size < 4 || detail::le32(data) != 0x04034b50) {
    const bool legacy = (size >= 2 && data[0] == 0x80) ||
                        (size >= 262 && std::memcmp(data + 257, "ustar", 5) == 0);
    if (legacy)
      fail<IoError>("{}: legacy torch.save format (torch < 1.6 or "
                    "_use_new_zipfile_serialization=False) is not supported; re-save it with a "
                    "recent torch (torch.save(torch.load(f), f)) or convert it to safetensors",
                    what);
    fail<IoError>("{}: not a torch.save checkpoint (no zip signature at byte 0)", what);
  }
  detail::ZipReader zip(data, size, what);
  const detail::ZipEntry* pkl = nullptr;
  for (const auto& e : zip.entries()) {
    const auto slash = e.name.find('/');
    if (slash == std::string::npos || e.name.substr(slash) != "/data.pkl") continue;
    LMF_CHECK(pkl == nullptr, IoError, "{}: two data.pkl entries ('{}' and '{}')", what,
              detail::printable(pkl->name), detail::printable(e.name));
    pkl = &e;
  }
  LMF_CHECK(pkl != nullptr, IoError,
            "{}: zip archive has no <archive>/data.pkl entry; not a torch.save checkpoint", what);
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - 8);  // keeps the '/'
  if (const auto* bo = zip.find(prefix + "byteorder")) {
    const std::string order(reinterpret_cast<const char*>(data + zip.stored_offset(*bo)),
                            static_cast<size_t>(bo->size));
    LMF_CHECK(order == "little", IoError,
              "{}: byte order '{}' is not supported (only little-endian checkpoints)", what,
              detail::printable(order));
  }
  auto resolve = [&](const std::string& key) {
    const detail::ZipEntry* e = zip.find(prefix + "data/" + key);
    LMF_CHECK(e != nullptr, IoError,
              "{}: the pickle refers to storage '{}' but the archive has no entry '{}data/{}' "
              "(truncated or damaged checkpoint)",
              what, detail::printable(key), detail::printable(prefix), detail::printable(key));
    return detail::StorageBytes{file, static_cast<size_t>(zip.stored_offset(*e)),
                                static_cast<size_t>(e->size)};
  };
  const uint64_t off = zip.stored_offset(*pkl);
  return detail::unpickle_state_dict(data + off, static_cast<size_t>(pkl->size), resolve, what,
                                     convert_to);
}

}  // namespace

StateDict load_torch_bin(const std::string& path, std::optional<DType> convert_to) {
  return load_archive(detail::map_file(path), path, convert_to);
}

StateDict load_torch_bin_buffer(const uint8_t* data, size_t size,
                                std::optional<DType> convert_to) {
  return load_archive(detail::copy_to_storage(data, size), "<memory>", convert_to);
}

}  // namespace lmf::io
