// Unigram model: HF `tokenizers` models/unigram (model.rs encode_optimized, the SentencePiece
// best-path search) over a flattened byte trie.
#include "lmforge/tokenizers/unigram.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"

namespace lmf::tok {
namespace {

constexpr double kUnkPenalty = 10.0;

inline size_t char_len(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
  return std::min(n, s.size() - i);
}

}  // namespace

// Byte trie: children of node v are labels/targets[first[v], first[v] + count[v]) sorted by
// label; the root uses a direct 256-entry table. id[v] is the piece ending at v or -1.
struct Unigram::Trie {
  std::vector<int32_t> id, first, count, root;
  std::vector<uint8_t> labels;
  std::vector<int32_t> targets;

  int32_t child(int32_t v, uint8_t b) const {
    if (v == 0) return root[b];
    const uint8_t* l = labels.data() + first[v];
    const int32_t n = count[v];
    for (int32_t k = 0; k < n; ++k)
      if (l[k] == b) return targets[first[v] + k];
    return -1;
  }

  // Calls fn(length, id) for every piece that is a prefix of s, shortest first.
  template <class Fn>
  void prefixes(std::string_view s, Fn&& fn) const {
    int32_t v = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      v = child(v, static_cast<uint8_t>(s[i]));
      if (v < 0) return;
      if (id[v] >= 0) fn(i + 1, static_cast<uint32_t>(id[v]));
    }
  }
};

Unigram::Unigram(std::vector<std::pair<std::string, double>> vocab, std::optional<size_t> unk_id,
                 bool byte_fallback)
    : vocab_(std::move(vocab)), unk_id_(unk_id), byte_fallback_(byte_fallback) {
  if (unk_id_) {
    LMF_CHECK(!vocab_.empty(), ValueError,
              "Unigram: the vocabulary is empty but at least the unk piece is needed");
    LMF_CHECK(*unk_id_ < vocab_.size(), ValueError,
              "Unigram: unk_id {} is not below the vocabulary size {}", *unk_id_, vocab_.size());
  }
  LMF_CHECK(vocab_.size() < (size_t(1) << 31), ValueError, "Unigram: vocabulary too large");
  min_score_ = std::numeric_limits<double>::infinity();
  std::vector<std::map<uint8_t, int32_t>> kids(1);
  std::vector<int32_t> ids(1, -1);
  token_to_id_.reserve(vocab_.size());
  for (size_t i = 0; i < vocab_.size(); ++i) {
    const auto& [piece, score] = vocab_[i];
    token_to_id_[piece] = static_cast<uint32_t>(i);
    min_score_ = std::min(min_score_, score);
    int32_t v = 0;
    for (unsigned char b : piece) {
      auto it = kids[v].find(b);
      if (it == kids[v].end()) {
        int32_t nv = static_cast<int32_t>(ids.size());
        kids[v].emplace(b, nv);
        kids.emplace_back();
        ids.push_back(-1);
        v = nv;
      } else {
        v = it->second;
      }
    }
    ids[v] = 0;  // a leaf; the id is the last duplicate's (token_to_id_), filled below
  }
  trie_ = std::make_unique<Trie>();
  Trie& t = *trie_;
  t.id.assign(ids.size(), -1);
  t.first.assign(ids.size(), 0);
  t.count.assign(ids.size(), 0);
  t.root.assign(256, -1);
  for (auto& [b, c] : kids[0]) t.root[b] = c;
  for (size_t v = 1; v < kids.size(); ++v) {
    t.first[v] = static_cast<int32_t>(t.labels.size());
    t.count[v] = static_cast<int32_t>(kids[v].size());
    for (auto& [b, c] : kids[v]) {
      t.labels.push_back(b);
      t.targets.push_back(c);
    }
  }
  // Leaf ids from token_to_id_ (a duplicated piece resolves to its last id, as in HF).
  for (auto& [piece, i] : token_to_id_) {
    int32_t v = 0;
    for (unsigned char b : piece) v = v == 0 ? t.root[b] : t.child(v, b);
    if (v > 0) t.id[v] = static_cast<int32_t>(i);
  }
}

Unigram::~Unigram() = default;

