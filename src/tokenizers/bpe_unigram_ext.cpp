// The factory hooks (src/tokenizers/factory.h) for BPE, Unigram, ByteLevel, Metaspace and
// BPEDecoder, and the legacy folders: GPT-2/RoBERTa vocab.json + merges.txt and SentencePiece
// .model files.
#include <filesystem>
#include <fstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/bpe.h"
#include "lmforge/tokenizers/byte_level.h"
#include "lmforge/tokenizers/metaspace.h"
#include "lmforge/tokenizers/precompiled.h"
#include "lmforge/tokenizers/sentencepiece.h"
#include "lmforge/tokenizers/unicode.h"
#include "lmforge/tokenizers/unigram.h"
#include "tokenizers/factory.h"

namespace lmf::tok {
namespace {

// HF decoders::BPEDecoder: the end-of-word suffix becomes a space (nothing after the last token).
class BpeDecoder final : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    if (suffix_.empty()) return tokens;
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      const std::string rep = i + 1 == tokens.size() ? "" : " ";
      std::string out;
      for (size_t pos = 0;;) {
        size_t hit = t.find(suffix_, pos);
        if (hit == std::string::npos) {
          out.append(t, pos);
          break;
        }
        out.append(t, pos, hit - pos);
        out += rep;
        pos = hit + suffix_.size();
      }
      t = std::move(out);
    }
    return tokens;
  }

 private:
  std::string suffix_;
};

char32_t single_char(const json& j, std::string_view where) {
  std::string s = get_string(j, "replacement", where);
  size_t i = 0;
  LMF_CHECK(!s.empty() && is_valid_utf8(s), ValueError, "{}: 'replacement' must be one char",
            where);
  char32_t c = next_char(s, i);
  LMF_CHECK(i == s.size(), ValueError, "{}: 'replacement' must be one char, got '{}'", where, s);
  return c;
}

PrependScheme prepend_scheme(const json& j, std::string_view where) {
  std::optional<PrependScheme> scheme;
  if (auto it = j.find("prepend_scheme"); it != j.end() && !it->is_null()) {
    std::string s = it->is_string() ? it->get<std::string>() : "";
    if (s == "always")
      scheme = PrependScheme::Always;
    else if (s == "first")
      scheme = PrependScheme::First;
    else if (s == "never")
      scheme = PrependScheme::Never;
    else
      fail<ValueError>("{}: prepend_scheme must be always, first or never, got {}", where,
                       it->dump());
  }
  // Files from older versions carry add_prefix_space instead.
  if (auto it = j.find("add_prefix_space"); it != j.end() && it->is_boolean() && !it->get<bool>()) {
    LMF_CHECK(!scheme || *scheme == PrependScheme::Never, ValueError,
              "{}: add_prefix_space false does not match prepend_scheme", where);
    return PrependScheme::Never;
  }
  return scheme.value_or(PrependScheme::Always);
}

// A special token named in tokenizer_config.json / special_tokens_map.json (a string or an
// AddedToken object {"content": ...}).
std::optional<AddedToken> special_from(const json& a, const json& b, const char* key) {
  const json* v = nullptr;
  if (auto it = b.find(key); it != b.end() && !it->is_null())
    v = &*it;
  else if (auto it2 = a.find(key); it2 != a.end() && !it2->is_null())
    v = &*it2;
  if (!v) return std::nullopt;
  AddedToken t;
  t.special = true;
  t.normalized = false;
  if (v->is_string()) {
    t.content = v->get<std::string>();
  } else if (v->is_object() && v->contains("content")) {
    t.content = (*v)["content"].get<std::string>();
    t.lstrip = get_bool(*v, "lstrip", false);
    t.rstrip = get_bool(*v, "rstrip", false);
    t.single_word = get_bool(*v, "single_word", false);
  } else {
    return std::nullopt;
  }
  return t;
}

std::vector<AddedToken> specials(const json& config, const json& map) {
  std::vector<AddedToken> out;
  for (const char* k : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                        "cls_token", "mask_token"}) {
    if (auto t = special_from(config, map, k)) {
      bool dup = false;
      for (auto& o : out) dup = dup || o.content == t->content;
      if (!dup) out.push_back(*t);
    }
  }
  return out;
}

std::string class_name(const json& config) {
  auto it = config.find("tokenizer_class");
  return it != config.end() && it->is_string() ? it->get<std::string>() : "";
}

