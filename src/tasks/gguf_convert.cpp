// GGUF <-> HF folder conversion for LLaMA models. The GGUF -> HF rules mirror transformers 5.x
// (modeling_gguf_pytorch_utils.load_gguf_checkpoint, integrations/gguf/gguf_tokenizer_mapping);
// the HF -> GGUF rules mirror llama.cpp's convert_hf_to_gguf.py (LlamaModel, get_vocab_base,
// SpecialVocab).
#include "lmforge/tasks/gguf_convert.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <tuple>
#include <unordered_map>

#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/json.h"
#include "lmforge/models/llama.h"
#include "lmforge/tokenizers/byte_level.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tasks {

using io::GgmlType;
using io::GgufFile;
using io::GgufType;
using io::GgufValue;
using nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

constexpr int kTokenNormal = 1, kTokenControl = 3, kTokenUserDefined = 4;

std::string file_name(const GgufFile& f) {
  return f.path().empty() ? "GGUF" : f.path();
}

// ---- rotary row permutation ---------------------------------------------------------------------

// q/k rows between llama.cpp's rotary layout and HF's: models::llama_permute_rotary_rows.
using models::llama_permute_rotary_rows;

// ---- GGUF -> HF -------------------------------------------------------------------------------

// llama's tensor names: (GGUF, HF) for the whole-model tensors and for the parts of layer N
// (blk.N.<gguf> <-> model.layers.N.<hf>), as transformers' get_gguf_hf_weights_map and
// llama.cpp's convert_hf_to_gguf.py map them. Both conversion directions read these tables.
constexpr std::pair<const char*, const char*> kTopNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"}};
constexpr std::pair<const char*, const char*> kLayerNames[] = {
    {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"},
    {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},   {"attn_output", "self_attn.o_proj"},
    {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"}};

// The HF name of a llama GGUF tensor, or empty.
std::string hf_tensor_name(const std::string& g) {
  for (const auto& [gguf, hf] : kTopNames)
    if (g == gguf) return hf;
  static const std::regex re(R"(blk\.(\d+)\.([a-z_]+)\.(weight|bias))");
  std::smatch m;
  if (!std::regex_match(g, m, re)) return {};
  for (const auto& [gguf, hf] : kLayerNames)
    if (m[2] == gguf) return "model.layers." + m[1].str() + "." + hf + "." + m[3].str();
  return {};
}

const GgufValue* opt(const GgufFile& f, const std::string& key) {
  return f.find(key);
}

// A JSON number from a metadata value (ints stay ints, floats their exact value).
json number(const GgufValue& v, const std::string& key) {
  if (v.is_float()) return v.f;
  if (v.type == GgufType::U64) return v.u;
  return v.as_int(key);
}

struct TokenizerMeta {
  std::string model;  // tokenizer.ggml.model
  std::string pre;
  const std::vector<std::string>* tokens = nullptr;
  std::vector<int64_t> types;
  const std::vector<std::string>* merges = nullptr;
  const std::vector<double>* scores = nullptr;
  bool add_bos = false, add_eos = false;
  std::optional<int64_t> bos, eos, unk, pad;
};

TokenizerMeta tokenizer_meta(const GgufFile& f) {
  TokenizerMeta t;
  const std::string file = file_name(f);
  const GgufValue* model = opt(f, "tokenizer.ggml.model");
  LMF_CHECK(model, IoError, "{}: no tokenizer.ggml.model key: the file has no tokenizer", file);
  t.model = model->as_string("tokenizer.ggml.model");
  if (const GgufValue* v = opt(f, "tokenizer.ggml.pre")) t.pre = v->as_string("tokenizer.ggml.pre");
  t.tokens = &f.at("tokenizer.ggml.tokens").as_strings("tokenizer.ggml.tokens");
  if (const GgufValue* v = opt(f, "tokenizer.ggml.token_type")) {
    t.types = v->as_ints("tokenizer.ggml.token_type");
    LMF_CHECK(t.types.size() == t.tokens->size(), IoError,
              "{}: tokenizer.ggml.token_type has {} entries for {} tokens", file, t.types.size(),
              t.tokens->size());
  }
  if (const GgufValue* v = opt(f, "tokenizer.ggml.merges"))
    t.merges = &v->as_strings("tokenizer.ggml.merges");
  if (const GgufValue* v = opt(f, "tokenizer.ggml.scores")) {
    t.scores = &v->as_floats("tokenizer.ggml.scores");
    LMF_CHECK(t.scores->size() == t.tokens->size(), IoError,
              "{}: tokenizer.ggml.scores has {} entries for {} tokens", file, t.scores->size(),
              t.tokens->size());
  }
  auto id = [&](const char* key) -> std::optional<int64_t> {
    const GgufValue* v = opt(f, key);
    if (!v) return std::nullopt;
    const int64_t i = v->as_int(key);
    LMF_CHECK(i >= 0 && static_cast<size_t>(i) < t.tokens->size(), IoError,
              "{}: {} is {}, outside the vocabulary of {} tokens", file, key, i, t.tokens->size());
    return i;
  };
  t.bos = id("tokenizer.ggml.bos_token_id");
  t.eos = id("tokenizer.ggml.eos_token_id");
  t.unk = id("tokenizer.ggml.unknown_token_id");
  t.pad = id("tokenizer.ggml.padding_token_id");
  // transformers: a SentencePiece ("llama") vocabulary adds BOS unless the file says otherwise.
  t.add_bos = t.model == "llama";
  if (const GgufValue* v = opt(f, "tokenizer.ggml.add_bos_token"))
    t.add_bos = v->as_bool("tokenizer.ggml.add_bos_token");
  if (const GgufValue* v = opt(f, "tokenizer.ggml.add_eos_token"))
    t.add_eos = v->as_bool("tokenizer.ggml.add_eos_token");
  return t;
}

bool in_byte_alphabet(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = tok::utf8_len(b);
    if (n == 0 || i + n > s.size()) return false;
    char32_t c = n == 1 ? b : (b & (0xff >> (n + 1)));
    for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    if (tok::byte_level_byte(c) < 0) return false;
    i += n;
  }
  return true;
}

// The pre-tokenizer split transformers uses for a tokenizer.ggml.pre value (set_split_regex).
const char* split_regex(const std::string& pre) {
  static const char* llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const char* qwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::set<std::string> llama3_names = {
      "llama3",   "llama-v3", "llama-bpe",    "falcon3", "falcon-h1", "pixtral",
      "midm-2.0", "lfm2",     "jina-v5-nano", "dbrx",    "smaug-bpe"};
  static const std::set<std::string> qwen2_names = {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2",
                                                    "megrez"};
  if (llama3_names.count(pre)) return llama3;
  if (qwen2_names.count(pre)) return qwen2;
  return nullptr;
}

// Byte offsets of the code point boundaries inside `s` (excluding 0 and s.size()).
std::vector<size_t> cp_boundaries(const std::string& s) {
  std::vector<size_t> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t n = tok::utf8_len(static_cast<unsigned char>(s[i]));
    if (n == 0) n = 1;
    i += n;
    if (i < s.size()) out.push_back(i);
  }
  return out;
}

// transformers' generate_merges: every split of a token into two vocabulary tokens, grouped by
// token (ordered by the pieces' ids), then ordered by score (descending, stable) when there are
// scores, else by the merged token's id; ties by the pieces' lengths in code points.
std::vector<std::pair<std::string, std::string>> generate_merges(
    const std::vector<std::string>& tokens, const std::vector<double>* scores) {
  std::unordered_map<std::string, size_t> vocab;  // last index wins, as {token: index}
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  // Iteration order of dict(zip(tokens, scores)): first occurrence, last value.
  std::vector<std::pair<const std::string*, double>> order;
  std::unordered_map<std::string, size_t> pos;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const double sc = scores ? (*scores)[i] : static_cast<double>(vocab[tokens[i]]);
    auto [it, fresh] = pos.emplace(tokens[i], order.size());
    if (fresh)
      order.emplace_back(&tokens[i], sc);
    else
      order[it->second].second = sc;
  }
  struct M {
    std::string l, r;
    double score;
    size_t ll, lr;
  };
  std::vector<M> merges;
  for (const auto& [tokp, score] : order) {
    const std::string& tokn = *tokp;
    std::vector<M> local;
    const auto cuts = cp_boundaries(tokn);
    for (size_t k = 0; k < cuts.size(); ++k) {
      std::string l = tokn.substr(0, cuts[k]), r = tokn.substr(cuts[k]);
      if (vocab.count(l) && vocab.count(r))
        local.push_back({std::move(l), std::move(r), score, k + 1, cuts.size() - k});
    }
    std::stable_sort(local.begin(), local.end(), [&](const M& a, const M& b) {
      const size_t al = vocab.at(a.l), bl = vocab.at(b.l);
      return al != bl ? al < bl : vocab.at(a.r) < vocab.at(b.r);
    });
    for (auto& m : local) merges.push_back(std::move(m));
  }
  const bool reverse = scores != nullptr;
  std::stable_sort(merges.begin(), merges.end(), [&](const M& a, const M& b) {
    const auto ka = std::make_tuple(a.score, a.ll, a.lr), kb = std::make_tuple(b.score, b.ll, b.lr);
    return reverse ? kb < ka : ka < kb;
  });
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (auto& m : merges) out.emplace_back(std::move(m.l), std::move(m.r));
  return out;
}

