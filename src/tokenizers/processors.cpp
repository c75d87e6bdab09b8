// Post-processors: TemplateProcessing, BertProcessing, RobertaProcessing, Sequence; plus the
// default process() shared by all (HF PostProcessor::process).
#include "lmforge/core/error.h"
#include "lmforge/tokenizers/unicode.h"
#include "tokenizers/factory.h"

namespace lmf::tok {

Encoding PostProcessor::process(Encoding first, std::optional<Encoding> pair,
                                bool add_special_tokens) const {
  std::vector<Encoding> encs;
  encs.push_back(std::move(first));
  if (pair) encs.push_back(std::move(*pair));
  for (size_t i = 0; i < encs.size(); ++i) {
    encs[i].set_sequence_id(i);
    for (auto& o : encs[i].overflowing) o.set_sequence_id(i);
    encs[i].type_ids.assign(encs[i].size(), static_cast<uint32_t>(i));
  }
  return Encoding::merge(process_encodings(std::move(encs), add_special_tokens), false);
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  std::string out;
  for (const auto& t : decode_chain(std::move(tokens))) out += t;
  return out;
}

void trim_byte_level_offsets(Encoding& e, bool add_prefix_space) {
  auto spacey = [](char32_t c) { return c == 0x120 || is_whitespace(c); };
  for (size_t i = 0; i < e.tokens.size(); ++i) {
    const std::string& t = e.tokens[i];
    thread_local std::vector<char32_t> chars;
    chars.clear();
    for (size_t k = 0; k < t.size();) chars.push_back(next_char(t, k));
    size_t lead = 0, trail = 0;
    while (lead < chars.size() && spacey(chars[lead])) ++lead;
    while (trail < chars.size() && spacey(chars[chars.size() - 1 - trail])) ++trail;
    auto& off = e.offsets[i];
    if (lead > 0) {
      const bool is_first = i == 0 || off.first == 0;
      if (is_first && add_prefix_space && lead == 1) lead = 0;
      off.first = std::min(off.first + lead, off.second);
    }
    if (trail > 0 && off.second >= trail) off.second = std::max(off.second - trail, off.first);
  }
}

namespace {

struct Special {
  std::vector<uint32_t> ids;
  std::vector<std::string> tokens;
};

Encoding special_encoding(const Special& s, uint32_t type_id) {
  Encoding e;
  for (size_t k = 0; k < s.ids.size(); ++k)
    e.push_back(s.ids[k], s.tokens[k], {0, 0}, {}, type_id, 1);
  return e;
}

class TemplateProcessing final : public PostProcessor {
 public:
  struct Piece {
    bool special;
    std::string id;  // special token name, or "A" / "B"
    uint32_t type_id;
  };
  TemplateProcessing(std::vector<Piece> single, std::vector<Piece> pair,
                     std::unordered_map<std::string, Special> specials)
      : single_(std::move(single)), pair_(std::move(pair)), specials_(std::move(specials)) {
    for (auto* t : {&single_, &pair_})
      for (const auto& p : *t)
        if (p.special) {
          auto it = specials_.find(p.id);
          LMF_CHECK(it != specials_.end(), ValueError,
                    "tokenizer.json: TemplateProcessing uses special token '{}' that is not in "
                    "special_tokens",
                    p.id);
          (t == &single_ ? added_single_ : added_pair_) += it->second.ids.size();
        }
  }
  size_t added_tokens(bool is_pair) const override { return is_pair ? added_pair_ : added_single_; }
  std::vector<Encoding> process_encodings(std::vector<Encoding> encs,
                                          bool add_special) const override {
    const auto& tpl = encs.size() == 2 ? pair_ : single_;
    std::vector<Encoding> out;
    for (const auto& p : tpl) {
      if (!p.special) {
        const size_t i = p.id == "A" ? 0 : 1;
        if (i >= encs.size()) continue;
        encs[i].type_ids.assign(encs[i].size(), p.type_id);
        encs[i].set_sequence_id(i);
        out.push_back(encs[i]);
      } else if (add_special) {
        out.push_back(special_encoding(specials_.at(p.id), p.type_id));
      }
    }
    return out;
  }

