// BPE model: HF `tokenizers` models/bpe (model.rs, word.rs) re-done in C++: per-char symbols,
// then rank-ordered merges with a heap over a linked list of symbols, cached per thread.
#include "lmforge/tokenizers/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"

namespace lmf::tok {
namespace {

constexpr uint32_t kNone = ~0u;
constexpr size_t kCacheMaxWordBytes = 256;  // HF's MAX_LENGTH: longer words are not cached
constexpr uint32_t kCharTable = 1024;

// Length of the UTF-8 sequence led by `b` (1 for a stray continuation byte, never 0).
inline size_t utf8_len(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 1;
}

inline uint32_t decode_cp(std::string_view s) {
  auto u = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i])); };
  switch (s.size()) {
    case 1:
      return u(0);
    case 2:
      return ((u(0) & 0x1F) << 6) | (u(1) & 0x3F);
    case 3:
      return ((u(0) & 0x0F) << 12) | ((u(1) & 0x3F) << 6) | (u(2) & 0x3F);
    default:
      return ((u(0) & 0x07) << 18) | ((u(1) & 0x3F) << 12) | ((u(2) & 0x3F) << 6) | (u(3) & 0x3F);
  }
}

std::string byte_token(unsigned char b) {
  return fmt::format("<0x{:02X}>", b);
}

std::string read_text(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  LMF_CHECK(f.good(), IoError, "cannot open {} '{}': check that the file exists", what, path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::optional<std::string> opt_string(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  LMF_CHECK(it->is_string(), ValueError, "BPE model: '{}' must be a string or null", key);
  return it->get<std::string>();
}

bool opt_bool(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return false;
  LMF_CHECK(it->is_boolean(), ValueError, "BPE model: '{}' must be a boolean", key);
  return it->get<bool>();
}

// "a b" merge lines (tokenizer.json's legacy form and merges.txt): exactly one space.
std::pair<std::string, std::string> split_merge(std::string_view line, size_t rank) {
  auto sp = line.find(' ');
  LMF_CHECK(sp != std::string_view::npos && line.find(' ', sp + 1) == std::string_view::npos,
            ValueError, "BPE merges: entry {} ('{}') is not two tokens separated by one space",
            rank + 1, line);
  return {std::string(line.substr(0, sp)), std::string(line.substr(sp + 1))};
}

Vocab vocab_from_json(const nlohmann::json& v, const char* where) {
  LMF_CHECK(v.is_object(), ValueError, "{}: the vocab must be a JSON object {{token: id}}", where);
  Vocab vocab;
  vocab.reserve(v.size());
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it.value().is_number_unsigned() && !it.value().is_number_integer()) continue;
    auto id = it.value().get<int64_t>();
    LMF_CHECK(id >= 0 && id <= 0xFFFFFFFFll, ValueError, "{}: token '{}' has invalid id {}", where,
              it.key(), id);
    vocab[it.key()] = static_cast<uint32_t>(id);
  }
  return vocab;
}

std::atomic<uint64_t> g_next_cache_key{1};

using WordCache =
    std::unordered_map<std::string, std::vector<BPE::Symbol>, StringHash, std::equal_to<>>;
struct ThreadCaches {
  std::unordered_map<uint64_t, WordCache> by_model;
};
thread_local ThreadCaches t_caches;

}  // namespace

// Open-addressing map (id_a, id_b) -> (rank, new_id); the merge loop's hottest lookup.
struct BPE::PairMap {
  struct Slot {
    uint64_t key = ~0ull;
    uint32_t rank = 0, new_id = 0;
  };
  std::vector<Slot> slots;
  uint64_t mask = 0;

  explicit PairMap(size_t n) {
    size_t cap = 16;
    while (cap < n * 2 + 16) cap <<= 1;
    slots.resize(cap);
    mask = cap - 1;
  }
  static uint64_t key(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }
  static uint64_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
  }
  void put(uint32_t a, uint32_t b, uint32_t rank, uint32_t new_id) {
    uint64_t k = key(a, b);
    for (uint64_t i = hash(k) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == k || slots[i].key == ~0ull) {
        slots[i] = {k, rank, new_id};
        return;
      }
    }
  }
  const Slot* get(uint32_t a, uint32_t b) const {
    uint64_t k = key(a, b);
    for (uint64_t i = hash(k) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == k) return &slots[i];
      if (slots[i].key == ~0ull) return nullptr;
    }
  }
};

