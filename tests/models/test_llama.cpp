// LLaMA family (LLaMA with GQA and rope_scaling linear/llama3/dynamic, Qwen2, Mistral with a
// sliding window) against transformers: tiny random checkpoints and goldens from
// scripts/reference/gen_decoder_goldens.py. Logits with left padding, the KV cache against the
// full forward, loss and gradients, sequence classification, config.json round trip, bad input.
#include <gtest/gtest.h>

#include <filesystem>

#include "lmforge/models/llama.h"
#include "lmforge/models/registry.h"
#include "models/decoder_test_util.h"

namespace lmf::models::test {
namespace {

std::unique_ptr<DecoderModel> load_llama(const std::string& name, const std::string& arch = "",
                                         int64_t num_labels = 0) {
  const std::string dir = decoder_fixture(name);
  LlamaConfig c = LlamaConfig::from_json(read_text(dir + "/config.json"), dir + "/config.json");
  if (num_labels > 0) {
    c.num_labels = num_labels;
    c.id2label.clear();
    c.label2id.clear();
  }
  auto m = make_llama_model(c, arch.empty() ? c.architectures.at(0) : arch);
  m->load(io::load_checkpoint_dir(dir), {}, name);
  m->eval();
  return m;
}

DecoderInputs golden_inputs(const json& g, bool with_positions = true) {
  DecoderInputs in;
  in.input_ids = golden_tensor(g.at("input_ids"));
  in.attention_mask = golden_tensor(g.at("attention_mask"));
  if (with_positions) in.position_ids = golden_tensor(g.at("position_ids"));
  return in;
}

void expect_logits_match(const Tensor& logits, const json& g, const std::string& what) {
  const Tensor mask = golden_tensor(g.at("attention_mask"));
  EXPECT_LE(max_abs_diff_masked(logits_head(logits), golden_tensor(g.at("logits_head")), mask),
            1e-4)
      << what << ": logits[..., :128]";
  EXPECT_LE(max_abs_diff_masked(logsumexp_last(logits), golden_tensor(g.at("logits_lse")), mask),
            1e-4)
      << what << ": logsumexp over the vocabulary";
  const auto am = argmax(logits, -1).to_vector<int64_t>();
  const auto gm = golden_tensor(g.at("logits_argmax")).to_vector<int64_t>();
  const auto m = mask.to_vector<int64_t>();
  for (size_t i = 0; i < am.size(); ++i)
    if (m[i]) EXPECT_EQ(am[i], gm[i]) << what << ": argmax at " << i;
}

std::string c_arch_prefix(const std::string& fixture) {
  return fixture == "qwen2" ? "Qwen2" : fixture == "mistral" ? "Mistral" : "Llama";
}

class LlamaFamily : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Fixtures, LlamaFamily,
                         ::testing::Values("llama", "llama_rope_linear", "llama_rope_llama3",
                                           "llama_rope_dynamic", "qwen2", "mistral"));

TEST_P(LlamaFamily, LogitsWithLeftPaddingMatchTransformers) {
  const json g = read_decoder_golden(GetParam());
  auto m = load_llama(GetParam());
  EXPECT_TRUE(m->is_causal_lm());
  NoGradGuard ng;
  expect_logits_match(m->forward(golden_inputs(g)).logits, g, GetParam());
  // Without position ids the model makes them as generate() does (cumsum of the mask - 1).
  expect_logits_match(m->forward(golden_inputs(g, false)).logits, g, GetParam() + " default pos");
  // Hidden states as transformers 5.x: embeddings, each layer, the last one normed.
  DecoderInputs hs = golden_inputs(g);
  hs.output_hidden_states = true;
  const DecoderOutput o = m->forward(hs);
  ASSERT_EQ(o.hidden_states.size(), 3u);
  EXPECT_TRUE(o.hidden_states.back().same(o.last_hidden_state));
  // Packed inference weights give the same numbers.
  m->prepare_inference();
  expect_logits_match(m->forward(golden_inputs(g)).logits, g, GetParam() + " prepared");
}

TEST_P(LlamaFamily, CachedDecodingEqualsFullForward) {
  const json g = read_decoder_golden(GetParam());
  auto m = load_llama(GetParam());
  m->prepare_inference();
  NoGradGuard ng;
  const DecoderInputs full = golden_inputs(g, false);
  const Tensor ref = m->forward(full).logits;
  const int64_t B = full.input_ids.size(0), S = full.input_ids.size(1), prefill = 5;
  KVCache cache = m->make_cache(B, S);
  std::vector<Tensor> steps;
  for (int64_t start = 0; start < S;) {
    const int64_t n = start == 0 ? prefill : 1;
    DecoderInputs in;
    in.input_ids = full.input_ids.narrow(1, start, n).contiguous();
    in.attention_mask = full.attention_mask.narrow(1, 0, start + n).contiguous();
    in.cache = &cache;
    steps.push_back(m->forward(in).logits);
    start += n;
    EXPECT_EQ(cache.length(), start);
  }
  const Tensor inc = concat(steps, 1);
  // Dynamic NTK rope recomputes the frequencies from each forward's longest position, so keys
  // cached by shorter calls were rotated with other frequencies than a full forward's; this is
  // transformers' behaviour too (its cache holds rotated keys), so only the others must agree.
  if (GetParam() == "llama_rope_dynamic") return;
  EXPECT_LE(max_abs_diff_masked(inc, ref, full.attention_mask), 1e-4);
  expect_logits_match(inc, g, GetParam() + " through the cache");
  // logits_to_keep = 1 gives the last position only.
  DecoderInputs last = full;
  last.logits_to_keep = 1;
  const Tensor l1 = m->forward(last).logits;
  ASSERT_EQ(l1.size(1), 1);
  EXPECT_LE(max_abs_diff_masked(l1, ref.narrow(1, S - 1, 1).contiguous(),
                                Tensor::ones({B, 1}, DType::i64)),
            1e-5);
  // A pruned last layer (generate's prefill: only the kept positions after the last layer's
  // keys/values; with Mistral's sliding window the mask rows are narrowed too) gives the same
  // kept logits and caches the same keys/values: the next step agrees as well.
  for (const int64_t keep : {int64_t{1}, int64_t{2}}) {
    KVCache pruned_cache = m->make_cache(B, S), full_cache = m->make_cache(B, S);
    DecoderInputs p;
    p.input_ids = full.input_ids.narrow(1, 0, S - 1).contiguous();
    p.attention_mask = full.attention_mask.narrow(1, 0, S - 1).contiguous();
    p.logits_to_keep = keep;
    p.cache = &full_cache;
    const Tensor want = m->forward(p).logits;
    p.cache = &pruned_cache;
    p.prune_last_layer = true;
    const DecoderOutput got = m->forward(p);
    ASSERT_EQ(got.logits.shape(), want.shape());
    EXPECT_EQ(got.last_hidden_state.size(1), keep);
    EXPECT_LE(max_abs_diff_masked(got.logits, want, Tensor::ones({B, keep}, DType::i64)), 1e-5)
        << "keep " << keep;
    DecoderInputs next;
    next.input_ids = full.input_ids.narrow(1, S - 1, 1).contiguous();
    next.attention_mask = full.attention_mask;
    next.cache = &pruned_cache;
    const Tensor a = m->forward(next).logits;
    next.cache = &full_cache;
    EXPECT_LE(max_abs_diff_masked(a, m->forward(next).logits, Tensor::ones({B, 1}, DType::i64)),
              1e-5);
  }
}

TEST_P(LlamaFamily, LossAndGradientsMatchTransformers) {
  const json g = read_decoder_golden(GetParam());
  auto m = load_llama(GetParam());
  DecoderLabels labels;
  labels.labels = golden_tensor(g.at("labels"));
  const DecoderOutput out = m->forward(golden_inputs(g), labels);
  ASSERT_TRUE(out.loss.defined());
  const double want = g.at("loss").get<double>();
  EXPECT_LE(std::abs(out.loss.item() - want) / std::abs(want), 1e-5);
  out.loss.backward();
  for (const auto& [name, gj] : g.at("grads").items()) {
    const Tensor grad = m->parameter(name).grad();
    ASSERT_TRUE(grad.defined()) << name;
    EXPECT_LE(rel_diff(grad, golden_tensor(gj)), 1e-3) << name;
  }
}

TEST_P(LlamaFamily, SequenceClassificationMatchesTransformers) {
  const json g = read_decoder_golden(GetParam());
  const json& sc = g.at("seqcls");
  const std::string name = GetParam();
  const LlamaConfig c = LlamaConfig::from_json(read_text(decoder_fixture(name) + "/config.json"));
  const std::string arch = c.variant == LlamaVariant::qwen2     ? "Qwen2ForSequenceClassification"
                           : c.variant == LlamaVariant::mistral ? "MistralForSequenceClassification"
                                                                : "LlamaForSequenceClassification";
  auto m = load_llama(name, arch, sc.at("num_labels").get<int64_t>());
  m->parameter("score.weight").copy_(golden_tensor(sc.at("score_weight")));
  NoGradGuard ng;
  const Tensor logits = m->forward(golden_inputs(g)).logits;
  EXPECT_LE(rel_diff(logits, golden_tensor(sc.at("logits"))), 1e-4);
}

TEST_P(LlamaFamily, ConfigRoundTripIsByteIdentical) {
  const std::string text = read_text(decoder_fixture(GetParam()) + "/config.json");
  const LlamaConfig c = LlamaConfig::from_json(text);
  EXPECT_EQ(c.to_json(c.architectures.at(0)), text);
  auto m = load_llama(GetParam());
  EXPECT_EQ(m->config_json(), text);
}

// The registry builds the checkpoint's architecture from config.json; save_pretrained writes
// config.json and model.safetensors byte for byte as transformers did.
TEST_P(LlamaFamily, RegistryLoadAndSavePretrainedAreByteIdentical) {
  const std::string dir = decoder_fixture(GetParam());
  LoadReport rep;
  auto m = load_pretrained_as<DecoderModel>(dir, "a decoder", {}, &rep);
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_TRUE(rep.unexpected_keys.empty()) << rep.summary();
  const json g = read_decoder_golden(GetParam());
  {
    NoGradGuard ng;
    expect_logits_match(m->forward(golden_inputs(g)).logits, g, GetParam() + " via registry");
  }
  expect_saved_like(*m, dir, GetParam());
  // The base model takes the head's checkpoint (prefix "model." removed, lm_head unexpected)
  // and gives the head's hidden states.
  LoadOptions base;
  base.architecture = c_arch_prefix(GetParam()) + "Model";
  auto b = load_pretrained_as<DecoderModel>(dir, "a decoder", base, &rep);
  EXPECT_EQ(b->architecture(), base.architecture);
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  NoGradGuard ng;
  const DecoderOutput hb = b->forward(golden_inputs(g)), hm = m->forward(golden_inputs(g));
  EXPECT_LE(rel_diff(hb.last_hidden_state, hm.last_hidden_state), 1e-6);
  EXPECT_FALSE(b->is_causal_lm());
}

TEST(Llama, LegacyRopeScalingIsWrittenAsRopeParameters) {
  // transformers 5.x reads rope_theta + rope_scaling and writes rope_parameters, keeping a legacy
  // "type" key (checked with transformers 5.25: LlamaConfig.from_dict(...).save_pretrained).
  const LlamaConfig c = LlamaConfig::from_json(
      R"({"model_type": "llama", "rope_theta": 100000.0, "rope_scaling": {"type": "dynamic",
      "factor": 2.0}, "torch_dtype": "bfloat16", "foo": 3})");
  EXPECT_EQ(c.rope.rope_type, "dynamic");
  EXPECT_EQ(c.rope.rope_theta, 100000.0);
  const json j = json::parse(c.to_json("LlamaForCausalLM"));
  EXPECT_EQ(j.at("rope_parameters"),
            json::parse(R"({"factor": 2.0, "rope_theta": 100000.0, "rope_type": "dynamic",
                            "type": "dynamic"})"));
  EXPECT_FALSE(j.contains("rope_scaling"));
  EXPECT_FALSE(j.contains("rope_theta"));
  EXPECT_EQ(j.at("foo"), 3);
  EXPECT_EQ(j.at("num_key_value_heads"), 32);
  EXPECT_EQ(j.at("head_dim"), 128);
}

