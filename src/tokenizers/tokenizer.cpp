// Tokenizer: added-token extraction, normalization, pre-tokenization, the model, offsets back
// to the original text, truncation, post-processing, padding, batch encoding and decoding.
#include "lmforge/tokenizers/tokenizer.h"

#include <algorithm>
#include <exception>

#include "lmforge/core/error.h"
#include "lmforge/core/runtime.h"
#include "lmforge/tokenizers/unicode.h"
#include "tokenizers/factory.h"

namespace lmf::tok {

// Leftmost-longest matching of the added tokens (a byte trie).
struct Tokenizer::AddedMatcher {
  struct Node {
    std::vector<std::pair<unsigned char, uint32_t>> next;
    int64_t value = -1;  // index into added_
  };
  std::vector<Node> nodes = std::vector<Node>(1);

  void add(std::string_view s, size_t value) {
    uint32_t n = 0;
    for (unsigned char b : s) {
      auto& nx = nodes[n].next;
      auto it = std::find_if(nx.begin(), nx.end(), [&](const auto& p) { return p.first == b; });
      if (it != nx.end()) {
        n = it->second;
      } else {
        const auto child = static_cast<uint32_t>(nodes.size());
        nodes[n].next.emplace_back(b, child);
        nodes.emplace_back();
        n = child;
      }
    }
    nodes[n].value = static_cast<int64_t>(value);
  }
  // Longest token starting at s[i]: (length, index) or length 0.
  std::pair<size_t, size_t> longest(std::string_view s, size_t i) const {
    uint32_t n = 0;
    std::pair<size_t, size_t> best{0, 0};
    for (size_t k = i; k < s.size(); ++k) {
      const auto b = static_cast<unsigned char>(s[k]);
      const auto& nx = nodes[n].next;
      auto it = std::find_if(nx.begin(), nx.end(), [&](const auto& p) { return p.first == b; });
      if (it == nx.end()) break;
      n = it->second;
      if (nodes[n].value >= 0) best = {k + 1 - i, static_cast<size_t>(nodes[n].value)};
    }
    return best;
  }
};

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

void Tokenizer::set_normalizer(std::unique_ptr<Normalizer> n) {
  normalizer_ = std::move(n);
}
void Tokenizer::set_pre_tokenizer(std::unique_ptr<PreTokenizer> p) {
  pre_tokenizer_ = std::move(p);
}
void Tokenizer::set_model(std::unique_ptr<Model> m) {
  model_ = std::move(m);
}
void Tokenizer::set_post_processor(std::unique_ptr<PostProcessor> p) {
  post_processor_ = std::move(p);
}
void Tokenizer::set_decoder(std::unique_ptr<Decoder> d) {
  decoder_ = std::move(d);
}

const Model& Tokenizer::model() const {
  LMF_CHECK(model_ != nullptr, ValueError, "tokenizer has no model (load a tokenizer first)");
  return *model_;
}

size_t Tokenizer::add_tokens(const std::vector<AddedToken>& tokens) {
  return add_tokens_impl(tokens, false);
}
size_t Tokenizer::add_special_tokens(const std::vector<AddedToken>& tokens) {
  return add_tokens_impl(tokens, true);
}

size_t Tokenizer::add_tokens_impl(const std::vector<AddedToken>& tokens, bool special) {
  const size_t model_size = model_ ? model_->vocab_size() : 0;
  uint32_t next_id = static_cast<uint32_t>(model_size);
  for (const auto& [id, idx] : added_by_id_)
    if (id >= model_size || model_size == 0) next_id = std::max(next_id, id + 1);
  size_t added = 0;
  for (AddedToken t : tokens) {
    if (t.content.empty()) continue;
    if (special) t.special = true;
    if (auto it = added_to_id_.find(t.content); it != added_to_id_.end()) {
      const AddedToken& old = added_[added_by_id_.at(it->second)];
      if (old.single_word == t.single_word && old.lstrip == t.lstrip && old.rstrip == t.rstrip &&
          old.normalized == t.normalized && old.special == t.special)
        continue;
    }
    uint32_t id;
    if (auto it = added_to_id_.find(t.content); it != added_to_id_.end())
      id = it->second;
    else if (auto mid = model_ ? model_->token_to_id(t.content) : std::nullopt)
      id = *mid;
    else if (t.id)
      id = *t.id;
    else
      id = next_id;
    next_id = std::max(next_id, id + 1 > model_size ? id + 1 : next_id);
    t.id = id;
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
      added_to_id_.erase(added_[it->second].content);
      added_[it->second] = t;
    } else {
      added_by_id_[id] = added_.size();
      added_.push_back(t);
    }
    added_to_id_[t.content] = id;
    if (t.special) special_ids_.insert(id);
    ++added;
  }
  rebuild_added_matchers();
  return added;
}