BPE::BPE(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
         BpeOptions options)
    : vocab_(std::move(vocab)),
      options_(std::move(options)),
      cache_key_(g_next_cache_key.fetch_add(1)) {
  uint32_t max_id = 0;
  for (auto& [tok, id] : vocab_) max_id = std::max(max_id, id);
  LMF_CHECK(max_id < vocab_.size() * 4 + (1u << 20), ValueError,
            "BPE vocab: id {} is far beyond the vocab size {}; ids must be dense", max_id,
            vocab_.size());
  vocab_r_.assign(vocab_.empty() ? 0 : size_t(max_id) + 1, std::string());
  has_id_.assign(vocab_r_.size(), 0);
  for (auto& [tok, id] : vocab_) {
    vocab_r_[id] = tok;
    has_id_[id] = 1;
  }

  size_t prefix_len =
      options_.continuing_subword_prefix ? options_.continuing_subword_prefix->size() : 0;
  merges_ = std::make_unique<PairMap>(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab_.find(a);
    LMF_CHECK(ia != vocab_.end(), ValueError,
              "BPE merges: token '{}' of merge {} ('{} {}') is not in the vocab", a, rank + 1, a,
              b);
    auto ib = vocab_.find(b);
    LMF_CHECK(ib != vocab_.end(), ValueError,
              "BPE merges: token '{}' of merge {} ('{} {}') is not in the vocab", b, rank + 1, a,
              b);
    LMF_CHECK(b.size() >= prefix_len, ValueError,
              "BPE merges: merge {} right token '{}' is shorter than the continuing prefix",
              rank + 1, b);
    joined.assign(a);
    joined.append(b, prefix_len);
    auto in = vocab_.find(joined);
    LMF_CHECK(in != vocab_.end(), ValueError,
              "BPE merges: merge {} ('{} {}') gives '{}', which is not in the vocab", rank + 1, a,
              b, joined);
    merges_->put(ia->second, ib->second, static_cast<uint32_t>(rank), in->second);
  }

  char_ids_.assign(kCharTable, kNone);
  if (!options_.continuing_subword_prefix && !options_.end_of_word_suffix) {
    for (auto& [tok, id] : vocab_) {
      if (tok.empty() || utf8_len(tok[0]) != tok.size()) continue;
      uint32_t cp = decode_cp(tok);
      if (cp < kCharTable) char_ids_[cp] = id;
    }
  }
}

BPE::~BPE() = default;

std::unique_ptr<BPE> BPE::from_json(const nlohmann::json& m) {
  LMF_CHECK(m.is_object(), ValueError, "BPE model: expected a JSON object");
  if (auto t = m.find("type"); t != m.end()) {
    LMF_CHECK(t->is_string() && t->get<std::string>() == "BPE", ValueError,
              "BPE model: 'type' is {}, expected \"BPE\"", t->dump());
  }
  if (auto d = m.find("dropout"); d != m.end() && !d->is_null()) {
    LMF_CHECK(d->is_number() && d->get<double>() == 0.0, ValueError,
              "BPE model: dropout {} is not supported (HF samples merges at random, so results "
              "could not be reproduced); set \"dropout\": null for inference",
              d->dump());
  }
  BpeOptions o;
  o.unk_token = opt_string(m, "unk_token");
  o.continuing_subword_prefix = opt_string(m, "continuing_subword_prefix");
  o.end_of_word_suffix = opt_string(m, "end_of_word_suffix");
  o.fuse_unk = opt_bool(m, "fuse_unk");
  o.byte_fallback = opt_bool(m, "byte_fallback");
  o.ignore_merges = opt_bool(m, "ignore_merges");

  auto v = m.find("vocab");
  auto mg = m.find("merges");
  LMF_CHECK(v != m.end() && mg != m.end(), ValueError, "BPE model: missing 'vocab' or 'merges'");
  Vocab vocab = vocab_from_json(*v, "BPE model");
  LMF_CHECK(mg->is_array(), ValueError, "BPE model: 'merges' must be an array");
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(mg->size());
  for (size_t i = 0; i < mg->size(); ++i) {
    const auto& e = (*mg)[i];
    if (e.is_string()) {
      merges.push_back(split_merge(e.get_ref<const std::string&>(), i));
    } else {
      LMF_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), ValueError,
                "BPE model: merge {} must be \"a b\" or [\"a\", \"b\"], got {}", i + 1, e.dump());
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    }
  }
  return std::make_unique<BPE>(std::move(vocab), merges, std::move(o));
}

