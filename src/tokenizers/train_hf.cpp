// HF tokenizers' trainers reimplemented: corpus reading and word counting through our own
// normalizer / pre-tokenizer, BpeTrainer (also under WordPieceTrainer), tokenizer.json writing.
// The Unigram trainer is in train_unigram.cpp.
#include "lmforge/tokenizers/train_hf.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/byte_level.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/unicode.h"
#include "tokenizers/train_hf_internal.h"

namespace lmf::tok {

using ojson = nlohmann::ordered_json;

namespace {

ojson normalizer_json(const HfTrainOptions& o) {
  if (o.type != "wordpiece") return nullptr;
  return ojson{{"type", "BertNormalizer"},
               {"clean_text", true},
               {"handle_chinese_chars", true},
               {"strip_accents", nullptr},
               {"lowercase", o.lowercase}};
}

ojson byte_level_json(bool add_prefix_space, bool trim_offsets) {
  return ojson{{"type", "ByteLevel"},
               {"add_prefix_space", add_prefix_space},
               {"trim_offsets", trim_offsets},
               {"use_regex", true}};
}

ojson metaspace_json() {
  return ojson{{"type", "Metaspace"},
               {"replacement", "\u2581"},
               {"prepend_scheme", "always"},
               {"split", true}};
}

ojson pre_tokenizer_json(const HfTrainOptions& o) {
  if (o.type == "bpe") return ojson{{"type", "Whitespace"}};
  if (o.type == "byte-bpe") return byte_level_json(o.add_prefix_space, true);
  if (o.type == "wordpiece") return ojson{{"type", "BertPreTokenizer"}};
  return metaspace_json();
}

// Lines of the files as HF's train_from_files reads them (endings kept), each normalized and
// pre-tokenized; counts the words.
void count_words(const std::vector<std::string>& files, const HfTrainOptions& o,
                 std::unordered_map<std::string, uint64_t>& counts, size_t& lines) {
  ojson skel{{"version", "1.0"},
             {"normalizer", normalizer_json(o)},
             {"pre_tokenizer", pre_tokenizer_json(o)},
             {"model", {{"type", "BPE"}, {"vocab", ojson::object()}, {"merges", ojson::array()}}}};
  const Tokenizer pipe = Tokenizer::from_json(skel.dump());
  const Normalizer* norm = pipe.normalizer();
  const PreTokenizer* pre = pipe.pre_tokenizer();
  Progress prog{&o.progress};
  size_t bytes = 0;
  for (const auto& file : files) {
    std::ifstream f(file, std::ios::binary);
    LMF_CHECK(f.good(), IoError, "tokenizer train: cannot read '{}'", file);
    std::string line;
    size_t lineno = 0;
    while (std::getline(f, line)) {
      ++lineno;
      if (!f.eof()) line.push_back('\n');
      LMF_CHECK(is_valid_utf8(line), ValueError,
                "tokenizer train: {}:{}: invalid UTF-8 (the HF trainers read UTF-8 text; convert "
                "the file, e.g. iconv -f latin1 -t utf-8)",
                file, lineno);
      bytes += line.size();
      NormalizedString ns(line);
      if (norm) norm->normalize(ns);
      PreTokenizedString pts(std::move(ns));
      if (pre) pre->pre_tokenize(pts);
      for (const auto& s : pts.splits())
        if (!s.normalized.empty()) ++counts[s.normalized.get()];
      ++lines;
      prog.tick([&] {
        return fmt::format("read {} lines ({:.1f} MB), {} distinct words", lines, bytes / 1e6,
                           counts.size());
      });
    }
    LMF_CHECK(!f.bad(), IoError, "tokenizer train: error reading '{}'", file);
  }
  prog.tick(
      [&] {
        return fmt::format("read {} lines ({:.1f} MB) from {} file(s), {} distinct words", lines,
                           bytes / 1e6, files.size(), counts.size());
      },
      true);
}

// --- BpeTrainer -------------------------------------------------------------------------------

using Pair = uint64_t;  // (a << 32) | b: numeric order is HF's lexicographic (a, b) order
inline Pair make_pair_key(uint32_t a, uint32_t b) {
  return (uint64_t{a} << 32) | b;
}

struct QueueEntry {
  uint64_t count;
  Pair pair;
  std::vector<uint32_t> pos;  // word indices (distinct)
};
// Max-heap order of HF's Merge: higher count first, then the smaller pair.
struct QueueLess {
  bool operator()(const QueueEntry& x, const QueueEntry& y) const {
    if (x.count != y.count) return x.count < y.count;
    return x.pair > y.pair;
  }
};

struct BpeWord {
  std::vector<uint32_t> ids;
  std::vector<uint32_t> lens;  // chars per symbol
};

// HF Word::merge: replaces every (c1, c2) left to right; the pair-count changes it causes.
void merge_word(BpeWord& w, uint32_t c1, uint32_t c2, uint32_t repl, size_t max_len,
                std::vector<std::pair<Pair, int>>& changes) {
  auto& s = w.ids;
  auto& l = w.lens;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != c1 || i + 1 >= s.size() || s[i + 1] != c2) continue;
    const uint32_t second = s[i + 1];
    const size_t new_len = size_t{l[i]} + l[i + 1];
    if (i > 0) {
      changes.emplace_back(make_pair_key(s[i - 1], c1), -1);
      if (l[i - 1] + new_len < max_len) changes.emplace_back(make_pair_key(s[i - 1], repl), 1);
    }
    s[i] = repl;
    l[i] = static_cast<uint32_t>(new_len);
    s.erase(s.begin() + static_cast<ptrdiff_t>(i) + 1);
    l.erase(l.begin() + static_cast<ptrdiff_t>(i) + 1);
    if (i + 1 < s.size()) {
      changes.emplace_back(make_pair_key(second, s[i + 1]), -1);
      if (l[i + 1] + new_len < max_len) changes.emplace_back(make_pair_key(repl, s[i + 1]), 1);
    }
  }
}