void Tokenizer::rebuild_added_matchers() {
  matcher_raw_.reset();
  matcher_normalized_.reset();
  for (size_t i = 0; i < added_.size(); ++i) {
    const AddedToken& t = added_[i];
    std::string pattern = t.content;
    auto& m = t.normalized ? matcher_normalized_ : matcher_raw_;
    if (t.normalized && normalizer_) {
      NormalizedString s(t.content);
      normalizer_->normalize(s);
      pattern = s.get();
    }
    if (pattern.empty()) continue;
    if (!m) m = std::make_unique<AddedMatcher>();
    m->add(pattern, i);
  }
}

namespace {

struct Piece {
  std::optional<size_t> added;  // index into the added tokens
  Offsets range;
};

bool word_before(std::string_view s, size_t end) {
  if (end == 0) return false;
  size_t b = end - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  size_t i = b;
  return is_word_char(next_char(s, i));
}
bool word_after(std::string_view s, size_t begin) {
  if (begin >= s.size()) return false;
  size_t i = begin;
  return is_word_char(next_char(s, i));
}

}  // namespace

namespace {
// HF AddedVocabulary::find_matches for one string.
template <class M>
std::vector<Piece> find_added(std::string_view s, const M* m,
                              const std::vector<AddedToken>& added) {
  if (s.empty()) return {};
  if (!m) return {{std::nullopt, {0, s.size()}}};
  std::vector<Piece> out;
  size_t start_offset = 0;
  for (size_t i = 0; i < s.size();) {
    auto [len, idx] = m->longest(s, i);
    if (len == 0) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + len;
    i = stop;
    const AddedToken& t = added[idx];
    if (t.single_word) {
      const bool start_space = start == 0 || !word_before(s, start);
      const bool stop_space = stop == s.size() || !word_after(s, stop);
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) {
      size_t ns = start;
      while (ns > 0) {
        size_t b = ns - 1;
        while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
        size_t k = b;
        if (!is_whitespace(next_char(s, k))) break;
        ns = b;
      }
      start = std::max(ns, start_offset);
    }
    if (t.rstrip) {
      size_t k = stop;
      while (k < s.size()) {
        size_t k2 = k;
        if (!is_whitespace(next_char(s, k2))) break;
        k = k2;
      }
      stop = k;
    }
    if (start_offset < start) out.push_back({std::nullopt, {start_offset, start}});
    out.push_back({idx, {start, stop}});
    start_offset = stop;
  }
  if (start_offset != s.size()) out.push_back({std::nullopt, {start_offset, s.size()}});
  return out;
}
}  // namespace