std::unique_ptr<BPE> BPE::from_files(const std::string& vocab_json, const std::string& merges_txt,
                                     BpeOptions options) {
  nlohmann::json v;
  try {
    v = nlohmann::json::parse(read_text(vocab_json, "BPE vocab file"));
  } catch (const nlohmann::json::exception& e) {
    fail<ValueError>("BPE vocab file '{}' is not valid JSON: {}", vocab_json, e.what());
  }
  Vocab vocab = vocab_from_json(v, vocab_json.c_str());
  std::string text = read_text(merges_txt, "BPE merges file");
  std::vector<std::pair<std::string, std::string>> merges;
  size_t pos = 0, rank = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string_view line(text.data() + pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (line.starts_with("#version")) continue;
    try {
      merges.push_back(split_merge(line, rank));
    } catch (const ValueError& e) {
      fail<ValueError>("{}: {}", merges_txt, e.what());
    }
    ++rank;
  }
  return std::make_unique<BPE>(std::move(vocab), merges, std::move(options));
}

std::vector<BPE::Symbol> BPE::merge_word(std::string_view w) const {
  std::vector<Symbol> word;
  merge_word_into(w, word);
  return word;
}

void BPE::merge_word_into(std::string_view w, std::vector<Symbol>& word) const {
  word.clear();
  const bool affixes = options_.continuing_subword_prefix || options_.end_of_word_suffix;
  std::optional<Symbol> unk;
  std::string s;
  for (size_t i = 0; i < w.size();) {
    size_t n = std::min(utf8_len(w[i]), w.size() - i);
    std::string_view ch = w.substr(i, n);
    const bool is_first = i == 0, is_last = i + n == w.size();
    i += n;
    uint32_t id = kNone;
    if (!affixes) {
      uint32_t cp = decode_cp(ch);
      if (cp < kCharTable) {
        id = char_ids_[cp];
      } else if (auto it = vocab_.find(ch); it != vocab_.end()) {
        id = it->second;
      }
    } else {
      s.clear();
      if (!is_first && options_.continuing_subword_prefix) s += *options_.continuing_subword_prefix;
      s.append(ch);
      if (is_last && options_.end_of_word_suffix) s += *options_.end_of_word_suffix;
      if (auto it = vocab_.find(s); it != vocab_.end()) id = it->second;
    }
    if (id != kNone) {
      if (unk) {
        word.push_back(*unk);
        unk.reset();
      }
      word.push_back({id, static_cast<uint32_t>(n)});
      continue;
    }
    if (options_.byte_fallback) {
      std::string_view bytes = affixes ? std::string_view(s) : ch;
      std::vector<uint32_t> ids;
      for (unsigned char b : bytes) {
        auto it = vocab_.find(byte_token(b));
        if (it == vocab_.end()) break;
        ids.push_back(it->second);
      }
      if (ids.size() == bytes.size()) {  // HF adds these before any pending unk (kept as is)
        for (uint32_t bid : ids) word.push_back({bid, 1});
        continue;
      }
    }
    if (options_.unk_token) {
      auto unk_id = [&] {
        auto it = vocab_.find(*options_.unk_token);
        LMF_CHECK(it != vocab_.end(), ValueError,
                  "BPE: unk_token '{}' is not in the vocab (needed for an unknown character)",
                  *options_.unk_token);
        return it->second;
      };
      if (unk && options_.fuse_unk) {
        unk->len += static_cast<uint32_t>(n);
      } else {
        if (unk) word.push_back(*unk);
        unk = Symbol{unk_id(), static_cast<uint32_t>(n)};
      }
    }
  }
  if (unk) word.push_back(*unk);
  if (word.size() < 2) return;

  // HF word.rs merge_all: a min-heap of (rank, pos) over a doubly linked list of symbols.
  struct Node {
    uint32_t id, len;
    int32_t prev, next;
  };
  struct Merge {
    uint32_t rank, pos, new_id;
    bool operator<(const Merge& o) const {  // the heap pops the largest: invert
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  const int32_t n = static_cast<int32_t>(word.size());
  thread_local std::vector<Node> t_sym;
  thread_local std::vector<Merge> t_queue;
  std::vector<Node>& sym = t_sym;
  std::vector<Merge>& queue = t_queue;  // a binary heap (std::push_heap / pop_heap)
  sym.resize(n);
  queue.clear();
  for (int32_t i = 0; i < n; ++i) sym[i] = {word[i].id, word[i].len, i - 1, i + 1 < n ? i + 1 : -1};
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (auto* m = merges_->get(sym[i].id, sym[i + 1].id))
      queue.push_back({m->rank, static_cast<uint32_t>(i), m->new_id});
  }
  std::make_heap(queue.begin(), queue.end());
  auto push = [&queue](const Merge& m) {
    queue.push_back(m);
    std::push_heap(queue.begin(), queue.end());
  };
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end());
    Merge top = queue.back();
    queue.pop_back();
    Node& cur = sym[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const int32_t next_pos = cur.next;
    const Node right = sym[next_pos];
    auto* m = merges_->get(cur.id, right.id);
    if (!m || m->new_id != top.new_id) continue;  // an expired entry
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    sym[next_pos].len = 0;
    if (right.next > -1 && right.next < n) sym[right.next].prev = static_cast<int32_t>(top.pos);
    if (cur.prev >= 0) {
      if (auto* pm = merges_->get(sym[cur.prev].id, cur.id))
        push({pm->rank, static_cast<uint32_t>(cur.prev), pm->new_id});
    }
    if (cur.next >= 0 && cur.next < n) {
      if (auto* nm = merges_->get(cur.id, sym[cur.next].id)) push({nm->rank, top.pos, nm->new_id});
    }
  }
  word.clear();
  for (const Node& s2 : sym)
    if (s2.len != 0) word.push_back({s2.id, s2.len});
}

