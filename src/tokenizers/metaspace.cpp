// Metaspace pre-tokenizer and decoder (HF pre_tokenizers/metaspace.rs).
#include "lmforge/tokenizers/metaspace.h"

#include "lmforge/tokenizers/pattern.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tok {

MetaspacePreTokenizer::MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
    : scheme_(scheme), split_(split) {
  append_utf8(rep_, replacement);
}

void MetaspacePreTokenizer::pre_tokenize(PreTokenizedString& pts) const {
  pts.split([this](size_t, NormalizedString&& ns, std::vector<NormalizedString>& out) {
    if (ns.get().find(' ') != std::string::npos) ns.replace(find_matches(ns.get(), " "), rep_);
    const bool starts = ns.get().starts_with(rep_);
    if ((scheme_ == PrependScheme::Always && !starts) ||
        (scheme_ == PrependScheme::First && !starts && ns.offsets_original().first == 0)) {
      ns.prepend(rep_);
    }
    if (!split_) {
      out.push_back(std::move(ns));
      return;
    }
    for (auto& p : ns.split(find_matches(ns.get(), rep_), SplitBehavior::MergedWithNext))
      out.push_back(std::move(p));
  });
}

std::vector<std::string> MetaspaceDecoder::decode_chain(std::vector<std::string> tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    std::string out;
    out.reserve(t.size());
    for (size_t k = 0; k < t.size();) {
      size_t start = k;
      char32_t c = next_char(t, k);
      if (c != replacement_) {
        out.append(t, start, k - start);
      } else if (i != 0 || scheme_ == PrependScheme::Never) {
        out.push_back(' ');
      }
    }
    tokens[i] = std::move(out);
  }
  return tokens;
}

}  // namespace lmf::tok