std::unique_ptr<Unigram> Unigram::from_json(const nlohmann::json& m) {
  LMF_CHECK(m.is_object(), ValueError, "Unigram model: expected a JSON object");
  if (auto t = m.find("type"); t != m.end()) {
    LMF_CHECK(t->is_string() && t->get<std::string>() == "Unigram", ValueError,
              "Unigram model: 'type' is {}, expected \"Unigram\"", t->dump());
  }
  auto v = m.find("vocab");
  LMF_CHECK(v != m.end() && v->is_array(), ValueError,
            "Unigram model: missing 'vocab' (a list of [piece, score])");
  std::vector<std::pair<std::string, double>> vocab;
  vocab.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const auto& e = (*v)[i];
    LMF_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_number(), ValueError,
              "Unigram model: vocab[{}] must be [piece, score], got {}", i, e.dump());
    vocab.emplace_back(e[0].get<std::string>(), e[1].get<double>());
  }
  std::optional<size_t> unk_id;
  if (auto u = m.find("unk_id"); u != m.end() && !u->is_null()) {
    LMF_CHECK(u->is_number_unsigned() || (u->is_number_integer() && u->get<int64_t>() >= 0),
              ValueError, "Unigram model: 'unk_id' must be a non-negative integer or null");
    unk_id = u->get<size_t>();
  }
  bool byte_fallback = false;
  if (auto b = m.find("byte_fallback"); b != m.end() && !b->is_null()) {
    LMF_CHECK(b->is_boolean(), ValueError, "Unigram model: 'byte_fallback' must be a boolean");
    byte_fallback = b->get<bool>();
  }
  return std::make_unique<Unigram>(std::move(vocab), unk_id, byte_fallback);
}

std::vector<std::string> Unigram::encode(std::string_view s) const {
  std::vector<std::string> results;
  if (s.empty()) return results;
  struct Best {
    uint32_t id = 0;
    double score = 0;
    int64_t starts_at = -1;
  };
  const size_t size = s.size();
  const double unk_score = min_score_ - kUnkPenalty;
  std::vector<Best> best(size + 1);
  for (size_t start = 0; start < size;) {
    const double till_here = best[start].score;
    const size_t mblen = char_len(s, start);
    bool has_single = false;
    trie_->prefixes(s.substr(start), [&](size_t len, uint32_t id) {
      Best& target = best[start + len];
      double cand = vocab_[id].second + till_here;
      if (target.starts_at < 0 || cand > target.score) {
        target = {id, cand, static_cast<int64_t>(start)};
      }
      if (len == mblen) has_single = true;
    });
    if (!has_single) {
      LMF_CHECK(unk_id_.has_value(), ValueError,
                "Unigram: the text has a char with no piece at byte {} and the model has no "
                "unk_id",
                start);
      Best& target = best[start + mblen];
      double cand = unk_score + till_here;
      if (target.starts_at < 0 || cand > target.score) {
        target = {static_cast<uint32_t>(*unk_id_), cand, static_cast<int64_t>(start)};
      }
    }
    start += mblen;
  }
  size_t end = size;
  size_t unk_end = 0;  // end of the pending (fused) unk run, 0 when none
  while (end > 0) {
    const Best& node = best[end];
    auto start = static_cast<size_t>(node.starts_at);
    if (unk_id_ && node.id == *unk_id_) {
      if (unk_end == 0) unk_end = end;
    } else {
      if (unk_end) {
        results.emplace_back(s.substr(end, unk_end - end));
        unk_end = 0;
      }
      results.emplace_back(s.substr(start, end - start));
    }
    end = start;
  }
  if (unk_end) results.emplace_back(s.substr(0, unk_end));
  std::reverse(results.begin(), results.end());
  return results;
}

std::vector<Token> Unigram::tokenize(std::string_view piece) const {
  std::vector<Token> tokens;
  size_t offset = 0;
  for (std::string& str : encode(piece)) {
    const size_t len = str.size();
    auto it = token_to_id_.find(str);
    if (it != token_to_id_.end()) {
      tokens.push_back({it->second, std::move(str), offset, offset + len});
      offset += len;
      continue;
    }
    if (byte_fallback_) {
      std::vector<Token> bytes;
      for (unsigned char b : str) {
        std::string name = fmt::format("<0x{:02X}>", b);
        auto bt = token_to_id_.find(name);
        if (bt == token_to_id_.end()) break;
        bytes.push_back({bt->second, std::move(name), offset, offset + len});
      }
      if (bytes.size() == len) {
        for (Token& t : bytes) tokens.push_back(std::move(t));
        offset += len;
        continue;
      }
    }
    LMF_CHECK(unk_id_.has_value(), ValueError,
              "Unigram: piece '{}' is unknown and the model has no unk_id", str);
    tokens.push_back({static_cast<uint32_t>(*unk_id_), std::move(str), offset, offset + len});
    offset += len;
  }
  return tokens;
}

std::optional<uint32_t> Unigram::token_to_id(std::string_view token) const {
  if (auto it = token_to_id_.find(token); it != token_to_id_.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> Unigram::id_to_token(uint32_t id) const {
  if (id >= vocab_.size()) return std::nullopt;
  return vocab_[id].first;
}

}  // namespace lmf::tok