TEST(Llama, BadConfigsAndInputsAreClearErrors) {
  try {
    LlamaConfig::from_json(R"({"model_type": "llama", "rope_scaling": {"rope_type": "yarn",
                           "factor": 4.0}})",
                           "cfg.json");
    ADD_FAILURE() << "yarn accepted";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'yarn'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(LlamaConfig::from_json(R"({"model_type": "llama", "rope_scaling":
                                      {"rope_type": "linear"}})"),
               ValueError);  // no factor
  EXPECT_THROW(LlamaConfig::from_json(R"({"model_type": "gpt2"})"), ValueError);
  EXPECT_THROW(LlamaConfig::from_json(R"({"num_attention_heads": 6, "num_key_value_heads": 4})"),
               ValueError);
  auto m = load_llama("llama");
  // A checkpoint tensor of the wrong shape names the key.
  nn::StateDict bad = io::load_checkpoint_dir(decoder_fixture("llama"));
  bad["model.norm.weight"] = Tensor::ones({7});
  try {
    m->load(bad, {}, "bad");
    ADD_FAILURE() << "mismatched tensor accepted";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight"), std::string::npos) << e.what();
  }
  // A cache longer than the model's positions, a cache too small, a mask of the wrong length.
  EXPECT_THROW(m->make_cache(1, m->spec().max_positions + 1), ValueError);
  KVCache small = m->make_cache(1, 4);
  DecoderInputs in;
  in.input_ids = Tensor::from_vector<int64_t>({5, 6, 7, 8, 9}, {1, 5});
  in.cache = &small;
  NoGradGuard ng;
  EXPECT_THROW(m->forward(in), ValueError);
  in.cache = nullptr;
  in.attention_mask = Tensor::ones({1, 4}, DType::i64);
  EXPECT_THROW(m->forward(in), ShapeError);
  in.attention_mask = Tensor();
  in.input_ids = Tensor::from_vector<int64_t>({5, 3000}, {1, 2});
  EXPECT_THROW(m->forward(in), IndexError);
}

