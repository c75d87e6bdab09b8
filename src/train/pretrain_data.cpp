// Pretraining data: text readers, tokenization with word starts, BERT/ALBERT/RoBERTa instance
// creation (Google's create_pretraining_data.py algorithm) and HF-style MLM masking.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/train/hf_folder.h"
#include "lmforge/train/pretrain.h"

namespace lmf::train {

namespace {

// Byte offset of the first ill-formed UTF-8 sequence (overlong, surrogate, > U+10FFFF,
// truncated), or npos.
size_t invalid_utf8_at(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// Calls fn(line, line_number) for every line of `text` ('\n'-separated, "\r\n" accepted).
template <class F>
void for_each_line(std::string_view text, F&& fn) {
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // BOM
  size_t line_no = 1, pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(line, line_no);
    if (end == text.size()) break;
    pos = end + 1;
    ++line_no;
  }
}

void check_utf8(std::string_view line, const std::string& path, size_t line_no) {
  const size_t at = invalid_utf8_at(line);
  LMF_CHECK(at == std::string_view::npos, ValueError,
            "{}:{}: invalid UTF-8 at byte {} of the line (byte 0x{:02X}); convert the file to "
            "UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            path, line_no, at + 1, static_cast<unsigned>(static_cast<unsigned char>(line[at])));
}

void check_not_empty(const std::vector<TextDocument>& docs, const std::string& path) {
  LMF_CHECK(!docs.empty(), ValueError, "'{}' contains no text (every line is blank)", path);
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int64_t randint(Generator& rng, int64_t lo, int64_t hi) {  // inclusive, as Python's randint
  return lo + static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(hi - lo + 1));
}

template <class T>
void shuffle(std::vector<T>& v, Generator& rng) {
  for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i)
    std::swap(v[i], v[randint(rng, 0, i)]);
}

}  // namespace

// ---- reading ------------------------------------------------------------------------------------

std::vector<TextDocument> read_text_documents(const std::string& path) {
  const std::string text = read_file_bytes(path);
  std::vector<TextDocument> docs(1);
  for_each_line(text, [&](std::string_view line, size_t no) {
    check_utf8(line, path, no);
    const std::string_view t = trim(line);
    if (t.empty()) {
      if (!docs.back().empty()) docs.emplace_back();
    } else {
      docs.back().emplace_back(t);
    }
  });
  if (docs.back().empty()) docs.pop_back();
  check_not_empty(docs, path);
  return docs;
}

std::vector<TextDocument> read_jsonl_documents(const std::string& path, const std::string& field) {
  const std::string text = read_file_bytes(path);
  std::vector<TextDocument> docs;
  for_each_line(text, [&](std::string_view line, size_t no) {
    check_utf8(line, path, no);
    if (trim(line).empty()) return;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail<ValueError>("{}:{}: not valid JSON ({}); JSONL needs one JSON object per line", path, no,
                       e.what());
    }
    LMF_CHECK(j.is_object(), ValueError, "{}:{}: expected a JSON object with a \"{}\" field", path,
              no, field);
    auto it = j.find(field);
    LMF_CHECK(it != j.end(), ValueError,
              "{}:{}: no \"{}\" field (choose the text field with --text-field)", path, no, field);
    LMF_CHECK(it->is_string(), ValueError, "{}:{}: field \"{}\" must be a string, not {}", path, no,
              field, it->type_name());
    TextDocument doc;
    for_each_line(it->get_ref<const std::string&>(), [&](std::string_view s, size_t) {
      for (auto& sentence : split_sentences(s)) doc.push_back(std::move(sentence));
    });
    if (!doc.empty()) docs.push_back(std::move(doc));
  });
  check_not_empty(docs, path);
  return docs;
}

