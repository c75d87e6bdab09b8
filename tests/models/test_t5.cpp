// T5 family (T5ForConditionalGeneration, T5Model, T5EncoderModel) against transformers 5.25: tiny
// seeded checkpoints and goldens from scripts/reference/gen_t5_goldens.py (tests/fixtures/t5/).
// Relative position buckets, logits with source and target padding, the cached decoder against
// the full forward, loss, gradients and one AdamW step, load -> save byte identity, bad input.
#include <gtest/gtest.h>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/models/registry.h"
#include "lmforge/models/t5.h"
#include "lmforge/optim/adamw.h"
#include "models/decoder_test_util.h"
#include "models/seq2seq_test_util.h"

namespace lmf::models::test {
namespace {

std::string t5_fixture(const std::string& name) {
  return std::string(LMF_FIXTURES_DIR) + "/t5/" + name;
}
json read_t5_golden(const std::string& name) {
  return json::parse(read_text(t5_fixture(name) + "/golden.json"));
}
T5Config t5_config(const std::string& name) {
  return T5Config::from_json(read_text(t5_fixture(name) + "/config.json"));
}

std::unique_ptr<EncoderDecoderModel> load_t5(const std::string& name, const LoadOptions& opt = {},
                                             LoadReport* rep = nullptr) {
  return load_seq2seq(t5_fixture(name), opt, rep);
}

TEST(T5, RelativePositionBucketsEqualTransformers) {
  const json all = json::parse(read_text(t5_fixture("buckets.json")));
  ASSERT_GE(all.size(), 6u);
  for (const json& c : all) {
    const bool bidi = c.at("bidirectional");
    const int64_t nb = c.at("num_buckets"), md = c.at("max_distance"), first = c.at("first");
    const auto want = c.at("buckets").get<std::vector<int64_t>>();
    std::vector<int64_t> got;
    for (size_t i = 0; i < want.size(); ++i)
      got.push_back(t5_relative_position_bucket(first + static_cast<int64_t>(i), bidi, nb, md));
    EXPECT_EQ(got, want) << "bidirectional " << bidi << " buckets " << nb << " max " << md;
  }
}

class T5Family : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Fixtures, T5Family, ::testing::Values("t5_relu_tied", "t5_gated_untied"));

TEST_P(T5Family, LogitsWithPaddingMatchTransformers) {
  const json g = read_t5_golden(GetParam());
  LoadReport rep;
  auto m = load_t5(GetParam(), {}, &rep);
  EXPECT_EQ(m->architecture(), "T5ForConditionalGeneration");
  EXPECT_TRUE(m->is_seq2seq_lm());
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_TRUE(rep.unexpected_keys.empty()) << rep.summary();
  const T5Config c = t5_config(GetParam());
  // v1.0 ties lm_head to shared.weight; the v1.1 checkpoint holds its own lm_head.weight.
  EXPECT_EQ(dynamic_cast<T5Model&>(*m).lm_head_tied(), GetParam() == "t5_relu_tied");
  EXPECT_EQ(c.scale_decoder_outputs, GetParam() == "t5_relu_tied");
  expect_golden_logits(*m, g);
  expect_prepared_logits(*m, g);
}

// The decoder's relative bias with a cache: queries at past..past+T-1 (transformers'
// past_seen_tokens), one token per step after a 2-token prefix; and a beam-style reorder.
TEST_P(T5Family, CachedDecodingEqualsFullForward) {
  const json g = read_t5_golden(GetParam());
  auto m = load_t5(GetParam());
  m->prepare_inference();
  expect_cached_decoding_equals_full(*m, golden_inputs(g), golden_tensor(g.at("logits")));
  expect_grouped_encoder_rows_equal_repeated(*m, golden_inputs(g));
}

// Loss, gradients (the relative_attention_bias tables included: they get theirs through the
// attention's additive bias) and one AdamW step as torch.optim.AdamW takes it.
TEST_P(T5Family, LossGradientsAndOneAdamWStepMatchPyTorch) {
  const json g = read_t5_golden(GetParam());
  auto m = load_t5(GetParam());
  expect_golden_loss_and_grads(*m, g);
  optim::AdamWOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.01;
  optim::AdamW opt(m->parameters(), o);
  opt.step();
  for (const auto& [name, pj] : g.at("adamw").items())
    EXPECT_LE(rel_diff(m->parameter(name), golden_tensor(pj)), 1e-3) << name;
}

TEST_P(T5Family, GreedyLoopOnTheCacheEqualsTransformersGenerate) {
  const json g = read_t5_golden(GetParam());
  auto m = load_t5(GetParam());
  m->prepare_inference();
  const Seq2SeqSpec sp = m->spec();
  EXPECT_EQ(sp.decoder_start_token_id, 0);
  EXPECT_EQ(sp.pad_token_id, 0);
  EXPECT_EQ(sp.eos_token_ids, std::vector<int64_t>{1});
  EXPECT_EQ(sp.max_source_positions, 0);  // relative positions: no limit
  const Tensor want = golden_tensor(g.at("greedy"));
  EXPECT_EQ(greedy_on_cache(*m, golden_tensor(g.at("input_ids")),
                            golden_tensor(g.at("attention_mask")), want.size(1)),
            want.to_vector<int64_t>());
}

TEST_P(T5Family, TrainingModeDropoutAndGradientsFlow) {
  const json g = read_t5_golden(GetParam());
  auto m = load_t5(GetParam());
  const Seq2SeqOutput a = expect_training_dropout(*m, g);
  a.loss.backward();
  for (const auto& [name, p] : m->named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
}

TEST_P(T5Family, RegistryLoadAndSavePretrainedAreByteIdentical) {
  const std::string dir = t5_fixture(GetParam());
  const std::string text = read_text(dir + "/config.json");
  EXPECT_EQ(T5Config::from_json(text).to_json("T5ForConditionalGeneration"), text);
  auto m = load_t5(GetParam());
  EXPECT_EQ(m->config_json(), text);
  expect_saved_like(*m, dir, "t5_" + GetParam());
}

TEST_P(T5Family, BaseAndEncoderModelsTakeTheCheckpoint) {
  const json g = read_t5_golden(GetParam());
  LoadOptions base;
  base.architecture = "T5Model";
  LoadReport rep;
  auto b = load_t5(GetParam(), base, &rep);
  EXPECT_EQ(b->architecture(), "T5Model");
  EXPECT_FALSE(b->is_seq2seq_lm());
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  NoGradGuard ng;
  const Seq2SeqOutput o = b->forward(golden_inputs(g));
  EXPECT_FALSE(o.logits.defined());
  EXPECT_LE(max_abs(o.last_hidden_state, golden_tensor(g.at("decoder_last_hidden_state"))), 1e-4);
  LoadOptions enc;
  enc.architecture = "T5EncoderModel";
  auto e = load_t5(GetParam(), enc, &rep);
  EXPECT_EQ(e->architecture(), "T5EncoderModel");
  EXPECT_TRUE(rep.missing_keys.empty() && rep.unexpected_keys.empty()) << rep.summary();
  const Seq2SeqInputs in = golden_inputs(g);
  EXPECT_LE(encoder_diff(e->encode(in.input_ids, in.attention_mask).last_hidden_state, g), 1e-4);
  EXPECT_THROW(e->forward(in), ValueError);  // no decoder
}

TEST_P(T5Family, AttentionProbabilitiesForHeatmaps) {
  const json g = read_t5_golden(GetParam());
  auto m = load_t5(GetParam());
  const T5Config c = t5_config(GetParam());
  NoGradGuard ng;
  Seq2SeqInputs in = golden_inputs(g);
  in.output_attentions = true;
  const Seq2SeqOutput o = m->forward(in);
  ASSERT_EQ(static_cast<int64_t>(o.encoder_attentions.size()), c.num_layers);
  ASSERT_EQ(static_cast<int64_t>(o.decoder_attentions.size()), c.num_decoder_layers);
  ASSERT_EQ(static_cast<int64_t>(o.cross_attentions.size()), c.num_decoder_layers);
  const int64_t S = in.input_ids.size(1), T = in.decoder_input_ids.size(1);
  EXPECT_EQ(o.cross_attentions[0].shape(), (Shape{2, c.num_heads, T, S}));
  const auto cross = o.cross_attentions[0].contiguous().to_vector<float>();
  EXPECT_EQ(cross[(1 * c.num_heads * T) * S + S - 1], 0.0f);  // padded source
  const auto self = o.decoder_attentions[0].contiguous().to_vector<float>();
  EXPECT_EQ(self[1], 0.0f);  // causal
}

// transformers saves T5Model with shared + both stacks (embed_tokens tied, not saved).
TEST(T5, BaseModelFolderLoadsAndSavesByteIdentically) {
  const std::string dir = t5_fixture("t5_base");
  LoadOptions strict;
  strict.strict = true;
  LoadReport rep;
  auto b = load_pretrained_as<EncoderDecoderModel>(dir, "an encoder-decoder", strict, &rep);
  EXPECT_EQ(b->architecture(), "T5Model");
  expect_saved_like(*b, dir, "t5_base");
  const json g = read_t5_golden("t5_relu_tied");
  NoGradGuard ng;
  EXPECT_LE(max_abs(b->forward(golden_inputs(g)).last_hidden_state,
                    golden_tensor(g.at("decoder_last_hidden_state"))),
            1e-4);
  // The LM head takes the base folder: lm_head is shared.weight (tied), nothing missing.
  LoadOptions lm;
  lm.architecture = "T5ForConditionalGeneration";
  auto m = load_pretrained_as<EncoderDecoderModel>(dir, "an encoder-decoder", lm, &rep);
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_LE(max_abs(m->forward(golden_inputs(g)).logits, golden_tensor(g.at("logits"))), 1e-4);
}

// ---- bad input ----------------------------------------------------------------------------------

TEST(T5, BadConfigFieldsAreNamed) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      T5Config::from_json(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"model_type": "t5", "feed_forward_proj": "foo-gelu"})", "feed_forward_proj");
  expect_error(R"({"model_type": "t5", "feed_forward_proj": "gated-gelu-x"})", "feed_forward_proj");
  expect_error(R"({"model_type": "t5", "feed_forward_proj": "gated-nope"})", "nope");
  expect_error(R"({"model_type": "t5", "d_kv": 0})", "d_kv");
  expect_error(R"({"model_type": "t5", "relative_attention_num_buckets": 2})",
               "relative_attention_num_buckets");
  expect_error(R"({"model_type": "t5", "vocab_size": 10, "pad_token_id": 10})", "pad_token_id");
  expect_error(R"({"model_type": "t5", "dropout_rate": 1.5})", "dropout_rate");
  expect_error(R"({"model_type": "bart"})", "not t5");
  // The general gated-ACT form and an old config's tie_word_embeddings false.
  const T5Config c = T5Config::from_json(
      R"({"model_type": "t5", "feed_forward_proj": "gated-silu", "tie_word_embeddings": false,
          "num_layers": 3, "decoder_start_token_id": 0, "task_specific_params": {"x": 1}})");
  EXPECT_EQ(c.dense_act_fn(), "silu");
  EXPECT_TRUE(c.is_gated_act());
  EXPECT_FALSE(c.scale_decoder_outputs);
  EXPECT_EQ(c.num_decoder_layers, 3);
  const json out = json::parse(c.to_json("T5ForConditionalGeneration"));
  EXPECT_EQ(out.at("tie_word_embeddings"), true);
  EXPECT_EQ(out.at("scale_decoder_outputs"), false);
  EXPECT_EQ(out.at("decoder_start_token_id"), 0);
  EXPECT_EQ(out.at("task_specific_params"), json::parse(R"({"x": 1})"));
}

