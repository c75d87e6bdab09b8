// GPT-2 byte-level pipeline stages (HF ByteLevel as pre-tokenizer, normalizer, decoder and
// post-processor) on the framework's NormalizedString / Encoding.
#include "lmforge/core/error.h"
#include "lmforge/tokenizers/byte_level.h"
#include "lmforge/tokenizers/unicode.h"
#include "tokenizers/factory.h"

namespace lmf::tok {

namespace {
void transform_to_byte_level(NormalizedString& ns) {
  const std::string& s = ns.get();
  thread_local std::vector<CharChange> changes;
  changes.clear();
  for (size_t i = 0; i < s.size();) {
    size_t n = std::min(utf8_len(static_cast<unsigned char>(s[i])), s.size() - i);
    for (size_t k = 0; k < n; ++k)
      changes.push_back({byte_level_cp(static_cast<uint8_t>(s[i + k])), k > 0 ? 1 : 0});
    i += n;
  }
  ns.transform(changes, 0);
}
}  // namespace

void ByteLevelPreTokenizer::pre_tokenize(PreTokenizedString& pts) const {
  pts.split([this](size_t, NormalizedString&& ns, std::vector<NormalizedString>& out) {
    if (add_prefix_space_ && !ns.get().starts_with(' ')) ns.prepend(" ");
    if (!use_regex_) {
      out.push_back(std::move(ns));
      return;
    }
    thread_local std::vector<Match> matches;
    gpt2_split(ns.get(), matches);
    for (auto& piece : ns.split(matches, SplitBehavior::Isolated)) out.push_back(std::move(piece));
  });
  pts.normalize(transform_to_byte_level);
}

void ByteLevelNormalizer::normalize(NormalizedString& s) const {
  transform_to_byte_level(s);
}

std::vector<std::string> ByteLevelDecoder::decode_chain(std::vector<std::string> tokens) const {
  std::string bytes;
  for (const std::string& t : tokens) {
    size_t start = bytes.size();
    bool all_mapped = true;
    for (size_t i = 0; i < t.size();) {
      char32_t c = next_char(t, i);
      int b = byte_level_byte(c);
      if (b < 0) {
        all_mapped = false;
        break;
      }
      bytes.push_back(static_cast<char>(b));
    }
    if (!all_mapped) {
      bytes.resize(start);
      bytes += t;
    }
  }
  return {sanitize_utf8(bytes)};
}

std::vector<Encoding> ByteLevelPostProcessor::process_encodings(std::vector<Encoding> encodings,
                                                                bool) const {
  if (trim_offsets_) {
    for (Encoding& e : encodings) {
      trim_byte_level_offsets(e, add_prefix_space_);
      for (Encoding& o : e.overflowing) trim_byte_level_offsets(o, add_prefix_space_);
    }
  }
  for (size_t i = 0; i < encodings.size(); ++i) encodings[i].set_sequence_id(i);
  return encodings;
}

}  // namespace lmf::tok
