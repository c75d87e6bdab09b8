// GGUF <-> HF conversion: a tiny LLaMA folder round-trips through GGUF (f32 exactly, f16/q8_0
// types as asked), and the real SmolLM2 GGUF converts to what transformers' GGUF loading builds
// (config, generation config, tokenizer files, tensor names and values, token ids).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "io/gguf_test_util.h"
#include "io/io_test_util.h"
#include "lmforge/core/autograd.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/gguf.h"
#include "lmforge/io/json.h"
#include "lmforge/models/llama.h"
#include "lmforge/models/model.h"
#include "lmforge/tasks/causal_lm.h"
#include "lmforge/tasks/generate.h"
#include "lmforge/tasks/gguf_convert.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::io::test {
namespace {

using nlohmann::json;

Tensor random_tensor(const Shape& shape, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 0.5f);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = nd(rng);
  return Tensor::from_vector(v, shape);
}

// A tiny LLaMA folder (GQA 4/2 heads, untied head) with the byte-level BPE tokenizer fixture.
StateDict make_tiny_llama(const std::string& dir, bool tied) {
  const int64_t vocab = 3000, hidden = 64, inter = 96, layers = 2, heads = 4, kv = 2, hd = 16;
  json c = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"hidden_size", hidden},
            {"intermediate_size", inter},
            {"num_hidden_layers", layers},
            {"num_attention_heads", heads},
            {"num_key_value_heads", kv},
            {"max_position_embeddings", 256},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", 50000.0},
            {"vocab_size", vocab},
            {"bos_token_id", 0},
            {"eos_token_id", 2},
            {"tie_word_embeddings", tied}};
  std::ofstream(dir + "/config.json") << c.dump(2);
  std::filesystem::copy_file(std::string(LMF_FIXTURES_DIR) + "/tokenizers/bpe_tokenizer.json",
                             dir + "/tokenizer.json");
  json tc = {{"bos_token", "<s>"},
             {"eos_token", "</s>"},
             {"unk_token", "<unk>"},
             {"pad_token", "<pad>"},
             {"add_bos_token", false},
             {"chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}"}};
  std::ofstream(dir + "/tokenizer_config.json") << tc.dump(2);
  std::mt19937 rng(3);
  StateDict sd;
  sd["model.embed_tokens.weight"] = random_tensor({vocab, hidden}, rng);
  sd["model.norm.weight"] = random_tensor({hidden}, rng);
  if (!tied) sd["lm_head.weight"] = random_tensor({vocab, hidden}, rng);
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    sd[p + "input_layernorm.weight"] = random_tensor({hidden}, rng);
    sd[p + "post_attention_layernorm.weight"] = random_tensor({hidden}, rng);
    sd[p + "self_attn.q_proj.weight"] = random_tensor({heads * hd, hidden}, rng);
    sd[p + "self_attn.k_proj.weight"] = random_tensor({kv * hd, hidden}, rng);
    sd[p + "self_attn.v_proj.weight"] = random_tensor({kv * hd, hidden}, rng);
    sd[p + "self_attn.o_proj.weight"] = random_tensor({hidden, heads * hd}, rng);
    sd[p + "mlp.gate_proj.weight"] = random_tensor({inter, hidden}, rng);
    sd[p + "mlp.up_proj.weight"] = random_tensor({inter, hidden}, rng);
    sd[p + "mlp.down_proj.weight"] = random_tensor({hidden, inter}, rng);
  }
  save_safetensors(dir + "/model.safetensors", sd);
  return sd;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.contiguous().to_vector<float>(),
                           y = b.contiguous().to_vector<float>();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i)
    m = std::max(m, std::abs(double(x[i]) - y[i]));
  return m;
}

void expect_bits_equal(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_EQ(a.shape(), b.shape()) << name;
  const Tensor x = a.contiguous(), y = b.contiguous();
  EXPECT_EQ(std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()), 0) << name;
}