std::string build_tokenizer_json(const GgufFile& f, const TokenizerMeta& t) {
  const std::string file = file_name(f);
  if (t.model != "gpt2" && t.model != "llama")
    fail<IoError>(
        "{}: tokenizer.ggml.model '{}' is not supported yet (supported: gpt2, byte-level "
        "BPE; llama, SentencePiece BPE)",
        file, t.model);
  const bool spm = t.model == "llama";
  const auto& tokens = *t.tokens;
  // Vocabulary spelled in the byte alphabet (byte_level_tokenizer); later duplicates win, as a
  // Python dict comprehension keeps the last id.
  std::vector<std::string> spelled(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i)
    spelled[i] = spm || in_byte_alphabet(tokens[i]) ? tokens[i] : tok::to_byte_level(tokens[i]);
  std::unordered_map<std::string, size_t> last;
  for (size_t i = 0; i < tokens.size(); ++i) last[spelled[i]] = i;

  std::string vocab = "{";
  bool first = true;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (last[spelled[i]] != i) continue;
    if (!first) vocab += ',';
    first = false;
    vocab += json(spelled[i]).dump(-1, ' ', false, json::error_handler_t::replace);
    vocab += ':' + std::to_string(i);
  }
  vocab += '}';
  std::string merges = "[";
  if (!t.merges) {
    const auto gen = generate_merges(spelled, spm ? t.scores : nullptr);
    for (size_t i = 0; i < gen.size(); ++i) {
      if (i) merges += ',';
      merges += json::array({json(gen[i].first), json(gen[i].second)})
                    .dump(-1, ' ', false, json::error_handler_t::replace);
    }
  } else {
    for (size_t i = 0; i < t.merges->size(); ++i) {
      const std::string& m = (*t.merges)[i];
      const size_t sp = m.find(' ');
      LMF_CHECK(sp != std::string::npos && m.find(' ', sp + 1) == std::string::npos, IoError,
                "{}: tokenizer.ggml.merges[{}] '{}' is not two tokens separated by one space", file,
                i, m);
      if (i) merges += ',';
      merges += json::array({m.substr(0, sp), m.substr(sp + 1)})
                    .dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  merges += ']';

  // Added tokens: CONTROL tokens (for gpt2: spelled in the byte alphabet) as special, USER_DEFINED
  // ones present in the vocabulary as normal added tokens (add_gguf_special_tokens), and the
  // bos/eos/unk/pad tokens as special (the tokenizer class registers them).
  ojson added = ojson::array();
  auto added_token = [](size_t id, const std::string& content, bool special) {
    ojson a;
    a["id"] = id;
    a["content"] = content;
    a["single_word"] = false;
    a["lstrip"] = false;
    a["rstrip"] = false;
    a["normalized"] = false;
    a["special"] = special;
    return a;
  };
  std::vector<std::pair<size_t, bool>> added_ids;
  for (size_t i = 0; i < t.types.size(); ++i)
    if (t.types[i] == kTokenControl && (spm || in_byte_alphabet(tokens[i])))
      added_ids.push_back({i, true});
  for (size_t i = 0; i < t.types.size(); ++i)
    if (t.types[i] == kTokenUserDefined && last.count(spelled[i]))
      added_ids.push_back({last[spelled[i]], false});
  for (const auto& id : {t.bos, t.eos, t.unk, t.pad})
    if (id) added_ids.push_back({last[spelled[static_cast<size_t>(*id)]], true});
  std::set<size_t> seen;
  // By id; a token both special and user-defined is special.
  std::sort(added_ids.begin(), added_ids.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;
  });
  for (const auto& [id, special] : added_ids)
    if (seen.insert(id).second) added.push_back(added_token(id, spelled[id], special));

  ojson pre;
  if (spm) {
    pre["type"] = "Metaspace";
    pre["replacement"] = "\u2581";
    pre["prepend_scheme"] = "first";
    pre["split"] = false;
  } else if (const char* rx = split_regex(t.pre)) {
    ojson split;
    split["type"] = "Split";
    split["pattern"] = {{"Regex", rx}};
    split["behavior"] = "Isolated";
    split["invert"] = false;
    ojson bl;
    bl["type"] = "ByteLevel";
    bl["add_prefix_space"] = false;
    bl["trim_offsets"] = true;
    bl["use_regex"] = false;
    pre["type"] = "Sequence";
    pre["pretokenizers"] = ojson::array({split, bl});
  } else {
    pre["type"] = "ByteLevel";
    pre["add_prefix_space"] = false;
    pre["trim_offsets"] = true;
    pre["use_regex"] = true;
  }
  // TemplateProcessing as TokenizersBackend.update_post_processor builds it.
  const std::optional<std::string> bos =
      t.bos ? std::optional<std::string>(spelled[static_cast<size_t>(*t.bos)]) : std::nullopt;
  const std::optional<std::string> eos =
      t.eos ? std::optional<std::string>(spelled[static_cast<size_t>(*t.eos)]) : std::nullopt;
  const bool add_bos = t.add_bos && bos.has_value(), add_eos = t.add_eos && eos.has_value();
  auto seq = [](const char* id, int type_id) {
    ojson s;
    s["Sequence"] = {{"id", id}, {"type_id", type_id}};
    return s;
  };
  auto special = [](const std::string& id, int type_id) {
    ojson s;
    s["SpecialToken"] = {{"id", id}, {"type_id", type_id}};
    return s;
  };
  ojson single = ojson::array(), pair = ojson::array();
  if (add_bos) single.push_back(special(*bos, 0));
  single.push_back(seq("A", 0));
  if (add_eos) single.push_back(special(*eos, 0));
  pair = single;
  if (add_bos) pair.push_back(special(*bos, 1));
  pair.push_back(seq("B", 1));
  if (add_eos) pair.push_back(special(*eos, 1));
  ojson specials = ojson::object();
  auto add_special = [&](const std::string& tokn, int64_t id) {
    specials[tokn] = {{"id", tokn}, {"ids", {id}}, {"tokens", {tokn}}};
  };
  if (add_bos) add_special(*bos, *t.bos);
  if (add_eos) add_special(*eos, *t.eos);
  ojson post;
  post["type"] = "TemplateProcessing";
  post["single"] = single;
  post["pair"] = pair;
  post["special_tokens"] = specials;
  ojson dec;
  if (spm) {
    ojson rep, bf, fuse, strip;
    rep["type"] = "Replace";
    rep["pattern"] = {{"String", "\u2581"}};
    rep["content"] = " ";
    bf["type"] = "ByteFallback";
    fuse["type"] = "Fuse";
    strip["type"] = "Strip";
    strip["content"] = " ";
    strip["start"] = 1;
    strip["stop"] = 0;
    dec["type"] = "Sequence";
    dec["decoders"] = ojson::array({rep, bf, fuse, strip});
  } else {
    dec["type"] = "ByteLevel";
    dec["add_prefix_space"] = true;
    dec["trim_offsets"] = true;
    dec["use_regex"] = true;
  }

  auto dump = [](const ojson& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); };
  std::string out = R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":)";
  out += dump(added);
  out += R"(,"normalizer":null,"pre_tokenizer":)" + dump(pre);
  out += R"(,"post_processor":)" + dump(post);
  out += R"(,"decoder":)" + dump(dec);
  out += spm ? R"(,"model":{"type":"BPE","dropout":null,"unk_token":null,)"
               R"("continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":true,)"
               R"("byte_fallback":true,"ignore_merges":false,"vocab":)"
             : R"(,"model":{"type":"BPE","dropout":null,"unk_token":null,)"
               R"("continuing_subword_prefix":"","end_of_word_suffix":"","fuse_unk":false,)"
               R"("byte_fallback":false,"ignore_merges":false,"vocab":)";
  out += vocab + R"(,"merges":)" + merges + "}}";
  return out;
}