struct BpeConfig {
  size_t vocab_size;
  uint64_t min_frequency;
  std::vector<std::string> special_tokens;
  std::optional<size_t> limit_alphabet;
  std::vector<char32_t> initial_alphabet;
  std::optional<std::string> prefix, suffix;
  size_t max_token_length;
};

struct BpeTrainOutput {
  std::vector<std::string> vocab;  // by id
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<Pair> merge_pairs;
  size_t alphabet = 0, initial_vocab = 0;
};

BpeTrainOutput train_bpe_words(const std::vector<std::pair<std::string, uint64_t>>& wc,
                               const BpeConfig& cfg, Progress& prog) {
  BpeTrainOutput out;
  auto& id2w = out.vocab;
  std::unordered_map<std::string, uint32_t> w2id;
  auto add = [&](const std::string& s) {
    if (w2id.count(s)) return;
    w2id.emplace(s, static_cast<uint32_t>(id2w.size()));
    id2w.push_back(s);
  };
  // 1. special tokens
  for (const auto& t : cfg.special_tokens) add(t);
  // 2. alphabet: chars weighted by word counts, the initial alphabet always (count = max)
  std::unordered_map<char32_t, uint64_t> alphabet;
  for (const auto& [w, n] : wc)
    for (char32_t c : chars_of(w)) alphabet[c] += n;
  for (char32_t c : cfg.initial_alphabet) alphabet[c] = UINT64_MAX;
  std::vector<std::pair<char32_t, uint64_t>> kept(alphabet.begin(), alphabet.end());
  if (cfg.limit_alphabet && kept.size() > *cfg.limit_alphabet) {
    // HF drops the rarest (its order among equal counts is arbitrary; here: lower code point
    // first).
    std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second < b.second : a.first < b.first;
    });
    kept.erase(kept.begin(),
               kept.begin() + static_cast<ptrdiff_t>(kept.size() - *cfg.limit_alphabet));
  }
  std::sort(kept.begin(), kept.end());
  for (const auto& [c, n] : kept) add(utf8(c));
  out.alphabet = kept.size();
  // 3. words as symbol ids (prefix on non-first chars, suffix on the last)
  std::vector<BpeWord> words(wc.size());
  std::vector<uint64_t> counts(wc.size());
  for (size_t wi = 0; wi < wc.size(); ++wi) {
    counts[wi] = wc[wi].second;
    const auto cs = chars_of(wc[wi].first);
    for (size_t k = 0; k < cs.size(); ++k) {
      std::string s = utf8(cs[k]);
      if (!w2id.count(s)) continue;  // outside the (limited) alphabet
      if (k > 0 && cfg.prefix) s.insert(0, *cfg.prefix);
      if (k + 1 == cs.size() && cfg.suffix) s += *cfg.suffix;
      add(s);
      words[wi].ids.push_back(w2id[s]);
      words[wi].lens.push_back(1);
    }
  }
  out.initial_vocab = id2w.size();
  if (id2w.size() > cfg.vocab_size) return out;  // the caller reports it
  // 4. pair counts and where they occur
  std::unordered_map<Pair, int64_t> pair_counts;
  std::unordered_map<Pair, std::vector<uint32_t>> where;
  auto note = [&](Pair p, uint32_t wi) {
    auto& v = where[p];
    if (v.empty() || v.back() != wi) v.push_back(wi);
  };
  for (uint32_t wi = 0; wi < words.size(); ++wi) {
    const auto& s = words[wi].ids;
    for (size_t k = 0; k + 1 < s.size(); ++k) {
      const Pair p = make_pair_key(s[k], s[k + 1]);
      pair_counts[p] += static_cast<int64_t>(counts[wi]);
      note(p, wi);
    }
  }
  std::vector<QueueEntry> heap;
  heap.reserve(where.size());
  auto drain = [&] {
    for (auto& [p, pos] : where) {
      const int64_t c = pair_counts[p];
      if (c > 0) {
        heap.push_back({static_cast<uint64_t>(c), p, std::move(pos)});
        std::push_heap(heap.begin(), heap.end(), QueueLess{});
      }
    }
    where.clear();
  };
  drain();
  // 5. merges
  std::vector<std::pair<std::string, std::string>>& merges = out.merges;
  std::vector<std::pair<Pair, int>> changes;
  while (id2w.size() < cfg.vocab_size && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), QueueLess{});
    QueueEntry top = std::move(heap.back());
    heap.pop_back();
    const int64_t now = pair_counts[top.pair];
    if (top.count != static_cast<uint64_t>(now)) {
      top.count = static_cast<uint64_t>(now);
      heap.push_back(std::move(top));
      std::push_heap(heap.begin(), heap.end(), QueueLess{});
      continue;
    }
    if (top.count < 1 || cfg.min_frequency > top.count) break;
    const uint32_t a = static_cast<uint32_t>(top.pair >> 32),
                   b = static_cast<uint32_t>(top.pair & 0xffffffffu);
    std::string part_b = id2w[b];
    if (cfg.prefix && part_b.starts_with(*cfg.prefix)) part_b.erase(0, cfg.prefix->size());
    const std::string new_token = id2w[a] + part_b;
    add(new_token);
    const uint32_t new_id = w2id[new_token];
    merges.emplace_back(id2w[a], id2w[b]);
    out.merge_pairs.push_back(top.pair);
    std::sort(top.pos.begin(), top.pos.end());
    for (uint32_t wi : top.pos) {
      changes.clear();
      merge_word(words[wi], a, b, new_id, cfg.max_token_length, changes);
      for (const auto& [p, ch] : changes) {
        pair_counts[p] += ch * static_cast<int64_t>(counts[wi]);
        if (ch > 0) note(p, wi);
      }
    }
    drain();
    prog.tick([&] {
      return fmt::format("merges: {} (vocabulary {} of {})", merges.size(), id2w.size(),
                         cfg.vocab_size);
    });
  }
  return out;
}