TEST(GgufConvert, TinyLlamaRoundTripsThroughF32Exactly) {
  TempDir src, dst;
  const StateDict sd = make_tiny_llama(src.path.string(), false);
  const std::string gguf = dst / "tiny.gguf";
  tasks::hf_to_gguf(src.path.string(), gguf, GgmlType::F32);

  const GgufFile f = GgufFile::open(gguf);
  EXPECT_EQ(f.at("general.architecture").as_string("a"), "llama");
  EXPECT_EQ(f.at("llama.block_count").as_int("b"), 2);
  EXPECT_EQ(f.at("llama.attention.head_count_kv").as_int("k"), 2);
  EXPECT_EQ(f.at("llama.rope.dimension_count").as_int("r"), 16);
  EXPECT_EQ(f.at("llama.rope.freq_base").as_float("f"), 50000.0);
  EXPECT_EQ(f.at("llama.attention.layer_norm_rms_epsilon").as_float("e"),
            static_cast<double>(1e-5f));
  EXPECT_EQ(f.at("tokenizer.ggml.model").as_string("m"), "gpt2");
  EXPECT_EQ(f.at("tokenizer.ggml.pre").as_string("p"), "gpt-2");
  EXPECT_EQ(f.at("tokenizer.ggml.tokens").as_strings("t").size(), 3000u);
  EXPECT_EQ(f.at("tokenizer.ggml.token_type").as_ints("t")[0], 3);  // <s>: control
  EXPECT_EQ(f.at("tokenizer.ggml.token_type").as_ints("t")[100], 1);
  EXPECT_EQ(f.at("tokenizer.ggml.bos_token_id").as_int("b"), 0);
  EXPECT_EQ(f.at("tokenizer.ggml.eos_token_id").as_int("e"), 2);
  EXPECT_EQ(f.at("tokenizer.ggml.padding_token_id").as_int("p"), 1);
  EXPECT_EQ(f.at("tokenizer.ggml.unknown_token_id").as_int("u"), 3);
  EXPECT_FALSE(f.at("tokenizer.ggml.add_bos_token").as_bool("a"));
  EXPECT_NE(f.at("tokenizer.chat_template").as_string("c").find("m['content']"), std::string::npos);
  ASSERT_NE(f.find_tensor("output.weight"), nullptr);
  // q/k are stored permuted (llama.cpp's rotary layout): not equal to the HF rows.
  const Tensor q_gguf = f.dequantize("blk.0.attn_q.weight");
  EXPECT_NE(
      std::memcmp(q_gguf.data_ptr(), sd.at("model.layers.0.self_attn.q_proj.weight").data_ptr(),
                  q_gguf.nbytes()),
      0);
  // Row 1 of head 0 in GGUF is HF row dim (= 8): the second half's first element.
  EXPECT_EQ(
      std::memcmp(q_gguf.data<float>() + 64,
                  sd.at("model.layers.0.self_attn.q_proj.weight").data<float>() + 8 * 64, 64 * 4),
      0);

  const tasks::HfFromGguf hf = tasks::gguf_to_hf(gguf);
  EXPECT_EQ(hf.state_dict.size(), sd.size());
  for (const auto& [name, t] : sd) {
    ASSERT_TRUE(hf.state_dict.count(name)) << name;
    expect_bits_equal(hf.state_dict.at(name), t, name);
  }
  const json c = json::parse(hf.config_json);
  EXPECT_EQ(c["num_key_value_heads"], 2);
  EXPECT_EQ(c["head_dim"], 16);
  EXPECT_EQ(c["tie_word_embeddings"], false);
  EXPECT_EQ(c["rope_parameters"]["rope_theta"], 50000.0);
  EXPECT_EQ(c["vocab_size"], 3000);

  // The tokenizer rebuilt from GGUF gives the source tokenizer's ids.
  const auto orig = tok::Tokenizer::from_file(src.path / "tokenizer.json");
  const auto back = tok::Tokenizer::from_json(hf.tokenizer_json);
  for (const char* s : {"Hello world, this is a test.", " café 123 <s> ünï\n\n  x", "</s><mask>"}) {
    EXPECT_EQ(back.encode(s, false).ids, orig.encode(s, false).ids) << s;
    EXPECT_EQ(back.encode(s, true).ids, orig.encode(s, false).ids) << s;  // no BOS added
  }
}