// generation_config.json, tokenizer.json and tokenizer_config.json (shared by the families).
void finish_hf(const GgufFile& f, const TokenizerMeta& tm, const json& c,
               const json& model_max_length, HfFromGguf& hf) {
  // ---- generation_config.json ----
  json g;
  g["_from_model_config"] = true;
  for (const char* k : {"bos_token_id", "eos_token_id"})
    if (!c[k].is_null()) g[k] = c[k];
  g["output_attentions"] = false;
  g["output_hidden_states"] = false;
  if (!c["pad_token_id"].is_null()) g["pad_token_id"] = c["pad_token_id"];
  g["use_cache"] = true;
  hf.generation_config_json = g.dump(2) + "\n";

  // ---- tokenizer ----
  hf.tokenizer_json = build_tokenizer_json(f, tm);
  json tc;
  tc["add_bos_token"] = tm.add_bos;
  tc["add_eos_token"] = tm.add_eos;
  auto tok_or_null = [&](const std::optional<int64_t>& id) -> json {
    if (!id) return nullptr;
    const std::string& s = (*tm.tokens)[static_cast<size_t>(*id)];
    return tm.model != "gpt2" || in_byte_alphabet(s) ? s : tok::to_byte_level(s);
  };
  tc["bos_token"] = tok_or_null(tm.bos);
  tc["eos_token"] = tok_or_null(tm.eos);
  tc["unk_token"] = tok_or_null(tm.unk);
  tc["pad_token"] = tok_or_null(tm.pad);
  if (const GgufValue* v = opt(f, "tokenizer.chat_template")) {
    hf.chat_template = v->as_string("tokenizer.chat_template");
    tc["chat_template"] = hf.chat_template;
  }
  tc["clean_up_tokenization_spaces"] = false;
  tc["model_max_length"] = model_max_length;
  tc["tokenizer_class"] = "PreTrainedTokenizerFast";
  hf.tokenizer_config_json = tc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

// GPT-2 files: GPT2Config as transformers fills it from gpt2.* (n_ctx and feed_forward_length are
// kept as the extra attributes transformers sets), Conv1D weights transposed back.
HfFromGguf gpt2_to_hf(const GgufFile& f, const TokenizerMeta& tm) {
  const std::string file = file_name(f);
  HfFromGguf hf;
  json c;
  if (const GgufValue* v = opt(f, "general.name")) c["_model_name_or_path"] = v->as_string("n");
  c["architectures"] = {"GPT2LMHeadModel"};
  c["activation_function"] = "gelu_new";
  c["add_cross_attention"] = false;
  c["attn_pdrop"] = 0.1;
  c["bos_token_id"] = 50256;
  c["dtype"] = "float32";
  c["embd_pdrop"] = 0.1;
  c["eos_token_id"] = 50256;
  c["initializer_range"] = 0.02;
  c["layer_norm_epsilon"] = 1e-5;
  c["model_type"] = "gpt2";
  c["n_embd"] = 768;
  c["n_head"] = 12;
  c["n_inner"] = nullptr;
  c["n_layer"] = 12;
  c["n_positions"] = 1024;
  c["pad_token_id"] = nullptr;
  c["reorder_and_upcast_attn"] = false;
  c["resid_pdrop"] = 0.1;
  c["scale_attn_by_inverse_layer_idx"] = false;
  c["scale_attn_weights"] = true;
  c["summary_activation"] = nullptr;
  c["summary_first_dropout"] = 0.1;
  c["summary_proj_to_labels"] = true;
  c["summary_type"] = "cls_index";
  c["summary_use_proj"] = true;
  c["tie_word_embeddings"] = f.find_tensor("output.weight") == nullptr;
  c["use_cache"] = true;
  c["vocab_size"] = tm.tokens->size();
  static const std::pair<const char*, const char*> keys[] = {
      {"gpt2.block_count", "n_layer"},
      {"gpt2.context_length", "n_ctx"},
      {"gpt2.embedding_length", "n_embd"},
      {"gpt2.feed_forward_length", "feed_forward_length"},
      {"gpt2.attention.head_count", "n_head"},
      {"gpt2.attention.layer_norm_epsilon", "layer_norm_epsilon"},
      {"tokenizer.ggml.bos_token_id", "bos_token_id"},
      {"tokenizer.ggml.eos_token_id", "eos_token_id"},
      {"tokenizer.ggml.unknown_token_id", "unk_token_id"},
      {"tokenizer.ggml.padding_token_id", "pad_token_id"}};
  for (const auto& [g, h] : keys)
    if (const GgufValue* v = opt(f, g)) c[h] = number(*v, g);
  // transformers leaves n_positions at 1024 whatever the file says, and then cannot load a
  // position table of another length; the table's length is what the model needs.
  if (const io::GgufTensorInfo* wpe = f.find_tensor("position_embd.weight"))
    if (!wpe->shape.empty()) c["n_positions"] = wpe->shape[0];
  // Likewise transformers keeps feed_forward_length aside and builds 4 * n_embd: say n_inner
  // when the file's width differs.
  if (c.contains("feed_forward_length") &&
      c["feed_forward_length"] != 4 * c["n_embd"].get<int64_t>())
    c["n_inner"] = c["feed_forward_length"];
  hf.config_json = c.dump(2) + "\n";
  finish_hf(f, tm, c, c["n_positions"], hf);

  static const std::pair<const char*, const char*> top[] = {
      {"token_embd.weight", "transformer.wte.weight"},
      {"position_embd.weight", "transformer.wpe.weight"},
      {"output_norm.weight", "transformer.ln_f.weight"},
      {"output_norm.bias", "transformer.ln_f.bias"},
      {"output.weight", "lm_head.weight"}};
  static const std::pair<const char*, const char*> layer[] = {
      {"attn_norm", "ln_1"},          {"ffn_norm", "ln_2"},   {"attn_qkv", "attn.c_attn"},
      {"attn_output", "attn.c_proj"}, {"ffn_up", "mlp.c_fc"}, {"ffn_down", "mlp.c_proj"}};
  static const std::regex re(R"(blk\.(\d+)\.([a-z_]+)\.(weight|bias))");
  for (const auto& ti : f.tensors()) {
    std::string name;
    for (const auto& [a, b] : top)
      if (ti.name == a) name = b;
    bool transpose = false;
    std::smatch m;
    if (name.empty() && std::regex_match(ti.name, m, re))
      for (const auto& [a, b] : layer)
        if (m[2] == a) {
          name = "transformer.h." + m[1].str() + "." + b + "." + m[3].str();
          transpose =
              m[3] == "weight" && std::string(a) != "attn_norm" && std::string(a) != "ffn_norm";
        }
    if (name.empty()) continue;
    Tensor w = f.dequantize(ti);
    if (transpose) {
      LMF_CHECK(w.dim() == 2, IoError, "{}: tensor '{}' should be 2-D, is {}", file, ti.name,
                shape_str(w.shape()));
      w = w.transpose(0, 1).contiguous();
    }
    hf.state_dict.emplace(name, std::move(w));
  }
  LMF_CHECK(hf.state_dict.count("transformer.wte.weight"), IoError,
            "{}: no token_embd.weight tensor", file);
  return hf;
}

}  // namespace