// The pieces of one kind's defaults.
std::vector<std::string> default_specials(const std::string& type) {
  if (type == "bpe") return {"[UNK]"};
  if (type == "wordpiece") return {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  if (type == "unigram") return {"<unk>"};
  return {};
}

ojson added_tokens_json(const std::vector<std::string>& specials,
                        const std::function<std::optional<uint32_t>(const std::string&)>& id_of) {
  ojson arr = ojson::array();
  std::unordered_set<std::string> seen;
  for (const auto& s : specials) {
    if (!seen.insert(s).second) continue;
    auto id = id_of(s);
    if (!id) continue;
    arr.push_back({{"id", *id},
                   {"content", s},
                   {"single_word", false},
                   {"lstrip", false},
                   {"rstrip", false},
                   {"normalized", false},
                   {"special", true}});
  }
  return arr;
}

ojson template_json(uint32_t cls, uint32_t sep) {
  auto special = [](const char* id, int type) {
    return ojson{{"SpecialToken", {{"id", id}, {"type_id", type}}}};
  };
  auto seq = [](const char* id, int type) {
    return ojson{{"Sequence", {{"id", id}, {"type_id", type}}}};
  };
  ojson j{{"type", "TemplateProcessing"}};
  j["single"] = {special("[CLS]", 0), seq("A", 0), special("[SEP]", 0)};
  j["pair"] = {special("[CLS]", 0), seq("A", 0), special("[SEP]", 0), seq("B", 1),
               special("[SEP]", 1)};
  j["special_tokens"] = {{"[CLS]", {{"id", "[CLS]"}, {"ids", {cls}}, {"tokens", {"[CLS]"}}}},
                         {"[SEP]", {{"id", "[SEP]"}, {"ids", {sep}}, {"tokens", {"[SEP]"}}}}};
  return j;
}

}  // namespace