std::vector<std::string> split_sentences(std::string_view text) {
  static const char* kAbbrev[] = {"mr",  "mrs", "ms", "dr", "prof", "st",  "vs",  "etc", "e.g",
                                  "i.e", "jr",  "sr", "no", "fig",  "inc", "ltd", "co"};
  std::vector<std::string> out;
  size_t begin = 0;
  auto push = [&](size_t end) {
    const std::string_view t = trim(text.substr(begin, end - begin));
    if (!t.empty()) out.emplace_back(t);
    begin = end;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '.' && c != '!' && c != '?') continue;
    size_t end = i + 1;
    while (end < text.size() && std::string_view("\"')]").find(text[end]) != std::string_view::npos)
      ++end;
    if (end >= text.size() || (text[end] != ' ' && text[end] != '\t')) continue;
    size_t next = end;
    while (next < text.size() && (text[next] == ' ' || text[next] == '\t')) ++next;
    if (next >= text.size()) continue;
    const auto nc = static_cast<unsigned char>(text[next]);
    if ((nc >= 'a' && nc <= 'z') || (nc >= '0' && nc <= '9')) continue;
    if (c == '.') {  // an abbreviation or an initial is not a sentence end
      size_t w = i;
      while (w > begin && text[w - 1] != ' ' && text[w - 1] != '\t') --w;
      std::string word(text.substr(w, i - w));
      for (auto& ch : word) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      while (!word.empty() &&
             std::string_view("\"'([").find(word.front()) != std::string_view::npos)
        word.erase(word.begin());
      bool abbrev = word.size() == 1 && std::isalpha(static_cast<unsigned char>(word[0]));
      for (const char* a : kAbbrev) abbrev = abbrev || word == a;
      if (abbrev) continue;
    }
    push(end);
    i = end - 1;
  }
  push(text.size());
  return out;
}

std::vector<TextDocument> read_documents(const std::string& path, const std::string& field) {
  if (ends_with(path, ".jsonl") || ends_with(path, ".json"))
    return read_jsonl_documents(path, field);
  return read_text_documents(path);
}

// ---- tokens -------------------------------------------------------------------------------------

SpecialTokens SpecialTokens::from_tokenizer(const tok::Tokenizer& t) {
  auto find = [&](const char* what, std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (auto id = t.token_to_id(n)) return static_cast<int32_t>(*id);
    fail<ValueError>("the tokenizer has no {} token ({}); pretraining needs it", what,
                     fmt::join(names, " or "));
  };
  SpecialTokens sp;
  sp.cls = find("classification/start", {"[CLS]", "<s>"});
  sp.sep = find("separator", {"[SEP]", "</s>"});
  sp.mask = find("mask", {"[MASK]", "<mask>"});
  sp.pad = find("padding", {"[PAD]", "<pad>"});
  sp.vocab_size = static_cast<int64_t>(t.vocab_size(true));
  for (int32_t id : {sp.cls, sp.sep, sp.mask, sp.pad})
    sp.vocab_size = std::max<int64_t>(sp.vocab_size, id + 1);
  sp.special.assign(sp.vocab_size, 0);
  for (int64_t id = 0; id < sp.vocab_size; ++id)
    sp.special[id] = t.is_special_id(static_cast<uint32_t>(id)) ? 1 : 0;
  for (int32_t id : {sp.cls, sp.sep, sp.mask, sp.pad}) sp.special[id] = 1;
  return sp;
}

namespace {
// continues[id] = 1 when the piece continues the previous word (see word_starts()).
std::vector<uint8_t> continuation_table(const tok::Tokenizer& t) {
  const size_t n = t.vocab_size(true);
  std::vector<std::string> tokens(n);
  size_t hashes = 0, g = 0, sp = 0;
  for (size_t id = 0; id < n; ++id) {
    tokens[id] = t.id_to_token(static_cast<uint32_t>(id)).value_or("");
    const std::string& s = tokens[id];
    if (s.rfind("##", 0) == 0 && s.size() > 2) ++hashes;
    if (s.rfind("\xC4\xA0", 0) == 0) ++g;       // "Ġ"
    if (s.rfind("\xE2\x96\x81", 0) == 0) ++sp;  // "▁"
  }
  std::vector<uint8_t> cont(n, 0);
  for (size_t id = 0; id < n; ++id) {
    if (t.is_special_id(static_cast<uint32_t>(id)) || tokens[id].empty()) continue;
    const std::string& s = tokens[id];
    if (hashes >= g && hashes >= sp && hashes > 0)
      cont[id] = s.rfind("##", 0) == 0 && s.size() > 2;
    else if (g >= sp && g > 0)
      cont[id] = s.rfind("\xC4\xA0", 0) != 0;
    else if (sp > 0)
      cont[id] = s.rfind("\xE2\x96\x81", 0) != 0;
  }
  return cont;
}

std::vector<uint8_t> starts_from_table(const std::vector<uint8_t>& cont,
                                       std::span<const int32_t> ids) {
  std::vector<uint8_t> ws(ids.size(), 1);
  for (size_t i = 1; i < ids.size(); ++i) {
    const auto id = static_cast<size_t>(ids[i]);
    ws[i] = id < cont.size() && cont[id] ? 0 : 1;
  }
  return ws;
}
}  // namespace