std::string gguf_tokenizer_json(const GgufFile& file) {
  return build_tokenizer_json(file, tokenizer_meta(file));
}

HfFromGguf gguf_to_hf(const std::string& gguf_path) {
  return gguf_to_hf(GgufFile::open(gguf_path));
}

HfFromGguf gguf_to_hf(const GgufFile& f, bool keep_rotary_layout) {
  const std::string file = file_name(f);
  const std::string arch = f.at("general.architecture").as_string("general.architecture");
  if (arch != "llama" && arch != "gpt2")
    fail<IoError>(
        "{}: general.architecture '{}' is not supported for conversion (supported: "
        "llama, gpt2)",
        file, arch);
  HfFromGguf hf;
  const TokenizerMeta tm = tokenizer_meta(f);
  if (arch == "gpt2") return gpt2_to_hf(f, tm);

  // ---- config.json (LlamaConfig defaults, then what the file states) ----
  bool has_output = f.find_tensor("output.weight") != nullptr;
  json c;
  if (const GgufValue* v = opt(f, "general.name")) c["_model_name_or_path"] = v->as_string("n");
  c["architectures"] = {"LlamaForCausalLM"};
  c["attention_bias"] = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c["attention_dropout"] = 0.0;
  c["bos_token_id"] = 1;
  c["dtype"] = "float32";
  c["eos_token_id"] = 2;
  c["hidden_act"] = "silu";
  c["hidden_size"] = 4096;
  c["initializer_range"] = 0.02;
  c["intermediate_size"] = 11008;
  c["max_position_embeddings"] = 2048;
  c["mlp_bias"] = false;
  c["model_type"] = "llama";
  c["num_attention_heads"] = 32;
  c["num_hidden_layers"] = 32;
  c["pad_token_id"] = nullptr;
  c["pretraining_tp"] = 1;
  c["rms_norm_eps"] = 1e-6;
  c["tie_word_embeddings"] = !has_output;
  c["use_cache"] = true;
  c["vocab_size"] = 32000;
  static const std::pair<const char*, const char*> keys[] = {
      {"llama.context_length", "max_position_embeddings"},
      {"llama.block_count", "num_hidden_layers"},
      {"llama.feed_forward_length", "intermediate_size"},
      {"llama.embedding_length", "hidden_size"},
      {"llama.rope.dimension_count", "head_dim"},
      {"llama.attention.head_count", "num_attention_heads"},
      {"llama.attention.head_count_kv", "num_key_value_heads"},
      {"llama.attention.layer_norm_rms_epsilon", "rms_norm_eps"},
      {"llama.vocab_size", "vocab_size"},
      {"tokenizer.ggml.bos_token_id", "bos_token_id"},
      {"tokenizer.ggml.eos_token_id", "eos_token_id"},
      {"tokenizer.ggml.unknown_token_id", "unk_token_id"},
      {"tokenizer.ggml.padding_token_id", "pad_token_id"}};
  for (const auto& [g, h] : keys)
    if (const GgufValue* v = opt(f, g)) c[h] = number(*v, g);
  if (!opt(f, "llama.vocab_size")) c["vocab_size"] = tm.tokens->size();
  const int64_t n_head = c["num_attention_heads"].get<int64_t>();
  if (!c.contains("num_key_value_heads")) c["num_key_value_heads"] = n_head;
  const int64_t n_kv = c["num_key_value_heads"].get<int64_t>();
  LMF_CHECK(n_head > 0 && n_kv > 0 && n_head % n_kv == 0, IoError,
            "{}: llama.attention.head_count {} is not a positive multiple of head_count_kv {}",
            file, n_head, n_kv);
  if (!c.contains("head_dim")) c["head_dim"] = c["hidden_size"].get<int64_t>() / n_head;
  json rope = {{"rope_theta", 10000.0}, {"rope_type", "default"}};
  if (const GgufValue* v = opt(f, "llama.rope.freq_base"))
    rope["rope_theta"] = v->as_float("llama.rope.freq_base");
  // transformers drops llama.rope.scaling.* for llama files; kept here so the model runs as
  // llama.cpp runs it (linear and yarn scaling).
  if (const GgufValue* v = opt(f, "llama.rope.scaling.type")) {
    const std::string type = v->as_string("llama.rope.scaling.type");
    if (type == "linear" || type == "yarn") {
      rope["rope_type"] = type;
      if (const GgufValue* fct = opt(f, "llama.rope.scaling.factor"))
        rope["factor"] = fct->as_float("llama.rope.scaling.factor");
      if (const GgufValue* o = opt(f, "llama.rope.scaling.original_context_length"))
        rope["original_max_position_embeddings"] =
            o->as_int("llama.rope.scaling.original_context_length");
    } else if (type != "none") {
      fail<IoError>("{}: llama.rope.scaling.type '{}' is not supported (none, linear, yarn)", file,
                    type);
    }
  }
  c["rope_parameters"] = rope;
  hf.config_json = c.dump(2) + "\n";

  finish_hf(f, tm, c, c["max_position_embeddings"], hf);

  hf.rotary_layout_kept = keep_rotary_layout;
  // ---- tensors ----
  for (const auto& ti : f.tensors()) {
    const std::string name = hf_tensor_name(ti.name);
    if (name.empty()) continue;  // e.g. rope_freqs: not a parameter transformers loads
    Tensor w = f.dequantize(ti);
    const bool q = ti.name.find(".attn_q.") != std::string::npos;
    if (!keep_rotary_layout && (q || ti.name.find(".attn_k.") != std::string::npos)) {
      const Tensor stored = std::move(w);
      w = llama_permute_rotary_rows(stored, q ? n_head : n_kv, true, ti.name);
      // An f32 tensor is a view of the file mapping that nothing reads after this copy.
      Storage::release_mapped(stored);
    }
    hf.state_dict.emplace(name, std::move(w));
  }
  LMF_CHECK(hf.state_dict.count("model.embed_tokens.weight"), IoError,
            "{}: no token_embd.weight tensor", file);
  return hf;
}

