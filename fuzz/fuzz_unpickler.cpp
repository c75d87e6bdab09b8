// libFuzzer target: the restricted unpickler and the torch zip reader on arbitrary bytes. The
// first byte picks the entry point: even = raw data.pkl (every storage key resolves to 256 zero
// bytes), odd = a whole pytorch_model.bin archive. Only lmf::Error may escape.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "io/unpickler.h"
#include "lmforge/io/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool archive = data[0] & 1;
  ++data;
  --size;
  try {
    if (archive) {
      lmf::io::load_torch_bin_buffer(data, size, lmf::DType::f32);
    } else {
      auto zeros = lmf::Storage::allocate(256);
      std::memset(zeros->data(), 0, 256);
      auto resolve = [&](const std::string&) {
        return lmf::io::detail::StorageBytes{zeros, 0, 256};
      };
      lmf::io::detail::unpickle_state_dict(data, size, resolve, "fuzz", lmf::DType::f16);
    }
  } catch (const lmf::Error&) {
  }
  return 0;
}