// A llama GGUF runs with its q/k rows in llama.cpp's order (read in place, interleaved rotary
// pairs) and gives the HF folder's outputs; saving it writes HF's rows back.
TEST(GgufConvert, LlamaRunsInGgufRotaryLayoutLikeTheHfFolder) {
  TempDir src, dst, saved;
  const StateDict sd = make_tiny_llama(src.path.string(), false);
  const std::string gguf = dst / "tiny.gguf";
  tasks::hf_to_gguf(src.path.string(), gguf, GgmlType::F32);
  const tasks::CausalLM hf = tasks::load_causal_lm(src.path.string());
  const tasks::CausalLM gg = tasks::load_causal_lm(gguf);
  models::LlamaModel* base = models::llama_base_model(*gg.model);
  ASSERT_NE(base, nullptr);
  EXPECT_TRUE(base->gguf_rotary_layout());
  EXPECT_FALSE(models::llama_base_model(*hf.model)->gguf_rotary_layout());
  // The GGUF q weight is the file's (permuted) rows, not a copy in HF's order.
  Tensor q;
  for (const auto& [name, t] : gg.model->named_parameters())
    if (name == "model.layers.0.self_attn.q_proj.weight") q = t;
  ASSERT_TRUE(q.defined());
  EXPECT_NE(std::memcmp(q.data_ptr(), sd.at("model.layers.0.self_attn.q_proj.weight").data_ptr(),
                        q.nbytes()),
            0);

  NoGradGuard ng;
  const Tensor ids = Tensor::from_vector<int64_t>({5, 17, 300, 42, 9, 2000, 7, 8, 1500, 3}, {2, 5});
  models::DecoderInputs in;
  in.input_ids = ids;
  const Tensor a = hf.model->forward(in).logits, b = gg.model->forward(in).logits;
  EXPECT_LT(max_abs_diff(a, b), 1e-4) << "full forward";
  // Step by step through the cache (the decode path).
  models::KVCache ca = hf.model->make_cache(2, 8), cb = gg.model->make_cache(2, 8);
  for (int64_t t = 0; t < 5; ++t) {
    models::DecoderInputs step;
    step.input_ids = ids.narrow(1, t, 1).contiguous();
    step.cache = &ca;
    const Tensor la = hf.model->forward(step).logits;
    step.cache = &cb;
    const Tensor lb = gg.model->forward(step).logits;
    EXPECT_LT(max_abs_diff(la, lb), 1e-4) << "step " << t;
  }
  // Greedy generation gives the same tokens.
  tasks::GenerationConfig cfg = hf.generation;
  cfg.do_sample = false;
  cfg.max_new_tokens = 12;
  cfg.min_new_tokens = 12;
  const auto ga = tasks::generate(*hf.model, {{5, 17, 300, 42}}, cfg);
  const auto gb = tasks::generate(*gg.model, {{5, 17, 300, 42}}, cfg);
  EXPECT_EQ(ga.sequences[0].output_ids, gb.sequences[0].output_ids);
  // save_pretrained writes HF's row order back: the original tensors, bit for bit.
  models::save_pretrained(*gg.model, saved.path.string());
  const StateDict back = load_safetensors(saved / "model.safetensors");
  for (const char* k :
       {"model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
        "model.layers.0.self_attn.v_proj.weight"})
    expect_bits_equal(back.at(k), sd.at(k), k);
}

