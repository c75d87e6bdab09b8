// libFuzzer target: GGUF parsing (metadata, tensor infos, offsets) and dequantization of every
// supported tensor on arbitrary bytes. Anything but an lmf::Error escaping, or a sanitizer report,
// is a bug.
#include <cstddef>
#include <cstdint>

#include "lmforge/io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const lmf::io::GgufFile f = lmf::io::GgufFile::from_buffer(data, size);
    for (const auto& [key, value] : f.metadata()) {
      if (value.is_int() && value.type != lmf::io::GgufType::U64) (void)value.as_int(key);
      (void)value.array_size();
    }
    for (const auto& t : f.tensors()) {
      try {
        (void)f.dequantize(t);
      } catch (const lmf::Error&) {
      }
    }
  } catch (const lmf::Error&) {
  }
  return 0;
}