TEST(T5, BadInputsAreClearErrorsAndLongSourcesHaveNoLimit) {
  auto m = load_t5("t5_relu_tied");
  NoGradGuard ng;
  // No position table: a source far longer than the training lengths still runs.
  const Tensor ids = Tensor::full({1, 300}, 5.0, DType::i64);
  EXPECT_EQ(m->encode(ids).last_hidden_state.size(1), 300);
  Seq2SeqInputs in;
  in.input_ids = Tensor::full({1, 3}, 5.0, DType::i64);
  EXPECT_THROW(m->forward(in), ValueError);  // neither decoder_input_ids nor labels
  in.decoder_input_ids = Tensor::full({2, 3}, 5.0, DType::i64);
  EXPECT_THROW(m->forward(in), ShapeError);  // batch differs from the source
  in.decoder_input_ids = Tensor::full({1, 3}, 5.0, DType::i64);
  in.attention_mask = Tensor::ones({1, 4}, DType::i64);
  EXPECT_THROW(m->forward(in), ShapeError);
  in.attention_mask = Tensor();
  in.decoder_input_ids = Tensor::full({1, 3}, 500.0, DType::i64);  // outside the vocabulary
  EXPECT_ANY_THROW(m->forward(in));
  EXPECT_THROW(make_t5_model(T5Config{}, "T5ForQuestionAnswering"), ValueError);
}

TEST(T5, MissingTensorIsReportedAndWrongShapeNamed) {
  const std::string dir = t5_fixture("t5_relu_tied");
  nn::StateDict sd = io::load_checkpoint_dir(dir);
  const std::string text = read_text(dir + "/config.json");
  nn::StateDict missing = sd;
  missing.erase("decoder.block.1.layer.2.DenseReluDense.wo.weight");
  LoadReport rep;
  load_pretrained(text, missing, {}, &rep, "t5 (edited)");
  EXPECT_EQ(rep.missing_keys,
            std::vector<std::string>{"decoder.block.1.layer.2.DenseReluDense.wo.weight"});
  sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] =
      Tensor::zeros({32, 4});
  try {
    load_pretrained(text, sd, {}, nullptr, "t5 (edited)");
    FAIL() << "a wrong shape was accepted";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("relative_attention_bias"), std::string::npos);
  }
}

}  // namespace
}  // namespace lmf::models::test