std::vector<Token> BPE::tokenize(std::string_view piece) const {
  std::vector<Token> out;
  if (piece.empty()) return out;
  if (options_.ignore_merges) {
    if (auto it = vocab_.find(piece); it != vocab_.end()) {
      out.push_back({it->second, std::string(piece), 0, piece.size()});
      return out;
    }
  }
  auto emit = [&](const std::vector<Symbol>& word) {
    out.reserve(word.size());
    size_t pos = 0;
    for (const Symbol& s : word) {
      // Offsets are clamped: HF counts byte-fallback bytes of a prefixed char past the piece.
      size_t b = std::min(pos, piece.size()), e = std::min(pos + s.len, piece.size());
      out.push_back({s.id, vocab_r_[s.id], b, e});
      pos += s.len;
    }
  };
  const bool cacheable = options_.cache_capacity > 0 && piece.size() < kCacheMaxWordBytes;
  WordCache* cache = nullptr;
  if (cacheable) {
    cache = &t_caches.by_model[cache_key_];
    if (auto it = cache->find(piece); it != cache->end()) {
      emit(it->second);
      return out;
    }
  }
  thread_local std::vector<Symbol> word;
  merge_word_into(piece, word);
  emit(word);
  if (cache && cache->size() < options_.cache_capacity) cache->emplace(std::string(piece), word);
  return out;
}

std::optional<uint32_t> BPE::token_to_id(std::string_view token) const {
  if (auto it = vocab_.find(token); it != vocab_.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> BPE::id_to_token(uint32_t id) const {
  if (id >= vocab_r_.size() || !has_id_[id]) return std::nullopt;
  return vocab_r_[id];
}

}  // namespace lmf::tok