bool load_bpe_folder(const std::filesystem::path& dir, const json& config, const json& map,
                     Tokenizer& tok) {
  auto vocab = dir / "vocab.json", merges = dir / "merges.txt";
  if (!std::filesystem::exists(vocab) || !std::filesystem::exists(merges)) return false;
  const bool prefix = get_bool(config, "add_prefix_space", false);
  const bool roberta = class_name(config).find("Roberta") != std::string::npos ||
                       class_name(config).find("Bart") != std::string::npos;
  tok.set_model(BPE::from_files(vocab.string(), merges.string()));
  tok.set_pre_tokenizer(std::make_unique<ByteLevelPreTokenizer>(prefix, true));
  tok.set_decoder(std::make_unique<ByteLevelDecoder>());
  // RobertaTokenizer (= BartTokenizer in transformers 5.x) has default special tokens for the
  // ones tokenizer_config.json leaves out.
  json cfg = config;
  if (roberta)
    for (const auto& [k, v] : {std::pair{"bos_token", "<s>"},
                               {"eos_token", "</s>"},
                               {"unk_token", "<unk>"},
                               {"sep_token", "</s>"},
                               {"pad_token", "<pad>"},
                               {"cls_token", "<s>"},
                               {"mask_token", "<mask>"}})
      if (!cfg.contains(k) && !map.contains(k)) cfg[k] = v;
  auto sp = specials(cfg, map);
  tok.add_special_tokens(sp);
  if (roberta) {
    auto id = [&](const char* t) {
      auto i = tok.token_to_id(t);
      LMF_CHECK(i.has_value(), ValueError, "{}: RoBERTa-style folder lacks the token '{}'",
                dir.string(), t);
      return *i;
    };
    json pp = {{"type", "RobertaProcessing"},
               {"sep", {"</s>", id("</s>")}},
               {"cls", {"<s>", id("<s>")}},
               {"trim_offsets", true},
               {"add_prefix_space", prefix}};
    tok.set_post_processor(post_processor_from_json(pp));
  } else {
    tok.set_post_processor(std::make_unique<ByteLevelPostProcessor>(prefix, false));
  }
  return true;
}

bool load_sentencepiece_folder(const std::filesystem::path& dir, const json& config,
                               const json& map, Tokenizer& tok) {
  std::filesystem::path file;
  for (const char* name : {"spiece.model", "sentencepiece.bpe.model", "tokenizer.model",
                           "source.spm", "sentencepiece.model"}) {
    if (std::filesystem::exists(dir / name)) {
      file = dir / name;
      break;
    }
  }
  if (file.empty()) return false;
  std::shared_ptr<SentencePiece> sp = SentencePiece::from_file(file.string());
  std::string cls = class_name(config);
  const bool t5 = cls.rfind("T5Tokenizer", 0) == 0;
  if (t5) {
    // transformers 5.25's T5Tokenizer has no slow form: it converts spiece.model as
    // T5Converter does (Precompiled normalizer from the model's charsmap, WhitespaceSplit +
    // Metaspace, Unigram without byte fallback, Metaspace decoder).
    const std::string charsmap = sp->precompiled_charsmap();
    if (!charsmap.empty()) tok.set_normalizer(std::make_unique<PrecompiledNormalizer>(charsmap));
    const json meta = {{"type", "Metaspace"},
                       {"replacement", "\u2581"},
                       {"prepend_scheme", "always"},
                       {"split", true}};
    tok.set_pre_tokenizer(pre_tokenizer_from_json(
        {{"type", "Sequence"}, {"pretokenizers", {{{"type", "WhitespaceSplit"}}, meta}}}));
    tok.set_model(sp->to_unigram());  // T5's spiece.model has no byte pieces: no fallback
    tok.set_decoder(decoder_from_json(meta));
  } else {
    tok.set_model(SentencePiece::from_file(file.string()));
    tok.set_decoder(std::make_unique<SentencePieceDecoder>(sp));
  }
  // T5Tokenizer appends its sentinels <extra_id_N> (extra_ids, default 100) after the pieces in
  // reverse order, <extra_id_0> last, before any other special token.
  if (t5 && !sp->token_to_id("<extra_id_0>")) {
    int64_t n = 100;
    if (auto it = config.find("extra_ids"); it != config.end() && it->is_number_integer())
      n = it->get<int64_t>();
    std::vector<AddedToken> sentinels;
    for (int64_t i = n - 1; i >= 0; --i)
      sentinels.push_back(
          {"<extra_id_" + std::to_string(i) + ">", false, false, false, false, true, std::nullopt});
    tok.add_special_tokens(sentinels);
  }
  tok.add_special_tokens(specials(config, map));
  // Special tokens the slow tokenizers add: [CLS] A [SEP] (ALBERT), A </s> (T5, Marian),
  // <s> A (LLaMA, add_bos_token / add_eos_token).
  auto piece = [&](std::optional<uint32_t> id) { return sp->id_to_token(*id).value_or(""); };
  json single = json::array(), pair = json::array(), special = json::array();
  auto add_special = [&](const std::string& t) {
    auto id = tok.token_to_id(t);
    if (!id) return false;
    special.push_back({{"id", t}, {"ids", {*id}}, {"tokens", {t}}});
    return true;
  };
  auto seq = [](const char* id, int type) {
    return json{{"Sequence", {{"id", id}, {"type_id", static_cast<unsigned>(type)}}}};
  };
  auto sp_tok = [](const std::string& t, int type) {
    return json{{"SpecialToken", {{"id", t}, {"type_id", static_cast<unsigned>(type)}}}};
  };
  if (cls.find("Albert") != std::string::npos && add_special("[CLS]") && add_special("[SEP]")) {
    single = {sp_tok("[CLS]", 0), seq("A", 0), sp_tok("[SEP]", 0)};
    pair = {sp_tok("[CLS]", 0), seq("A", 0), sp_tok("[SEP]", 0), seq("B", 1), sp_tok("[SEP]", 1)};
  } else {
    const bool bos = get_bool(config, "add_bos_token", cls.find("Llama") != std::string::npos);
    const bool eos = get_bool(config, "add_eos_token", cls.find("Llama") == std::string::npos);
    std::string b = sp->bos_id() ? piece(sp->bos_id()) : "",
                e = sp->eos_id() ? piece(sp->eos_id()) : "";
    for (int half = 0; half < 2; ++half) {
      json& t = half == 0 ? single : pair;
      for (int s = 0; s < 1 + half; ++s) {
        if (bos && !b.empty() && add_special(b)) t.push_back(sp_tok(b, s));
        t.push_back(seq(s == 0 ? "A" : "B", s));
        if (eos && !e.empty() && add_special(e)) t.push_back(sp_tok(e, s));
      }
    }
  }
  json sp_map = json::object();
  for (auto& s : special) sp_map[s["id"].get<std::string>()] = s;
  tok.set_post_processor(post_processor_from_json({{"type", "TemplateProcessing"},
                                                   {"single", single},
                                                   {"pair", pair},
                                                   {"special_tokens", sp_map}}));
  return true;
}

}  // namespace