std::vector<uint8_t> word_starts(const tok::Tokenizer& t, std::span<const int32_t> ids) {
  return starts_from_table(continuation_table(t), ids);
}

std::vector<TokenizedDocument> tokenize_documents(const tok::Tokenizer& t,
                                                  const std::vector<TextDocument>& docs) {
  LMF_CHECK(!t.truncation() && !t.padding(), ValueError,
            "tokenize_documents needs a tokenizer without truncation and padding (set them off: "
            "instance creation decides the lengths)");
  std::vector<std::string> flat;
  for (const auto& d : docs) flat.insert(flat.end(), d.begin(), d.end());
  const std::vector<tok::Encoding> enc = t.encode_batch(flat, false);
  const std::vector<uint8_t> cont = continuation_table(t);
  std::vector<TokenizedDocument> out;
  size_t k = 0;
  for (const auto& d : docs) {
    TokenizedDocument td;
    for (size_t i = 0; i < d.size(); ++i, ++k) {
      if (enc[k].ids.empty()) continue;
      TokenizedSentence s;
      s.ids.assign(enc[k].ids.begin(), enc[k].ids.end());
      s.word_start = starts_from_table(cont, s.ids);
      td.push_back(std::move(s));
    }
    if (!td.empty()) out.push_back(std::move(td));
  }
  return out;
}

// ---- instances ----------------------------------------------------------------------------------

Recipe parse_recipe(const std::string& name) {
  if (name == "bert") return Recipe::bert;
  if (name == "albert") return Recipe::albert;
  if (name == "roberta") return Recipe::roberta;
  fail<ValueError>(
      "unknown pretraining recipe '{}'; use bert (MLM+NSP), albert (MLM+SOP) or "
      "roberta (MLM only, full sentences)",
      name);
}