void write_hf_folder(const HfFromGguf& hf, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  LMF_CHECK(!ec && fs::is_directory(dir), IoError, "cannot create folder '{}': {}", dir,
            ec.message());
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = (fs::path(dir) / name).string();
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.close();
    LMF_CHECK(out.good(), IoError, "cannot write '{}'", path);
  };
  write("config.json", hf.config_json);
  write("generation_config.json", hf.generation_config_json);
  write("tokenizer.json", hf.tokenizer_json);
  write("tokenizer_config.json", hf.tokenizer_config_json);
  if (!hf.chat_template.empty()) write("chat_template.jinja", hf.chat_template);
  io::save_safetensors((fs::path(dir) / "model.safetensors").string(), hf.state_dict);
}

// ---- HF -> GGUF -------------------------------------------------------------------------------

namespace {

// The GGUF name of a llama HF tensor, or empty.
std::string gguf_tensor_name(const std::string& name) {
  for (const auto& [gguf, hf] : kTopNames)
    if (name == hf) return gguf;
  static const std::regex re(R"(model\.layers\.(\d+)\.(.+)\.(weight|bias))");
  std::smatch m;
  if (!std::regex_match(name, m, re)) return {};
  for (const auto& [gguf, hf] : kLayerNames)
    if (m[2] == hf) return "blk." + m[1].str() + "." + gguf + "." + m[3].str();
  return {};
}

// A token string from tokenizer_config.json's "bos_token": either a string or {"content": ...}.
std::optional<std::string> special_content(const json& tc, const char* key) {
  if (!tc.contains(key)) return std::nullopt;
  const json& v = tc[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

// tokenizer.ggml.pre for a tokenizer.json pre-tokenizer (llama.cpp identifies it by hashing
// tokenizations; here by structure, for the layouts lmforge writes or meets).
std::string pre_type(const json& tj) {
  const json& p = tj.contains("pre_tokenizer") ? tj["pre_tokenizer"] : json();
  if (p.is_object() && p.value("type", "") == "ByteLevel") return "gpt-2";
  if (p.is_object() && p.value("type", "") == "Sequence" && p.contains("pretokenizers")) {
    const json& seq = p["pretokenizers"];
    if (seq.size() == 2 && seq[0].value("type", "") == "Digits" &&
        seq[1].value("type", "") == "ByteLevel")
      return "smollm";
    if (!seq.empty() && seq[0].value("type", "") == "Split" && seq[0].contains("pattern") &&
        seq[0]["pattern"].contains("Regex")) {
      const std::string rx = seq[0]["pattern"]["Regex"].get<std::string>();
      if (rx == split_regex("llama-bpe")) return "llama-bpe";
      if (rx == split_regex("qwen2")) return "qwen2";
    }
  }
  return "default";
}

}  // namespace

void hf_to_gguf(const std::string& hf_dir, const std::string& out_path, io::GgmlType type) {
  namespace fs = std::filesystem;
  LMF_CHECK(type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::Q8_0, ValueError,
            "hf_to_gguf: output type {} is not supported (f32, f16, q8_0)",
            io::ggml_type_name(type));
  const fs::path dir(hf_dir);
  const std::string cfg_path = (dir / "config.json").string();
  const json c = io::read_json_file(cfg_path);
  const std::string model_type = c.value("model_type", "");
  LMF_CHECK(model_type == "llama", ValueError,
            "{}: model_type '{}' cannot be converted to GGUF yet (supported: llama)", cfg_path,
            model_type);
  auto need_int = [&](const char* key) -> int64_t {
    LMF_CHECK(c.contains(key) && c[key].is_number_integer(), ValueError,
              "{}: '{}' must be an integer", cfg_path, key);
    return c[key].get<int64_t>();
  };
  const int64_t hidden = need_int("hidden_size"), n_layers = need_int("num_hidden_layers");
  const int64_t n_head = need_int("num_attention_heads");
  const int64_t n_kv = c.contains("num_key_value_heads") && !c["num_key_value_heads"].is_null()
                           ? need_int("num_key_value_heads")
                           : n_head;
  const int64_t head_dim =
      c.contains("head_dim") && !c["head_dim"].is_null() ? need_int("head_dim") : hidden / n_head;
  double rope_theta = c.value("rope_theta", 10000.0);
  json rope = c.contains("rope_parameters") ? c["rope_parameters"]
              : c.contains("rope_scaling")  ? c["rope_scaling"]
                                            : json();
  if (rope.is_object() && rope.contains("rope_theta"))
    rope_theta = rope["rope_theta"].get<double>();
  std::string rope_type = "default";
  if (rope.is_object()) rope_type = rope.value("rope_type", rope.value("type", "default"));
  LMF_CHECK(rope_type == "default" || rope_type == "linear", ValueError,
            "{}: rope type '{}' cannot be written to GGUF yet (default, linear)", cfg_path,
            rope_type);

  const std::string tj_path = (dir / "tokenizer.json").string();
  const json tj = io::read_json_file(tj_path);
  LMF_CHECK(tj.contains("model") && tj["model"].value("type", "") == "BPE", ValueError,
            "{}: only byte-level BPE tokenizers can be written to GGUF yet", tj_path);
  json tc = json::object();
  if (fs::exists(dir / "tokenizer_config.json"))
    tc = io::read_json_file((dir / "tokenizer_config.json").string());

  // Vocabulary by id: the model's vocab plus added tokens; gaps up to vocab_size are [PAD{i}].
  std::map<int64_t, std::string> by_id;
  for (const auto& [tokn, id] : tj["model"]["vocab"].items()) by_id[id.get<int64_t>()] = tokn;
  std::map<int64_t, bool> added;  // id -> special
  if (tj.contains("added_tokens"))
    for (const auto& a : tj["added_tokens"]) {
      const int64_t id = a["id"].get<int64_t>();
      by_id[id] = a["content"].get<std::string>();
      added[id] = a.value("special", false);
    }
  int64_t vocab_size = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
  if (c.contains("vocab_size") && c["vocab_size"].is_number_integer())
    vocab_size = std::max<int64_t>(vocab_size, c["vocab_size"].get<int64_t>());
  std::vector<std::string> tokens(static_cast<size_t>(vocab_size));
  std::vector<int64_t> types(static_cast<size_t>(vocab_size));
  std::unordered_map<std::string, int64_t> id_of;
  for (int64_t i = 0; i < vocab_size; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      tokens[i] = "[PAD" + std::to_string(i) + "]";
      types[i] = kTokenUserDefined;
      continue;
    }
    tokens[i] = it->second;
    id_of.emplace(it->second, i);
    auto a = added.find(i);
    types[i] = a == added.end() ? kTokenNormal : a->second ? kTokenControl : kTokenUserDefined;
  }
  std::vector<std::string> merges;
  if (tj["model"].contains("merges"))
    for (const auto& m : tj["model"]["merges"])
      merges.push_back(m.is_string() ? m.get<std::string>()
                                     : m[0].get<std::string>() + " " + m[1].get<std::string>());

  io::GgufWriter w("llama");
  const std::string name = c.contains("_model_name_or_path") && c["_model_name_or_path"].is_string()
                               ? c["_model_name_or_path"].get<std::string>()
                               : dir.filename().string();
  w.add("general.type", GgufValue::string("model"));
  if (!name.empty()) w.add("general.name", GgufValue::string(name));
  w.add("llama.block_count", GgufValue::u32(static_cast<uint32_t>(n_layers)));
  w.add("llama.context_length",
        GgufValue::u32(static_cast<uint32_t>(c.value("max_position_embeddings", 2048))));
  w.add("llama.embedding_length", GgufValue::u32(static_cast<uint32_t>(hidden)));
  w.add("llama.feed_forward_length",
        GgufValue::u32(static_cast<uint32_t>(need_int("intermediate_size"))));
  w.add("llama.attention.head_count", GgufValue::u32(static_cast<uint32_t>(n_head)));
  w.add("llama.attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(n_kv)));
  w.add("llama.rope.freq_base", GgufValue::f32(static_cast<float>(rope_theta)));
  w.add("llama.attention.layer_norm_rms_epsilon",
        GgufValue::f32(static_cast<float>(c.value("rms_norm_eps", 1e-6))));
  if (head_dim != hidden / n_head) {
    w.add("llama.attention.key_length", GgufValue::u32(static_cast<uint32_t>(head_dim)));
    w.add("llama.attention.value_length", GgufValue::u32(static_cast<uint32_t>(head_dim)));
  }
  const uint32_t file_type = type == GgmlType::F32 ? 0 : type == GgmlType::F16 ? 1 : 7;
  w.add("general.file_type", GgufValue::u32(file_type));
  w.add("llama.vocab_size", GgufValue::u32(static_cast<uint32_t>(vocab_size)));
  w.add("llama.rope.dimension_count", GgufValue::u32(static_cast<uint32_t>(head_dim)));
  if (rope_type == "linear") {
    w.add("llama.rope.scaling.type", GgufValue::string("linear"));
    w.add("llama.rope.scaling.factor", GgufValue::f32(rope.value("factor", 1.0f)));
  }
  w.add("tokenizer.ggml.model", GgufValue::string("gpt2"));
  w.add("tokenizer.ggml.pre", GgufValue::string(pre_type(tj)));
  w.add("tokenizer.ggml.tokens", GgufValue::string_array(tokens));
  w.add("tokenizer.ggml.token_type", GgufValue::int_array(GgufType::I32, types));
  if (!merges.empty()) w.add("tokenizer.ggml.merges", GgufValue::string_array(merges));
  // Special ids: tokenizer_config.json's tokens, else config.json's ids (SpecialVocab).
  auto special_id = [&](const char* tok_key, const char* cfg_key) -> std::optional<int64_t> {
    if (auto s = special_content(tc, tok_key)) {
      auto it = id_of.find(*s);
      if (it != id_of.end()) return it->second;
    }
    if (c.contains(cfg_key) && c[cfg_key].is_number_integer()) {
      const int64_t id = c[cfg_key].get<int64_t>();
      if (id >= 0 && id < vocab_size) return id;
    }
    return std::nullopt;
  };
  for (const auto& [tok_key, cfg_key, gguf_key] :
       {std::tuple{"bos_token", "bos_token_id", "tokenizer.ggml.bos_token_id"},
        std::tuple{"eos_token", "eos_token_id", "tokenizer.ggml.eos_token_id"},
        std::tuple{"unk_token", "unk_token_id", "tokenizer.ggml.unknown_token_id"},
        std::tuple{"pad_token", "pad_token_id", "tokenizer.ggml.padding_token_id"}})
    if (auto id = special_id(tok_key, cfg_key))
      w.add(gguf_key, GgufValue::u32(static_cast<uint32_t>(*id)));
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean())
    w.add("tokenizer.ggml.add_bos_token", GgufValue::boolean(tc["add_bos_token"].get<bool>()));
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean())
    w.add("tokenizer.ggml.add_eos_token", GgufValue::boolean(tc["add_eos_token"].get<bool>()));
  std::string chat_template;
  if (tc.contains("chat_template") && tc["chat_template"].is_string())
    chat_template = tc["chat_template"].get<std::string>();
  if (fs::exists(dir / "chat_template.jinja")) {
    std::ifstream in(dir / "chat_template.jinja", std::ios::binary);
    chat_template.assign(std::istreambuf_iterator<char>(in), {});
  }
  if (!chat_template.empty()) w.add("tokenizer.chat_template", GgufValue::string(chat_template));
  if (type != GgmlType::F32) w.add("general.quantization_version", GgufValue::u32(2));