Encoding Tokenizer::encode_sequence(std::string_view raw, uint32_t type_id,
                                    OffsetType offset_type) const {
  LMF_CHECK(model_ != nullptr, ValueError, "tokenizer has no model (load a tokenizer first)");
  std::string text;
  if (is_valid_utf8(raw)) {
    text.assign(raw);
  } else {
    LMF_CHECK(invalid_utf8_ == InvalidUtf8::Replace, ValueError,
              "input text is not valid UTF-8 (first bad byte near offset {})", [&] {
                size_t i = 0;
                while (i < raw.size() && is_valid_utf8(raw.substr(0, i + 1))) ++i;
                return i;
              }());
    text = sanitize_utf8(raw);
  }
  PreTokenizedString pts;
  // Two passes as HF: added tokens matched on the raw text, then the rest is normalized and
  // matched against the normalized forms of the other added tokens.
  {
    std::vector<Split> splits;
    NormalizedString whole(text);
    auto run = [&](NormalizedString&& s, const AddedMatcher* m, std::vector<Split>& out) {
      for (const Piece& p : find_added(s.get(), m, added_)) {
        // The whole string as one piece: slice() would copy it unchanged.
        const auto& al = s.alignments();
        const bool whole_piece = p.range.first == 0 && p.range.second == s.size() &&
                                 !al.empty() && al.front().first == 0 &&
                                 al.back().second == s.original().size();
        NormalizedString piece =
            whole_piece ? std::move(s) : s.slice(p.range.first, p.range.second);
        if (piece.empty()) continue;
        std::optional<std::vector<Token>> toks;
        if (p.added) {
          const std::string v = piece.get();
          toks = std::vector<Token>{Token{*added_[*p.added].id, v, 0, v.size()}};
        }
        out.push_back({std::move(piece), std::move(toks)});
      }
    };
    std::vector<Split> first;
    run(std::move(whole), matcher_raw_.get(), first);
    for (auto& sp : first) {
      if (sp.tokens) {
        splits.push_back(std::move(sp));
        continue;
      }
      if (normalizer_) normalizer_->normalize(sp.normalized);
      run(std::move(sp.normalized), matcher_normalized_.get(), splits);
    }
    pts = PreTokenizedString(text, std::move(splits));
  }
  if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pts);
  pts.tokenize(*model_);

  // Offsets back to the original text; chars as HF's Python API (char = byte on ASCII text).
  thread_local std::vector<uint32_t> char_table;
  const bool ascii = std::all_of(text.begin(), text.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (offset_type == OffsetType::Char && !ascii) {
    char_table.resize(text.size());
    uint32_t ci = 0;
    for (size_t i = 0; i < text.size(); ++ci) {
      const size_t n = std::min(utf8_len(static_cast<unsigned char>(text[i])), text.size() - i);
      for (size_t k = 0; k < n; ++k) char_table[i + k] = ci;
      i += n;
    }
  }
  auto char_of = [&](size_t b) { return ascii ? b : size_t{char_table[b]}; };
  Encoding enc;
  auto& splits = pts.splits();
  size_t n_tokens = 0;
  for (const auto& sp : splits) n_tokens += sp.tokens->size();
  enc.reserve(n_tokens);
  for (size_t w = 0; w < splits.size(); ++w) {
    const NormalizedString& ns = splits[w].normalized;
    const size_t shift = ns.offsets_original().first;
    for (Token& t : *splits[w].tokens) {
      Offsets off{t.begin, t.end};
      if (auto r = ns.convert_normalized(t.begin, t.end))
        off = {shift + r->first, shift + r->second};
      if (offset_type == OffsetType::Char && off.first < text.size()) {
        const size_t s = char_of(off.first);
        size_t e;
        if (off.second < text.size())
          e = char_of(off.second);
        else
          e = off.second >= 1 && off.second - 1 < text.size() ? char_of(off.second - 1) + 1 : s + 1;
        off = {s, e};
      }
      enc.push_back(t.id, std::move(t.value), off, static_cast<uint32_t>(w), type_id);
    }
  }
  return enc;
}

namespace {
// HF utils::truncation::truncate_encodings.
void truncate_pair(Encoding& a, std::optional<Encoding>& b, const TruncationParams& p) {
  if (p.max_length == 0) {
    a.truncate(0, p.stride, p.direction);
    if (b) b->truncate(0, p.stride, p.direction);
    return;
  }
  const size_t total = a.size() + (b ? b->size() : 0);
  if (total <= p.max_length) return;
  const size_t to_remove = total - p.max_length;
  if (p.strategy == TruncationStrategy::LongestFirst) {
    if (!b) {
      a.truncate(total - to_remove, p.stride, p.direction);
      return;
    }
    size_t n1 = a.size(), n2 = b->size();
    const bool swap = n1 > n2;
    if (swap) std::swap(n1, n2);
    if (n1 > p.max_length)
      n2 = n1;
    else
      n2 = std::max(n1, p.max_length - n1);
    if (n1 + n2 > p.max_length) {
      n1 = p.max_length / 2;
      n2 = n1 + p.max_length % 2;
    }
    if (swap) std::swap(n1, n2);
    a.truncate(n1, p.stride, p.direction);
    b->truncate(n2, p.stride, p.direction);
    return;
  }
  Encoding* target = &a;
  if (p.strategy == TruncationStrategy::OnlySecond) {
    LMF_CHECK(b.has_value(), ValueError,
              "truncation strategy only_second needs a pair input (second sequence not provided)");
    target = &*b;
  }
  LMF_CHECK(target->size() > to_remove, ValueError,
            "truncation: the sequence to truncate ({} tokens) is too short to fit max_length {} "
            "(must remove {})",
            target->size(), p.max_length, to_remove);
  target->truncate(target->size() - to_remove, p.stride, p.direction);
}

void pad_all(std::vector<Encoding>& encs, const PaddingParams& p) {
  if (encs.empty()) return;
  size_t len = 0;
  if (p.fixed_length) {
    len = *p.fixed_length;
  } else {
    for (const auto& e : encs) len = std::max(len, e.size());
  }
  if (p.pad_to_multiple_of && *p.pad_to_multiple_of > 0 && len % *p.pad_to_multiple_of)
    len += *p.pad_to_multiple_of - len % *p.pad_to_multiple_of;
  for (auto& e : encs) e.pad(len, p.pad_id, p.pad_type_id, p.pad_token, p.direction);
}
}  // namespace