namespace {

struct Segment {
  std::vector<int32_t> ids;
  std::vector<uint8_t> ws;
  void append(const TokenizedSentence& s, size_t from = 0, size_t to = SIZE_MAX) {
    to = std::min(to, s.ids.size());
    ids.insert(ids.end(), s.ids.begin() + from, s.ids.begin() + to);
    ws.insert(ws.end(), s.word_start.begin() + from, s.word_start.begin() + to);
  }
  void push(int32_t id, uint8_t w) {
    ids.push_back(id);
    ws.push_back(w);
  }
  size_t size() const { return ids.size(); }
  void pop_front() {
    ids.erase(ids.begin());
    ws.erase(ws.begin());
  }
  void pop_back() {
    ids.pop_back();
    ws.pop_back();
  }
};

// Google's truncate_seq_pair: trim the longer segment, from the front or the back at random.
void truncate_seq_pair(Segment& a, Segment& b, size_t max_tokens, Generator& rng) {
  while (a.size() + b.size() > max_tokens) {
    Segment& t = a.size() > b.size() ? a : b;
    if (rng.uniform() < 0.5)
      t.pop_front();
    else
      t.pop_back();
  }
}

PretrainInstance make_pair_instance(const Segment& a, const Segment& b, const SpecialTokens& sp,
                                    int8_t label) {
  PretrainInstance inst;
  const size_t n = a.size() + b.size() + 3;
  inst.input_ids.reserve(n);
  inst.input_ids.push_back(sp.cls);
  inst.input_ids.insert(inst.input_ids.end(), a.ids.begin(), a.ids.end());
  inst.input_ids.push_back(sp.sep);
  inst.input_ids.insert(inst.input_ids.end(), b.ids.begin(), b.ids.end());
  inst.input_ids.push_back(sp.sep);
  inst.token_type_ids.assign(n, 0);
  std::fill(inst.token_type_ids.begin() + static_cast<int64_t>(a.size() + 2),
            inst.token_type_ids.end(), 1);
  inst.word_start.reserve(n);
  inst.word_start.push_back(0);
  inst.word_start.insert(inst.word_start.end(), a.ws.begin(), a.ws.end());
  inst.word_start.push_back(0);
  inst.word_start.insert(inst.word_start.end(), b.ws.begin(), b.ws.end());
  inst.word_start.push_back(0);
  inst.sentence_label = label;
  return inst;
}

// Google's create_instances_from_document (BERT NSP), and its SOP variant for ALBERT.
void instances_from_document(const std::vector<TokenizedDocument>& docs, size_t doc_index,
                             const SpecialTokens& sp, const InstanceOptions& o, Generator& rng,
                             std::vector<PretrainInstance>& out) {
  const TokenizedDocument& doc = docs[doc_index];
  const int64_t max_num_tokens = o.max_seq_length - 3;
  int64_t target = max_num_tokens;
  if (rng.uniform() < o.short_seq_prob) target = randint(rng, 2, max_num_tokens);
  std::vector<const TokenizedSentence*> chunk;
  int64_t chunk_len = 0;
  int64_t i = 0;
  const auto n = static_cast<int64_t>(doc.size());
  while (i < n) {
    chunk.push_back(&doc[i]);
    chunk_len += static_cast<int64_t>(doc[i].ids.size());
    if (i == n - 1 || chunk_len >= target) {
      int64_t a_end = 1;
      if (chunk.size() >= 2) a_end = randint(rng, 1, static_cast<int64_t>(chunk.size()) - 1);
      Segment a, b;
      int8_t label = 0;
      if (o.recipe == Recipe::bert) {
        for (int64_t j = 0; j < a_end; ++j) a.append(*chunk[j]);
        if (chunk.size() == 1 || rng.uniform() < 0.5) {
          label = 1;
          const int64_t target_b = target - static_cast<int64_t>(a.size());
          size_t rd = doc_index;
          for (int tries = 0; tries < 10; ++tries) {
            rd = static_cast<size_t>(randint(rng, 0, static_cast<int64_t>(docs.size()) - 1));
            if (rd != doc_index) break;
          }
          const TokenizedDocument& other = docs[rd];
          const int64_t start = randint(rng, 0, static_cast<int64_t>(other.size()) - 1);
          for (size_t j = start; j < other.size(); ++j) {
            b.append(other[j]);
            if (static_cast<int64_t>(b.size()) >= target_b) break;
          }
          i -= static_cast<int64_t>(chunk.size()) - a_end;  // unused segments go back
        } else {
          for (size_t j = a_end; j < chunk.size(); ++j) b.append(*chunk[j]);
        }
      } else {  // ALBERT SOP: two consecutive pieces, swapped half of the time
        if (chunk.size() >= 2) {
          for (int64_t j = 0; j < a_end; ++j) a.append(*chunk[j]);
          for (size_t j = a_end; j < chunk.size(); ++j) b.append(*chunk[j]);
        } else if (chunk[0]->ids.size() >= 2) {
          const auto cut =
              static_cast<size_t>(randint(rng, 1, static_cast<int64_t>(chunk[0]->ids.size()) - 1));
          a.append(*chunk[0], 0, cut);
          b.append(*chunk[0], cut);
        }
        if (rng.uniform() < 0.5) {
          std::swap(a, b);
          label = 1;
        }
      }
      if (a.size() > 0 && b.size() > 0) {
        truncate_seq_pair(a, b, static_cast<size_t>(max_num_tokens), rng);
        out.push_back(make_pair_instance(a, b, sp, label));
      }
      chunk.clear();
      chunk_len = 0;
    }
    ++i;
  }
}

// RoBERTa FULL-SENTENCES: contiguous sentences packed up to max_seq_length - 2, crossing
// document boundaries with an extra separator, sentences longer than a block split.
void full_sentence_instances(const std::vector<TokenizedDocument>& docs, const SpecialTokens& sp,
                             const InstanceOptions& o, std::vector<PretrainInstance>& out) {
  const auto max_tokens = static_cast<size_t>(o.max_seq_length - 2);
  Segment block;
  auto emit = [&] {
    if (block.size() == 0) return;
    PretrainInstance inst;
    inst.input_ids.push_back(sp.cls);
    inst.input_ids.insert(inst.input_ids.end(), block.ids.begin(), block.ids.end());
    inst.input_ids.push_back(sp.sep);
    inst.word_start.push_back(0);
    inst.word_start.insert(inst.word_start.end(), block.ws.begin(), block.ws.end());
    inst.word_start.push_back(0);
    inst.token_type_ids.assign(inst.input_ids.size(), 0);
    out.push_back(std::move(inst));
    block = Segment();
  };
  for (size_t d = 0; d < docs.size(); ++d) {
    bool boundary = block.size() > 0;  // a separator goes before this document's first token
    for (const TokenizedSentence& s : docs[d]) {
      size_t pos = 0;
      while (pos < s.ids.size()) {
        const size_t rest = s.ids.size() - pos, sep = boundary && block.size() > 0 ? 1 : 0;
        if (block.size() + sep + rest <= max_tokens) {
          if (sep) block.push(sp.sep, 0);
          block.append(s, pos);
          break;
        }
        if (block.size() == 0) {
          block.append(s, pos, pos + max_tokens);
          pos += max_tokens;
        }
        emit();
      }
      boundary = false;
    }
  }
  emit();
}

}  // namespace