  // Tensors: token_embd, the layers in order, output_norm, output (llama.cpp's order).
  const auto sd = io::load_checkpoint_dir(hf_dir, DType::f32);
  std::vector<std::pair<std::string, std::string>> names;  // gguf, hf
  for (const auto& [hf_name, t] : sd) {
    const std::string g = gguf_tensor_name(hf_name);
    if (g.empty()) {
      if (hf_name.find("rotary_emb.inv_freq") != std::string::npos) continue;
      fail<ValueError>("{}: tensor '{}' has no GGUF name for a llama model", hf_dir, hf_name);
    }
    names.emplace_back(g, hf_name);
  }
  auto rank = [](const std::string& g) {
    if (g == "token_embd.weight") return std::pair<int64_t, std::string>(-1, g);
    if (g.rfind("blk.", 0) == 0) {
      const int64_t layer = std::stoll(g.substr(4, g.find('.', 4) - 4));
      return std::pair<int64_t, std::string>(layer, g);
    }
    return std::pair<int64_t, std::string>(1LL << 40, g == "output_norm.weight" ? "0" : "1");
  };
  std::sort(names.begin(), names.end(),
            [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  for (const auto& [g, hf_name] : names) {
    Tensor t = sd.at(hf_name);
    if (g.find(".attn_q.") != std::string::npos)
      t = llama_permute_rotary_rows(t, n_head, false, hf_name);
    else if (g.find(".attn_k.") != std::string::npos)
      t = llama_permute_rotary_rows(t, n_kv, false, hf_name);
    const GgmlType tt = t.dim() <= 1                                       ? GgmlType::F32
                        : (type == GgmlType::Q8_0 && t.size(-1) % 32 != 0) ? GgmlType::F16
                                                                           : type;
    w.add_tensor(g, t, tt);
  }
  w.write(out_path);
}

}  // namespace lmf::tasks