// ---- KV cache -----------------------------------------------------------------------------------

TEST(KVCache, PreallocatesAndReordersAndTruncates) {
  KVCache c(3, 2, 2, 4, 8);
  EXPECT_EQ(c.num_layers(), 3);
  EXPECT_EQ(c.capacity(), 8);
  EXPECT_EQ(c.bytes(), size_t(3 * 2 * 2 * 2 * 8 * 4 * 4));
  const void* before = c.keys(0).data_ptr();
  for (int64_t b = 0; b < 2; ++b)
    c.keys(1).select(0, b).narrow(1, 0, 3).fill_(static_cast<double>(b + 1));
  c.advance(3);
  EXPECT_EQ(c.keys(0).data_ptr(), before);  // advancing never reallocates
  EXPECT_THROW(c.advance(6), ValueError);
  c.reorder({1, 1, 0});
  EXPECT_EQ(c.batch(), 3);
  EXPECT_EQ(c.keys(1).at({0, 0, 2, 0}), 2.0);
  EXPECT_EQ(c.keys(1).at({1, 1, 1, 3}), 2.0);
  EXPECT_EQ(c.keys(1).at({2, 0, 0, 0}), 1.0);
  EXPECT_THROW(c.reorder({3}), IndexError);
  c.truncate(1);
  EXPECT_EQ(c.length(), 1);
  EXPECT_THROW(c.truncate(2), ValueError);
  c.reset();
  EXPECT_EQ(c.length(), 0);
}

