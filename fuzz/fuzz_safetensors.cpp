// libFuzzer target: safetensors header parsing and full loading (with and without conversion) on
// arbitrary bytes. Anything but an lmf::Error escaping, or a sanitizer report, is a bug.
#include <cstddef>
#include <cstdint>

#include "lmforge/io/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lmf::io::parse_safetensors_header(data, size);
  } catch (const lmf::Error&) {
    return 0;
  }
  try {
    lmf::io::load_safetensors_buffer(data, size, std::nullopt);
    lmf::io::load_safetensors_buffer(data, size, lmf::DType::bf16);
  } catch (const lmf::Error&) {
  }
  return 0;
}