TEST(GgufConvert, TiedF16AndQ8_0TypesAsLlamaCppWrites) {
  TempDir src, dst;
  const StateDict sd = make_tiny_llama(src.path.string(), true);
  for (GgmlType type : {GgmlType::F16, GgmlType::Q8_0}) {
    const std::string gguf = dst / (ggml_type_name(type) + ".gguf");
    tasks::hf_to_gguf(src.path.string(), gguf, type);
    const GgufFile f = GgufFile::open(gguf);
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
    EXPECT_EQ(f.find_tensor("token_embd.weight")->type, type);
    EXPECT_EQ(f.find_tensor("blk.1.ffn_down.weight")->type, type);
    EXPECT_EQ(f.find_tensor("output_norm.weight")->type, GgmlType::F32);
    EXPECT_EQ(f.at("general.file_type").as_int("f"), type == GgmlType::F16 ? 1 : 7);
    const tasks::HfFromGguf hf = tasks::gguf_to_hf(f);
    EXPECT_EQ(json::parse(hf.config_json)["tie_word_embeddings"], true);
    EXPECT_FALSE(hf.state_dict.count("lm_head.weight"));
    // Values within the type's rounding of the source (permutation undone exactly).
    for (const auto& [name, t] : sd) {
      const auto a = values(hf.state_dict.at(name)), b = values(t);
      double worst = 0;
      for (size_t k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(a[k] - b[k]));
      EXPECT_LT(worst, type == GgmlType::F16 ? 2e-3 : 2e-2) << name;
    }
  }
}

TEST(GgufConvert, RefusesUnsupportedInput) {
  // types.gguf is llama but has no tokenizer.
  EXPECT_THROW(tasks::gguf_to_hf(gguf_fixture("types.gguf")), IoError);
  TempDir dir;
  std::ofstream(dir / "config.json") << R"({"model_type": "bert"})";
  EXPECT_THROW(tasks::hf_to_gguf(dir.path.string(), dir / "x.gguf"), ValueError);
  EXPECT_THROW(tasks::hf_to_gguf(dir.path.string(), dir / "x.gguf", GgmlType::Q4_K), ValueError);
}

TEST(GgufConvert, SentencePieceVocabularyAsTransformersBuildsIt) {
  const std::string golden = gguf_fixture("tiny_spm_hf.json");
  if (!std::filesystem::exists(golden))
    GTEST_SKIP() << "tiny_spm_hf.json absent (needs transformers)";
  const json g = read_json_file(golden);
  const tasks::HfFromGguf hf = tasks::gguf_to_hf(gguf_fixture("tiny_spm.gguf"));
  // The whole tokenizer.json, merges generated from the scores included.
  EXPECT_EQ(json::parse(hf.tokenizer_json), g["tokenizer"]) << hf.tokenizer_json;
  const json tc = json::parse(hf.tokenizer_config_json);
  for (const auto& [k, v] : g["tokenizer_config"].items()) EXPECT_EQ(tc[k], v) << k;
  const auto t = tok::Tokenizer::from_json(hf.tokenizer_json);
  for (size_t k = 0; k < g["sentences"].size(); ++k) {
    const std::string s = g["sentences"][k].get<std::string>();
    const auto ids = t.encode(s).ids;
    EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), g["ids"][k].get<std::vector<int64_t>>())
        << "'" << s << "'";
    EXPECT_EQ(t.decode(ids, false), g["decoded"][k].get<std::string>()) << "'" << s << "'";
  }
}

std::string wsum64(const Tensor& t);

