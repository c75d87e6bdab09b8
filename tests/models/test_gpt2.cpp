// GPT-2 against transformers: a tiny random checkpoint and goldens from
// scripts/reference/gen_decoder_goldens.py (Conv1D layout, learned positions, tied LM head,
// scale_attn_by_inverse_layer_idx). Logits with left padding, the KV cache against the full
// forward, loss and gradients, sequence classification, config.json round trip, bad input.
#include <gtest/gtest.h>

#include <filesystem>

#include "lmforge/models/gpt2.h"
#include "lmforge/models/registry.h"
#include "models/decoder_test_util.h"

namespace lmf::models::test {
namespace {

std::unique_ptr<DecoderModel> load_gpt2(const std::string& arch = "GPT2LMHeadModel",
                                        int64_t num_labels = 0) {
  const std::string dir = decoder_fixture("gpt2");
  GPT2Config c = GPT2Config::from_json(read_text(dir + "/config.json"), dir + "/config.json");
  if (num_labels > 0) {
    c.num_labels = num_labels;
    c.id2label.clear();
    c.label2id.clear();
  }
  auto m = make_gpt2_model(c, arch);
  m->load(io::load_checkpoint_dir(dir), {}, "gpt2");
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
      << what;
  EXPECT_LE(max_abs_diff_masked(logsumexp_last(logits), golden_tensor(g.at("logits_lse")), mask),
            1e-4)
      << what;
}

TEST(Gpt2, LogitsWithLeftPaddingMatchTransformers) {
  const json g = read_decoder_golden("gpt2");
  auto m = load_gpt2();
  NoGradGuard ng;
  expect_logits_match(m->forward(golden_inputs(g)).logits, g, "explicit positions");
  expect_logits_match(m->forward(golden_inputs(g, false)).logits, g, "default positions");
  m->prepare_inference();
  expect_logits_match(m->forward(golden_inputs(g)).logits, g, "prepared");
}

TEST(Gpt2, CachedDecodingEqualsFullForward) {
  const json g = read_decoder_golden("gpt2");
  auto m = load_gpt2();
  m->prepare_inference();
  NoGradGuard ng;
  const DecoderInputs full = golden_inputs(g, false);
  const Tensor ref = m->forward(full).logits;
  const int64_t B = full.input_ids.size(0), S = full.input_ids.size(1);
  KVCache cache = m->make_cache(B, S);
  std::vector<Tensor> steps;
  for (int64_t start = 0; start < S;) {
    const int64_t n = start == 0 ? 4 : 1;
    DecoderInputs in;
    in.input_ids = full.input_ids.narrow(1, start, n).contiguous();
    in.attention_mask = full.attention_mask.narrow(1, 0, start + n).contiguous();
    in.cache = &cache;
    steps.push_back(m->forward(in).logits);
    start += n;
  }
  EXPECT_LE(max_abs_diff_masked(concat(steps, 1), ref, full.attention_mask), 1e-4);
}

TEST(Gpt2, LossAndGradientsMatchTransformers) {
  const json g = read_decoder_golden("gpt2");
  auto m = load_gpt2();
  DecoderLabels labels;
  labels.labels = golden_tensor(g.at("labels"));
  const DecoderOutput out = m->forward(golden_inputs(g), labels);
  const double want = g.at("loss").get<double>();
  EXPECT_LE(std::abs(out.loss.item() - want) / std::abs(want), 1e-5);
  out.loss.backward();
  for (const auto& [name, gj] : g.at("grads").items()) {
    const Tensor grad = m->parameter(name).grad();
    ASSERT_TRUE(grad.defined()) << name;
    EXPECT_LE(rel_diff(grad, golden_tensor(gj)), 1e-3) << name;
  }
}

TEST(Gpt2, SequenceAndTokenClassification) {
  const json g = read_decoder_golden("gpt2");
  const json& sc = g.at("seqcls");
  auto m = load_gpt2("GPT2ForSequenceClassification", sc.at("num_labels").get<int64_t>());
  m->parameter("score.weight").copy_(golden_tensor(sc.at("score_weight")));
  NoGradGuard ng;
  EXPECT_LE(rel_diff(m->forward(golden_inputs(g)).logits, golden_tensor(sc.at("logits"))), 1e-4);
  auto tok = load_gpt2("GPT2ForTokenClassification", 5);
  const Tensor logits = tok->forward(golden_inputs(g)).logits;
  EXPECT_EQ(logits.shape(), (Shape{2, 10, 5}));
  EXPECT_FALSE(tok->is_causal_lm());
}

TEST(Gpt2, ConfigRoundTripIsByteIdentical) {
  const std::string text = read_text(decoder_fixture("gpt2") + "/config.json");
  const GPT2Config c = GPT2Config::from_json(text);
  EXPECT_EQ(c.to_json("GPT2LMHeadModel"), text);
  EXPECT_EQ(load_gpt2()->config_json(), text);
  // Labels and unknown keys survive; the defaults of an empty config are GPT2Config's.
  const GPT2Config d =
      GPT2Config::from_json(R"({"model_type": "gpt2", "num_labels": 3, "n_ctx": 1024})");
  const json j = json::parse(d.to_json("GPT2ForSequenceClassification"));
  EXPECT_EQ(j.at("id2label").size(), 3u);
  EXPECT_EQ(j.at("n_ctx"), 1024);
  EXPECT_EQ(j.at("n_embd"), 768);
  EXPECT_EQ(j.at("eos_token_id"), 50256);
}

TEST(Gpt2, RegistryLoadAndSavePretrainedAreByteIdentical) {
  const std::string dir = decoder_fixture("gpt2");
  LoadReport rep;
  auto m = load_pretrained_as<DecoderModel>(dir, "a decoder", {}, &rep);
  EXPECT_EQ(m->architecture(), "GPT2LMHeadModel");
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_TRUE(rep.unexpected_keys.empty()) << rep.summary();
  const json g = read_decoder_golden("gpt2");
  {
    NoGradGuard ng;
    expect_logits_match(m->forward(golden_inputs(g)).logits, g, "via registry");
  }
  expect_saved_like(*m, dir, "gpt2");
  // An old checkpoint's attention buffers are dropped silently.
  nn::StateDict old = io::load_checkpoint_dir(dir);
  old["transformer.h.0.attn.bias"] = Tensor::ones({1, 1, 32, 32});
  old["transformer.h.1.attn.masked_bias"] = Tensor::scalar(-1e4);
  const LoadReport r2 = m->load(old, {}, "old");
  EXPECT_TRUE(r2.unexpected_keys.empty()) << r2.summary();
  // The sequence classifier from the LM checkpoint: score is new (initialised, reported).
  LoadOptions seq;
  seq.architecture = "GPT2ForSequenceClassification";
  auto s = load_pretrained_as<DecoderModel>(dir, "a decoder", seq, &rep);
  ASSERT_EQ(rep.missing_keys.size(), 1u);
  EXPECT_EQ(rep.missing_keys[0], "score.weight");
}

TEST(Gpt2, OldAttentionBuffersAreNotWeightsAndBadInputIsClear) {
  auto m = load_gpt2();
  const LoadSpec spec = m->load_spec();
  EXPECT_EQ(spec.base_prefix, "transformer");
  ASSERT_EQ(spec.tied.size(), 1u);
  EXPECT_EQ(spec.tied[0].first, "lm_head.weight");
  bool ignores_bias = false;
  for (const auto& s : spec.ignored_suffixes)
    ignores_bias |= std::string("transformer.h.0.attn.bias").ends_with(s) &&
                    !std::string("transformer.h.0.attn.c_attn.bias").ends_with(s);
  EXPECT_TRUE(ignores_bias);
  // The tied head shares the embedding.
  EXPECT_EQ(m->parameter("lm_head.weight").data_ptr(),
            m->parameter("transformer.wte.weight").data_ptr());
  NoGradGuard ng;
  DecoderInputs in;
  const int64_t P = m->spec().max_positions;  // the fixture's n_positions
  std::vector<int64_t> ids(P + 1, 5);
  in.input_ids = Tensor::from_vector(ids, {1, P + 1});
  try {
    m->forward(in);
    ADD_FAILURE() << "a prompt longer than n_positions accepted";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("n_positions = " + std::to_string(P)), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(m->make_cache(1, P + 1), ValueError);
  EXPECT_THROW(GPT2Config::from_json(R"({"model_type": "gpt2", "n_embd": 30, "n_head": 4})"),
               ValueError);
  EXPECT_THROW(GPT2Config::from_json(R"({"model_type": "gpt2", "activation_function": "nope"})"),
               ValueError);
}

}  // namespace
}  // namespace lmf::models::test