 private:
  std::vector<Piece> single_, pair_;
  std::unordered_map<std::string, Special> specials_;
  size_t added_single_ = 0, added_pair_ = 0;
};

// BertProcessing ([CLS] A [SEP] B [SEP]) and RobertaProcessing (<s> A </s></s> B </s>).
class ClsSepProcessing final : public PostProcessor {
 public:
  ClsSepProcessing(std::pair<std::string, uint32_t> cls, std::pair<std::string, uint32_t> sep,
                   bool roberta, bool trim_offsets, bool add_prefix_space)
      : cls_(std::move(cls)),
        sep_(std::move(sep)),
        roberta_(roberta),
        trim_(trim_offsets),
        prefix_space_(add_prefix_space) {}
  size_t added_tokens(bool is_pair) const override { return is_pair ? (roberta_ ? 4 : 3) : 2; }
  std::vector<Encoding> process_encodings(std::vector<Encoding> encs,
                                          bool add_special) const override {
    if (roberta_) {
      if (trim_)
        for (auto& e : encs) {
          trim_byte_level_offsets(e, prefix_space_);
          for (auto& o : e.overflowing) trim_byte_level_offsets(o, prefix_space_);
        }
      for (auto& e : encs) e.type_ids.assign(e.size(), 0);
    }
    if (!add_special) return encs;
    for (size_t i = 0; i < encs.size(); ++i) {
      auto over = std::move(encs[i].overflowing);
      encs[i] = wrap(std::move(encs[i]), i);
      for (auto& o : over) encs[i].overflowing.push_back(wrap(std::move(o), i));
    }
    return encs;
  }