std::vector<PretrainInstance> create_instances(const std::vector<TokenizedDocument>& docs,
                                               const SpecialTokens& sp, const InstanceOptions& o,
                                               Generator& rng) {
  LMF_CHECK(o.max_seq_length >= 5, ValueError,
            "max_seq_length must be at least 5 ([CLS] A [SEP] B [SEP]), got {}", o.max_seq_length);
  LMF_CHECK(o.dup_factor >= 1, ValueError, "dup_factor must be at least 1, got {}", o.dup_factor);
  LMF_CHECK(o.short_seq_prob >= 0 && o.short_seq_prob <= 1, ValueError,
            "short_seq_prob must be in [0, 1], got {}", o.short_seq_prob);
  LMF_CHECK(!docs.empty(), ValueError, "no documents to build pretraining instances from");
  for (const auto& d : docs)
    LMF_CHECK(!d.empty(), ValueError, "create_instances: empty document (drop it first)");
  std::vector<PretrainInstance> out;
  for (int64_t copy = 0; copy < o.dup_factor; ++copy) {
    if (o.recipe == Recipe::roberta) {
      full_sentence_instances(docs, sp, o, out);
    } else {
      for (size_t d = 0; d < docs.size(); ++d) instances_from_document(docs, d, sp, o, rng, out);
    }
  }
  shuffle(out, rng);
  return out;
}

// ---- masking ------------------------------------------------------------------------------------

void mask_tokens(std::vector<int32_t>& ids, std::vector<int32_t>& labels,
                 std::span<const uint8_t> word_start, const SpecialTokens& sp,
                 const MaskingOptions& o, Generator& rng) {
  LMF_CHECK(o.mlm_probability >= 0 && o.mlm_probability <= 1, ValueError,
            "mlm_probability must be in [0, 1], got {}", o.mlm_probability);
  LMF_CHECK(o.mask_replace_prob >= 0 && o.random_replace_prob >= 0 &&
                o.mask_replace_prob + o.random_replace_prob <= 1 + 1e-12,
            ValueError, "mask_replace_prob + random_replace_prob must not exceed 1 ({} + {})",
            o.mask_replace_prob, o.random_replace_prob);
  LMF_CHECK(sp.mask >= 0 && sp.vocab_size > 0, ValueError,
            "mask_tokens: the special tokens have no mask id or vocabulary size");
  const size_t n = ids.size();
  labels.assign(n, -100);
  std::vector<uint8_t> chosen(n, 0);
  if (o.whole_word_mask) {
    LMF_CHECK(word_start.size() == n, ShapeError,
              "whole-word masking needs one word-start flag per token ({} for {} tokens)",
              word_start.size(), n);
    std::vector<std::vector<size_t>> words;
    for (size_t i = 0; i < n; ++i) {
      if (sp.is_special(ids[i])) continue;
      if (words.empty() || word_start[i] || i == 0 || sp.is_special(ids[i - 1]))
        words.emplace_back();
      words.back().push_back(i);
    }
    shuffle(words, rng);
    const auto target = static_cast<size_t>(std::min<double>(
        512.0, std::max(1.0, std::round(static_cast<double>(n) * o.mlm_probability))));
    size_t covered = 0;
    for (const auto& w : words) {
      if (covered >= target) break;
      if (covered + w.size() > target) continue;
      for (size_t i : w) chosen[i] = 1;
      covered += w.size();
    }
  } else {
    for (size_t i = 0; i < n; ++i)
      chosen[i] = !sp.is_special(ids[i]) && rng.uniform() < o.mlm_probability;
  }
  const double remaining = 1.0 - o.mask_replace_prob;
  const double random_scaled = remaining > 0 ? o.random_replace_prob / remaining : 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (!chosen[i]) continue;
    labels[i] = ids[i];
    if (rng.uniform() < o.mask_replace_prob) {
      ids[i] = sp.mask;
    } else if (random_scaled > 0 && rng.uniform() < random_scaled) {
      ids[i] = static_cast<int32_t>(randint(rng, 0, sp.vocab_size - 1));
    }
  }
}

}  // namespace lmf::train