TEST(GgufConvert, Gpt2AsTransformersLoadsIt) {
  const std::string golden = gguf_fixture("tiny_gpt2_hf.json");
  if (!std::filesystem::exists(golden))
    GTEST_SKIP() << "tiny_gpt2_hf.json absent (needs transformers)";
  const json g = read_json_file(golden);
  EXPECT_TRUE(g["loading_info"]["missing_keys"].empty());
  EXPECT_TRUE(g["loading_info"]["unexpected_keys"].empty());
  const tasks::HfFromGguf hf = tasks::gguf_to_hf(gguf_fixture("tiny_gpt2.gguf"));
  json want = g["config"];
  want.erase("transformers_version");
  want["architectures"] = {"GPT2LMHeadModel"};  // what save_pretrained records
  EXPECT_EQ(json::parse(hf.config_json), want) << hf.config_json;
  json gen = g["generation_config"];
  gen.erase("transformers_version");
  EXPECT_EQ(json::parse(hf.generation_config_json), gen);
  ASSERT_EQ(hf.state_dict.size(), g["tensors"].size());
  for (const auto& [name, w] : g["tensors"].items()) {
    ASSERT_TRUE(hf.state_dict.count(name)) << name;
    EXPECT_EQ(hf.state_dict.at(name).shape(), w["shape"].get<Shape>()) << name;
    EXPECT_EQ(wsum64(hf.state_dict.at(name)), w["wsum64"].get<std::string>()) << name;
  }
  // The control token <|user|> stays whole.
  const auto t = tok::Tokenizer::from_json(hf.tokenizer_json);
  const auto ids = t.encode("the<|user|> a").ids;
  EXPECT_NE(std::find(ids.begin(), ids.end(), 261u), ids.end());
}

// ---- the real SmolLM2 GGUF vs transformers ------------------------------------------------------

std::string wsum64(const Tensor& t) {
  const Tensor c = t.contiguous();
  const auto* bits = static_cast<const uint32_t*>(c.data_ptr());
  uint64_t s = 0;
  for (int64_t k = 0; k < c.numel(); ++k) s += static_cast<uint64_t>(bits[k]) * (k + 1);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(s));
  return buf;
}

struct Smol {
  std::string path;
  json golden;
};
const Smol* smol() {
  static const Smol* s = []() -> const Smol* {
    const std::string p = smol_gguf_path();
    const std::string g = gguf_fixture("smollm2_hf.json");
    if (p.empty() || !std::filesystem::exists(g)) return nullptr;
    return new Smol{p, read_json_file(g)};
  }();
  return s;
}

TEST(GgufConvertSmolLM2, FolderMatchesTransformersGgufLoading) {
  if (!smol()) GTEST_SKIP() << "SmolLM2 GGUF or smollm2_hf.json absent";
  const json& g = smol()->golden;
  const tasks::HfFromGguf hf = tasks::gguf_to_hf(smol()->path);
  for (const auto& [ours_text, file] :
       {std::pair{&hf.config_json, "config.json"},
        std::pair{&hf.generation_config_json, "generation_config.json"}}) {
    json want = g["files"][file], got = json::parse(*ours_text);
    want.erase("transformers_version");
    // save_pretrained records the class (the golden is the model's config before saving).
    if (std::string(file) == "config.json") want["architectures"] = {"LlamaForCausalLM"};
    EXPECT_EQ(got, want) << file << "\nours: " << got.dump(1) << "\ntransformers: " << want.dump(1);
  }
  const json tc = json::parse(hf.tokenizer_config_json);
  for (const char* k : {"bos_token", "eos_token", "pad_token", "unk_token"})
    EXPECT_EQ(tc[k], g["files"]["tokenizer_config.json"][k]) << k;
  EXPECT_EQ(tc["chat_template"], g["chat_template"]);
  EXPECT_EQ(hf.chat_template, g["chat_template"].get<std::string>());

  // tokenizer.json: identical apart from vocab/merges, which are checked by samples.
  json tj = json::parse(hf.tokenizer_json);
  const json vocab = tj["model"]["vocab"], merges = tj["model"]["merges"];
  tj["model"].erase("vocab");
  tj["model"].erase("merges");
  EXPECT_EQ(tj, g["tokenizer_skeleton"]) << tj.dump(1);
  EXPECT_EQ(vocab.size(), g["vocab_size"].get<size_t>());
  for (const auto& e : g["vocab_sample"]) EXPECT_EQ(vocab[e[0].get<std::string>()], e[1]) << e;
  EXPECT_EQ(merges.size(), g["merges_count"].get<size_t>());
  for (size_t k = 0; k < g["merges_sample"].size(); ++k)
    EXPECT_EQ(merges[k * 101], g["merges_sample"][k]) << k;

  // Tensors: the names transformers loads, with the same f32 bits.
  EXPECT_TRUE(g["loading_info"]["missing_keys"].empty());
  EXPECT_TRUE(g["loading_info"]["unexpected_keys"].empty());
  size_t matched = 0;
  for (const auto& [name, want] : g["tensors"].items()) {
    auto it = hf.state_dict.find(name);
    if (name == "lm_head.weight" && it == hf.state_dict.end()) continue;  // tied
    ASSERT_NE(it, hf.state_dict.end()) << name;
    EXPECT_EQ(it->second.shape(), want["shape"].get<Shape>()) << name;
    EXPECT_EQ(wsum64(it->second), want["wsum64"].get<std::string>()) << name;
    ++matched;
  }
  EXPECT_EQ(matched, hf.state_dict.size());
}