Encoding Tokenizer::post_process(Encoding first, std::optional<Encoding> pair,
                                 bool add_special) const {
  if (truncation_) {
    TruncationParams p = *truncation_;
    const size_t n_added = post_processor_ ? post_processor_->added_tokens(pair.has_value()) : 0;
    if (add_special && n_added > 0) {
      LMF_CHECK(p.max_length >= n_added, ValueError,
                "truncation max_length {} is smaller than the {} special tokens added",
                p.max_length, n_added);
      p.max_length -= n_added;
    }
    truncate_pair(first, pair, p);
  }
  Encoding out;
  if (post_processor_) {
    out = post_processor_->process(std::move(first), std::move(pair), add_special);
  } else if (pair) {
    first.set_sequence_id(0);
    pair->set_sequence_id(1);
    out.merge_with(std::move(first), false);
    out.merge_with(std::move(*pair), false);
  } else {
    out = std::move(first);
  }
  if (padding_) {
    std::vector<Encoding> one;
    one.push_back(std::move(out));
    pad_all(one, *padding_);
    out = std::move(one[0]);
  }
  return out;
}

Encoding Tokenizer::encode(std::string_view text, bool add_special, OffsetType offsets) const {
  return post_process(encode_sequence(text, 0, offsets), std::nullopt, add_special);
}

Encoding Tokenizer::encode(std::string_view text, std::string_view pair, bool add_special,
                           OffsetType offsets) const {
  return post_process(encode_sequence(text, 0, offsets), encode_sequence(pair, 1, offsets),
                      add_special);
}

namespace {
template <class F>
void parallel_for(size_t n, F&& f) {
  std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 8) num_threads(lmf::num_threads()) if (n > 8)
  for (size_t i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
#pragma omp critical(lmf_tok_batch_error)
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}
}  // namespace

std::vector<Encoding> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                              bool add_special) const {
  std::vector<Encoding> out(texts.size());
  parallel_for(texts.size(), [&](size_t i) { out[i] = encode(texts[i], add_special); });
  if (padding_) pad_all(out, *padding_);
  return out;
}

std::vector<Encoding> Tokenizer::encode_batch(
    const std::vector<std::pair<std::string, std::string>>& pairs, bool add_special) const {
  std::vector<Encoding> out(pairs.size());
  parallel_for(pairs.size(),
               [&](size_t i) { out[i] = encode(pairs[i].first, pairs[i].second, add_special); });
  if (padding_) pad_all(out, *padding_);
  return out;
}

std::optional<uint32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = added_to_id_.find(std::string(token)); it != added_to_id_.end()) return it->second;
  return model_ ? model_->token_to_id(token) : std::nullopt;
}

std::optional<std::string> Tokenizer::id_to_token(uint32_t id) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return added_[it->second].content;
  return model_ ? model_->id_to_token(id) : std::nullopt;
}

size_t Tokenizer::vocab_size(bool with_added) const {
  size_t n = model_ ? model_->vocab_size() : 0;
  if (with_added)
    for (const auto& t : added_)
      if (!model_ || !model_->token_to_id(t.content)) ++n;
  return n;
}

bool Tokenizer::is_special_id(uint32_t id) const {
  return special_ids_.count(id) > 0;
}

std::string Tokenizer::decode(std::span<const uint32_t> ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (uint32_t id : ids) {
    auto t = id_to_token(id);
    if (!t) continue;
    if (skip_special) {
      auto it = added_to_id_.find(*t);
      if (it != added_to_id_.end() && special_ids_.count(it->second)) continue;
    }
    tokens.push_back(std::move(*t));
  }
  std::string text;
  if (decoder_) {
    text = decoder_->decode(std::move(tokens));
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  }
  return clean_up_spaces_ ? clean_up_tokenization(std::move(text)) : text;
}

std::vector<std::string> Tokenizer::decode_batch(const std::vector<std::vector<uint32_t>>& ids,
                                                 bool skip_special) const {
  std::vector<std::string> out(ids.size());
  parallel_for(ids.size(), [&](size_t i) { out[i] = decode(ids[i], skip_special); });
  return out;
}

}  // namespace lmf::tok