HfTrainResult train_hf_tokenizer(const std::vector<std::string>& files, const HfTrainOptions& o) {
  const std::string& type = o.type;
  LMF_CHECK(type == "bpe" || type == "byte-bpe" || type == "wordpiece" || type == "unigram",
            ValueError, "tokenizer train: unknown type '{}' (bpe, byte-bpe, wordpiece, unigram)",
            type);
  LMF_CHECK(!files.empty(), ValueError, "tokenizer train: no training files given");
  LMF_CHECK(o.vocab_size > 0, ValueError, "tokenizer train: --vocab-size must be positive");
  const bool bpe_kind = type != "unigram";
  LMF_CHECK(bpe_kind || (!o.continuing_subword_prefix && !o.end_of_word_suffix &&
                         !o.limit_alphabet && !o.max_token_length && o.min_frequency == 0),
            ValueError,
            "tokenizer train: --min-frequency, --limit-alphabet, --continuing-subword-prefix, "
            "--end-of-word-suffix and --max-token-length are BPE/WordPiece options, not unigram's");
  LMF_CHECK(type != "wordpiece" || !o.end_of_word_suffix, ValueError,
            "tokenizer train: wordpiece has no end-of-word suffix (WordPiece marks continuations "
            "with --continuing-subword-prefix)");
  const std::vector<std::string> specials =
      o.special_tokens ? *o.special_tokens : default_specials(type);
  for (const auto& s : specials)
    LMF_CHECK(!s.empty() && is_valid_utf8(s), ValueError,
              "tokenizer train: special tokens must be non-empty UTF-8 text");
  std::vector<char32_t> initial;
  for (const auto& s : o.initial_alphabet) {
    LMF_CHECK(!s.empty() && is_valid_utf8(s), ValueError,
              "tokenizer train: --initial-alphabet entries must be non-empty UTF-8 text");
    size_t i = 0;
    initial.push_back(next_char(s, i));  // HF keeps the first char of each string
  }
  if (type == "byte-bpe")
    for (int b = 0; b < 256; ++b) initial.push_back(byte_level_cp(static_cast<uint8_t>(b)));

  HfTrainResult res;
  std::unordered_map<std::string, uint64_t> counts;
  count_words(files, o, counts, res.lines);
  LMF_CHECK(!counts.empty(), ValueError,
            "tokenizer train: the corpus has no words ({} lines read from {}): give non-empty "
            "text files",
            res.lines, fmt::join(files, ", "));
  res.words = counts.size();
  // HF iterates its hash map (ahash, seeded at random per process), an arbitrary order that
  // decides the ids of the prefixed/suffixed chars, and so ties between merges, when there are
  // such (HF's runs then differ). We use one such order, fixed: words by a 64-bit FNV-1a hash.
  std::vector<std::pair<std::string, uint64_t>> wc(counts.begin(), counts.end());
  counts.clear();
  auto fnv = [](const std::string& w) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char ch : w) h = (h ^ ch) * 1099511628211ull;
    return h;
  };
  std::vector<uint64_t> keys(wc.size());
  std::vector<size_t> order(wc.size());
  for (size_t i = 0; i < wc.size(); ++i) {
    keys[i] = fnv(wc[i].first);
    order[i] = i;
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return keys[a] != keys[b] ? keys[a] < keys[b] : wc[a].first < wc[b].first;
  });
  {
    std::vector<std::pair<std::string, uint64_t>> sorted;
    sorted.reserve(wc.size());
    for (size_t i : order) sorted.push_back(std::move(wc[i]));
    wc = std::move(sorted);
  }
  Progress prog{&o.progress};

  ojson model;
  std::function<std::optional<uint32_t>(const std::string&)> id_of;
  std::unordered_map<std::string, uint32_t> vocab_ids;
  if (bpe_kind) {
    BpeConfig cfg;
    cfg.vocab_size = o.vocab_size;
    cfg.min_frequency = o.min_frequency;
    cfg.special_tokens = specials;
    cfg.limit_alphabet = o.limit_alphabet;
    cfg.initial_alphabet = initial;
    cfg.prefix = type == "wordpiece"
                     ? std::optional<std::string>(o.continuing_subword_prefix.value_or("##"))
                     : o.continuing_subword_prefix;
    cfg.suffix = o.end_of_word_suffix;
    cfg.max_token_length = o.max_token_length.value_or(SIZE_MAX);
    auto bo = train_bpe_words(wc, cfg, prog);
    LMF_CHECK(bo.initial_vocab <= o.vocab_size, ValueError,
              "tokenizer train: --vocab-size {} is smaller than the special tokens and the "
              "alphabet ({} special tokens + {} chars{} = {}); raise --vocab-size{}",
              o.vocab_size, specials.size(), bo.alphabet,
              cfg.prefix || cfg.suffix ? " + their continuation/end forms" : "", bo.initial_vocab,
              type == "byte-bpe" ? "" : " or keep fewer chars with --limit-alphabet");
    for (uint32_t i = 0; i < bo.vocab.size(); ++i) vocab_ids.emplace(bo.vocab[i], i);
    ojson vocab = ojson::object();
    for (uint32_t i = 0; i < bo.vocab.size(); ++i) vocab[bo.vocab[i]] = i;
    res.vocab_size = bo.vocab.size();
    if (type == "wordpiece") {
      model = {{"type", "WordPiece"},
               {"unk_token", o.unk_token.value_or("[UNK]")},
               {"continuing_subword_prefix", *cfg.prefix},
               {"max_input_chars_per_word", 100},
               {"vocab", std::move(vocab)}};
    } else {
      // HF keeps one rank per pair (a pair merged twice keeps its last rank).
      std::unordered_map<Pair, size_t> last;
      for (size_t i = 0; i < bo.merge_pairs.size(); ++i) last[bo.merge_pairs[i]] = i;
      ojson merges = ojson::array();
      for (size_t i = 0; i < bo.merges.size(); ++i)
        if (last[bo.merge_pairs[i]] == i)
          merges.push_back({bo.merges[i].first, bo.merges[i].second});
      res.merges = merges.size();
      ojson unk = nullptr;
      const std::string u = o.unk_token.value_or(type == "bpe" ? "[UNK]" : "");
      if (!u.empty() && (vocab_ids.count(u) || o.unk_token)) unk = u;
      model = {{"type", "BPE"},
               {"dropout", nullptr},
               {"unk_token", unk},
               {"continuing_subword_prefix", cfg.prefix ? ojson(*cfg.prefix) : ojson(nullptr)},
               {"end_of_word_suffix", cfg.suffix ? ojson(*cfg.suffix) : ojson(nullptr)},
               {"fuse_unk", false},
               {"byte_fallback", false},
               {"ignore_merges", false},
               {"vocab", std::move(vocab)},
               {"merges", std::move(merges)}};
    }
  } else {
    UnigramTrainConfig cfg;
    cfg.vocab_size = o.vocab_size;
    cfg.special_tokens = specials;
    cfg.unk_token = o.unk_token.value_or("<unk>");
    cfg.initial_alphabet = initial;
    cfg.shrinking_factor = o.shrinking_factor;
    cfg.n_sub_iterations = o.n_sub_iterations;
    cfg.max_piece_length = o.max_piece_length;
    cfg.seed_size = o.seed_size;
    cfg.progress = &o.progress;
    auto uo = train_unigram_words(wc, cfg);
    ojson vocab = ojson::array();
    for (uint32_t i = 0; i < uo.pieces.size(); ++i) {
      vocab_ids.emplace(uo.pieces[i].first, i);
      vocab.push_back({uo.pieces[i].first, uo.pieces[i].second});
    }
    res.vocab_size = uo.pieces.size();
    model = {{"type", "Unigram"},
             {"unk_id", uo.unk_id ? ojson(*uo.unk_id) : ojson(nullptr)},
             {"vocab", std::move(vocab)},
             {"byte_fallback", false}};
  }
  id_of = [&](const std::string& s) -> std::optional<uint32_t> {
    auto it = vocab_ids.find(s);
    if (it == vocab_ids.end()) return std::nullopt;
    return it->second;
  };

  ojson post = nullptr, decoder = nullptr;
  if (type == "byte-bpe") {
    post = byte_level_json(true, false);
    decoder = byte_level_json(true, true);
  } else if (type == "wordpiece") {
    auto cls = id_of("[CLS]"), sep = id_of("[SEP]");
    if (cls && sep) post = template_json(*cls, *sep);
    decoder = {{"type", "WordPiece"},
               {"prefix", o.continuing_subword_prefix.value_or("##")},
               {"cleanup", true}};
  } else if (type == "unigram") {
    decoder = metaspace_json();
  }
  ojson j{{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added_tokens_json(specials, id_of)},
          {"normalizer", normalizer_json(o)},
          {"pre_tokenizer", pre_tokenizer_json(o)},
          {"post_processor", std::move(post)},
          {"decoder", std::move(decoder)},
          {"model", std::move(model)}};
  res.tokenizer_json = j.dump(2) + "\n";
  return res;
}

}  // namespace lmf::tok