TEST(GgufConvertSmolLM2, TokenIdsMatchTransformers) {
  if (!smol()) GTEST_SKIP() << "SmolLM2 GGUF or smollm2_hf.json absent";
  const json& g = smol()->golden;
  const GgufFile f = GgufFile::open(smol()->path);
  const auto t = tok::Tokenizer::from_json(tasks::gguf_tokenizer_json(f));
  for (size_t k = 0; k < g["sentences"].size(); ++k) {
    const std::string s = g["sentences"][k].get<std::string>();
    const auto ids = t.encode(s).ids;
    EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), g["ids"][k].get<std::vector<int64_t>>())
        << "'" << s << "'";
    EXPECT_EQ(t.decode(ids, false), g["decoded"][k].get<std::string>()) << "'" << s << "'";
  }
}

TEST(GgufConvertSmolLM2, FolderThenGgufGivesBackTheSameTokenizerAndTensors) {
  if (!smol()) GTEST_SKIP() << "SmolLM2 GGUF or smollm2_hf.json absent";
  TempDir dir;
  const GgufFile orig = GgufFile::open(smol()->path);
  {
    const tasks::HfFromGguf hf = tasks::gguf_to_hf(orig);
    tasks::write_hf_folder(hf, dir / "hf");
  }
  for (const char* name : {"config.json", "generation_config.json", "model.safetensors",
                           "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"})
    EXPECT_TRUE(std::filesystem::exists(dir.path / "hf" / name)) << name;
  const auto t = tok::Tokenizer::from_pretrained(dir.path / "hf");
  EXPECT_EQ(t.encode("<|im_start|>user\nhi<|im_end|>").ids.size(), 5u);

  tasks::hf_to_gguf(dir / "hf", dir / "back.gguf", GgmlType::F32);
  const GgufFile back = GgufFile::open(dir / "back.gguf");
  for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"})
    EXPECT_EQ(back.at(key).as_strings(key), orig.at(key).as_strings(key)) << key;
  EXPECT_EQ(back.at("tokenizer.ggml.token_type").as_ints("t"),
            orig.at("tokenizer.ggml.token_type").as_ints("t"));
  for (const char* key :
       {"llama.block_count", "llama.context_length", "llama.embedding_length",
        "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
        "llama.vocab_size", "llama.rope.dimension_count", "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id"})
    EXPECT_EQ(back.at(key).as_int(key), orig.at(key).as_int(key)) << key;
  for (const char* key : {"llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon"})
    EXPECT_EQ(back.at(key).as_float(key), orig.at(key).as_float(key)) << key;
  EXPECT_EQ(back.at("tokenizer.chat_template").as_string("c"),
            orig.at("tokenizer.chat_template").as_string("c"));
  EXPECT_EQ(back.at("tokenizer.ggml.add_bos_token").as_bool("a"), false);
  ASSERT_EQ(back.tensors().size(), orig.tensors().size());
  for (const auto& ti : orig.tensors()) {
    const GgufTensorInfo* b = back.find_tensor(ti.name);
    ASSERT_NE(b, nullptr) << ti.name;
    EXPECT_EQ(b->type, GgmlType::F32);
    expect_bits_equal(back.dequantize(*b), orig.dequantize(ti), ti.name);
  }
}

}  // namespace
}  // namespace lmf::io::test
