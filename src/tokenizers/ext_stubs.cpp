// Stub definitions of the factory hooks (src/tokenizers/factory.h) until the BPE / Unigram /
// byte-level components exist; they replace this file.
#include "tokenizers/factory.h"

namespace lmf::tok {

std::unique_ptr<Model> make_model_ext(std::string_view, const json&) { return nullptr; }
std::unique_ptr<Normalizer> make_normalizer_ext(std::string_view, const json&) { return nullptr; }
std::unique_ptr<PreTokenizer> make_pre_tokenizer_ext(std::string_view, const json&) {
  return nullptr;
}
std::unique_ptr<PostProcessor> make_post_processor_ext(std::string_view, const json&) {
  return nullptr;
}
std::unique_ptr<Decoder> make_decoder_ext(std::string_view, const json&) { return nullptr; }
bool load_legacy_ext(const std::filesystem::path&, const json&, const json&, Tokenizer&) {
  return false;
}

}  // namespace lmf::tok