// Beam-search reorders (same batch size: rows relabelled, a source taken twice copied into a
// free buffer row; shrinking: compacted into a new buffer) all give row b the old row rows[b], in
// every layer, for keys and values; a buffer someone else still holds is never written.
TEST(KVCache, ReorderInPlaceAndByCopyAgreeWithAGather) {
  manual_seed(5);
  const int64_t L = 2, B = 8, H = 2, D = 4, cap = 6, len = 5;
  KVCache c(L, B, H, D, cap);
  for (int64_t l = 0; l < L; ++l) {
    c.keys(l).copy_(randn({B, H, cap, D}));
    c.values(l).copy_(randn({B, H, cap, D}));
  }
  c.advance(len);
  // Row contents as they should be: [layer][k/v][row] -> the first len positions.
  auto rows_of = [&](KVCache& kv) {
    std::vector<std::vector<std::vector<std::vector<float>>>> r(L);
    for (int64_t l = 0; l < L; ++l)
      for (Tensor* t : {&kv.keys(l), &kv.values(l)}) {
        std::vector<std::vector<float>> rs;
        for (int64_t b = 0; b < kv.batch(); ++b)
          rs.push_back(
              t->select(0, kv.physical_row(b)).narrow(1, 0, len).contiguous().to_vector<float>());
        r[l].push_back(rs);
      }
    return r;
  };
  const std::vector<std::vector<int64_t>> orders = {
      {0, 0, 2, 3, 4, 5, 6, 7},  // one row moves
      {1, 0, 2, 3, 4, 5, 6, 7},  // a swap: both sources are overwritten
      {2, 0, 1, 3, 4, 5, 6, 7},  // a cycle
      {0, 1, 2, 3, 3, 3, 6, 6},  // duplicates
      {7, 6, 5, 4, 3, 2, 1, 0},  // everything moves (copy path)
      {1, 1, 0, 3, 4, 5, 6, 7},
      {3, 3, 0}};                // shrinking
  for (const auto& order : orders) {
    const auto before = rows_of(c);
    const void* k0 = c.keys(0).data_ptr();
    c.reorder(order);
    ASSERT_EQ(c.batch(), static_cast<int64_t>(order.size()));
    const auto after = rows_of(c);
    for (int64_t l = 0; l < L; ++l)
      for (int kv = 0; kv < 2; ++kv)
        for (size_t b = 0; b < order.size(); ++b)
          EXPECT_EQ(after[l][kv][b], before[l][kv][order[b]])
              << "order " << ::testing::PrintToString(order) << " layer " << l << " row " << b;
    if (order.size() == 8) {
      EXPECT_EQ(c.keys(0).data_ptr(), k0);  // relabelled in place
    } else {
      for (int64_t b = 0; b < c.batch(); ++b) EXPECT_EQ(c.physical_row(b), b);  // compacted
    }
  }
  // A held buffer: the reorder copies instead of writing into it.
  KVCache d(1, 4, 1, 2, 3);
  d.keys(0).copy_(randn({4, 1, 3, 2}));
  d.values(0).copy_(randn({4, 1, 3, 2}));
  d.advance(2);
  const Tensor held = d.keys(0);
  const std::vector<float> snapshot = held.to_vector<float>();
  d.reorder({0, 0, 2, 3});
  EXPECT_EQ(held.to_vector<float>(), snapshot);
  EXPECT_EQ(d.keys(0).select(0, d.physical_row(1)).narrow(1, 0, 2).contiguous().to_vector<float>(),
            held.select(0, 0).narrow(1, 0, 2).contiguous().to_vector<float>());
}

// The attention writes the new keys into the preallocated buffers in place and reads them
// back: the same output as the growing (concatenating) cache.
TEST(KVCache, PreallocatedAttentionEqualsConcatenatingCache) {
  manual_seed(3);
  nn::AttentionConfig ac = nn::AttentionConfig::llama(16, 4, 2, 10000.0);
  nn::MultiHeadAttention attn(ac);
  attn.eval();
  NoGradGuard ng;
  const Tensor x = randn({2, 6, 16});
  nn::KVCache grow;
  KVCache pre(1, 2, 2, 4, 6);
  std::vector<Tensor> a, b;
  for (int64_t t = 0; t < 6; t += (t == 0 ? 3 : 1)) {
    const int64_t n = t == 0 ? 3 : 1;
    nn::AttentionInputs in;
    in.options.causal = true;
    in.cache = &grow;
    a.push_back(attn.forward(x.narrow(1, t, n), in).out);
    nn::KVCache layer = pre.layer(0);
    in.cache = &layer;
    b.push_back(attn.forward(x.narrow(1, t, n), in).out);
    pre.advance(n);
  }
  EXPECT_LE(rel_diff(concat(b, 1), concat(a, 1)), 1e-5);
}

}  // namespace
}  // namespace lmf::models::test