std::unique_ptr<Model> make_model_ext(std::string_view type, const json& j) {
  if (type == "BPE") return BPE::from_json(j);
  if (type == "Unigram") return Unigram::from_json(j);
  return nullptr;
}

std::unique_ptr<Normalizer> make_normalizer_ext(std::string_view type, const json& j) {
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Precompiled") {
    auto it = j.find("precompiled_charsmap");
    return PrecompiledNormalizer::from_base64(
        it != j.end() && it->is_string() ? it->get<std::string>() : std::string());
  }
  return nullptr;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer_ext(std::string_view type, const json& j) {
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(get_bool(j, "add_prefix_space", true),
                                                   get_bool(j, "use_regex", true));
  }
  if (type == "Metaspace") {
    return std::make_unique<MetaspacePreTokenizer>(single_char(j, "pre_tokenizer Metaspace"),
                                                   prepend_scheme(j, "pre_tokenizer Metaspace"),
                                                   get_bool(j, "split", true));
  }
  return nullptr;
}

std::unique_ptr<PostProcessor> make_post_processor_ext(std::string_view type, const json& j) {
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPostProcessor>(get_bool(j, "add_prefix_space", true),
                                                    get_bool(j, "trim_offsets", true));
  }
  return nullptr;
}

std::unique_ptr<Decoder> make_decoder_ext(std::string_view type, const json& j) {
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    return std::make_unique<MetaspaceDecoder>(single_char(j, "decoder Metaspace"),
                                              prepend_scheme(j, "decoder Metaspace"));
  }
  if (type == "BPEDecoder") {
    auto it = j.find("suffix");
    return std::make_unique<BpeDecoder>(it != j.end() && it->is_string() ? it->get<std::string>()
                                                                         : "</w>");
  }
  return nullptr;
}

bool load_legacy_ext(const std::filesystem::path& dir, const json& tokenizer_config,
                     const json& special_tokens_map, Tokenizer& tok) {
  return load_bpe_folder(dir, tokenizer_config, special_tokens_map, tok) ||
         load_sentencepiece_folder(dir, tokenizer_config, special_tokens_map, tok);
}

}  // namespace lmf::tok