 private:
  Encoding wrap(Encoding e, size_t i) const {
    Encoding r;
    if (roberta_) e.type_ids.assign(e.size(), 0);
    const uint32_t sep_type = i == 0 || roberta_ ? 0 : 1;
    if (i == 0) r.push_back(cls_.second, cls_.first, {0, 0}, {}, 0, 1);
    if (i == 1 && roberta_) r.push_back(sep_.second, sep_.first, {0, 0}, {}, 0, 1);
    const size_t b = r.size();
    for (size_t k = 0; k < e.size(); ++k)
      r.push_back(e.ids[k], std::move(e.tokens[k]), e.offsets[k], e.word_ids[k], e.type_ids[k], 0);
    r.push_back(sep_.second, sep_.first, {0, 0}, {}, sep_type, 1);
    r.sequence_ranges.push_back({i, b, r.size() - 1});
    return r;
  }
  std::pair<std::string, uint32_t> cls_, sep_;
  bool roberta_, trim_, prefix_space_;
};

class SequenceProcessing final : public PostProcessor {
 public:
  explicit SequenceProcessing(std::vector<std::unique_ptr<PostProcessor>> v) : v_(std::move(v)) {}
  size_t added_tokens(bool is_pair) const override {
    size_t n = 0;
    for (const auto& p : v_) n += p->added_tokens(is_pair);
    return n;
  }
  std::vector<Encoding> process_encodings(std::vector<Encoding> encs,
                                          bool add_special) const override {
    for (const auto& p : v_) encs = p->process_encodings(std::move(encs), add_special);
    return encs;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> v_;
};

std::vector<TemplateProcessing::Piece> template_from_json(const json& j, const char* where) {
  LMF_CHECK(j.is_array(), ValueError, "tokenizer.json: TemplateProcessing.{} must be a list",
            where);
  std::vector<TemplateProcessing::Piece> out;
  for (const auto& p : j) {
    LMF_CHECK(p.is_object() && p.size() == 1, ValueError,
              "tokenizer.json: TemplateProcessing.{} items must be {{\"SpecialToken\": ...}} or "
              "{{\"Sequence\": ...}}",
              where);
    const bool special = p.contains("SpecialToken");
    const json& body = special ? p["SpecialToken"] : get_key(p, "Sequence", where);
    const json& tid = get_key(body, "type_id", where);
    LMF_CHECK(tid.is_number_unsigned(), ValueError,
              "tokenizer.json: TemplateProcessing.{} type_id must be an unsigned integer", where);
    std::string id = get_string(body, "id", where);
    LMF_CHECK(special || id == "A" || id == "B", ValueError,
              "tokenizer.json: TemplateProcessing.{} sequence id must be A or B, got '{}'", where,
              id);
    out.push_back({special, std::move(id), tid.get<uint32_t>()});
  }
  return out;
}

std::pair<std::string, uint32_t> token_pair(const json& j, const char* key) {
  const json& v = get_key(j, key, "post_processor");
  LMF_CHECK(v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_number_unsigned(),
            ValueError, "tokenizer.json: post_processor.{} must be [token, id]", key);
  return {v[0].get<std::string>(), v[1].get<uint32_t>()};
}

}  // namespace

std::unique_ptr<PostProcessor> post_processor_from_json(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = get_string(j, "type", "post_processor");
  if (type == "TemplateProcessing") {
    std::unordered_map<std::string, Special> specials;
    const json& st = get_key(j, "special_tokens", "post_processor");
    LMF_CHECK(st.is_object(), ValueError,
              "tokenizer.json: TemplateProcessing.special_tokens must be an object");
    for (const auto& [name, v] : st.items()) {
      Special s;
      const json& ids = get_key(v, "ids", "TemplateProcessing.special_tokens");
      const json& toks = get_key(v, "tokens", "TemplateProcessing.special_tokens");
      LMF_CHECK(ids.is_array() && toks.is_array() && ids.size() == toks.size(), ValueError,
                "tokenizer.json: special token '{}' needs as many ids as tokens", name);
      for (size_t k = 0; k < ids.size(); ++k) {
        LMF_CHECK(ids[k].is_number_unsigned() && toks[k].is_string(), ValueError,
                  "tokenizer.json: special token '{}' has a bad id or token", name);
        s.ids.push_back(ids[k].get<uint32_t>());
        s.tokens.push_back(toks[k].get<std::string>());
      }
      specials.emplace(name, std::move(s));
    }
    return std::make_unique<TemplateProcessing>(
        template_from_json(get_key(j, "single", "post_processor"), "single"),
        template_from_json(get_key(j, "pair", "post_processor"), "pair"), std::move(specials));
  }
  if (type == "BertProcessing")
    return std::make_unique<ClsSepProcessing>(token_pair(j, "cls"), token_pair(j, "sep"), false,
                                              false, false);
  if (type == "RobertaProcessing")
    return std::make_unique<ClsSepProcessing>(token_pair(j, "cls"), token_pair(j, "sep"), true,
                                              get_bool(j, "trim_offsets", true),
                                              get_bool(j, "add_prefix_space", true));
  if (type == "Sequence") {
    const json& list = get_key(j, "processors", "post_processor.Sequence");
    LMF_CHECK(list.is_array(), ValueError,
              "tokenizer.json: post_processor.Sequence.processors must be a list");
    std::vector<std::unique_ptr<PostProcessor>> v;
    for (const auto& p : list)
      if (auto q = post_processor_from_json(p)) v.push_back(std::move(q));
    return std::make_unique<SequenceProcessing>(std::move(v));
  }
  if (auto p = make_post_processor_ext(type, j)) return p;
  fail<ValueError>("tokenizer.json: unsupported post_processor type '{}'", type);
}

std::unique_ptr<PostProcessor> make_bert_processing(std::pair<std::string, uint32_t> cls,
                                                    std::pair<std::string, uint32_t> sep) {
  return std::make_unique<ClsSepProcessing>(std::move(cls), std::move(sep), false, false, false);
}

std::unique_ptr<PostProcessor> make_roberta_processing(std::pair<std::string, uint32_t> cls,
                                                       std::pair<std::string, uint32_t> sep,
                                                       bool trim_offsets, bool add_prefix_space) {
  return std::make_unique<ClsSepProcessing>(std::move(cls), std::move(sep), true, trim_offsets,
                                            add_prefix_space);
}

}  // namespace lmf::tok
