// Marian family (MarianMTModel, MarianModel) against transformers 5.25: tiny random checkpoints and
// goldens from scripts/reference/gen_marian_goldens.py (tests/fixtures/marian/<name>/). Logits and
// encoder states with source padding, the cached step-by-step decoder against the full forward,
// loss and gradients, load -> save byte identity, bad input.
#include <gtest/gtest.h>

#include <filesystem>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/models/marian.h"
#include "lmforge/models/registry.h"
#include "models/decoder_test_util.h"
#include "models/seq2seq_test_util.h"

namespace lmf::models::test {
namespace {

std::string marian_fixture(const std::string& name) {
  return std::string(LMF_FIXTURES_DIR) + "/marian/" + name;
}
json read_marian_golden(const std::string& name) {
  return json::parse(read_text(marian_fixture(name) + "/golden.json"));
}

std::unique_ptr<EncoderDecoderModel> load_marian(const std::string& name,
                                                 const LoadOptions& opt = {},
                                                 LoadReport* rep = nullptr) {
  return load_seq2seq(marian_fixture(name), opt, rep);
}

class MarianFamily : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Fixtures, MarianFamily,
                         ::testing::Values("marian", "marian_untied", "marian_shared_untied"));

TEST_P(MarianFamily, LogitsWithSourcePaddingMatchTransformers) {
  const json g = read_marian_golden(GetParam());
  LoadReport rep;
  auto m = load_marian(GetParam(), {}, &rep);
  EXPECT_EQ(m->architecture(), "MarianMTModel");
  EXPECT_TRUE(m->is_seq2seq_lm());
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_TRUE(rep.unexpected_keys.empty()) << rep.summary();
  expect_golden_logits(*m, g);
  expect_prepared_logits(*m, g);
}

TEST_P(MarianFamily, CachedDecodingEqualsFullForward) {
  const json g = read_marian_golden(GetParam());
  auto m = load_marian(GetParam());
  m->prepare_inference();
  const Seq2SeqInputs full = golden_inputs(g);
  Seq2SeqCache c2 = expect_cached_decoding_equals_full(*m, full, golden_tensor(g.at("logits")));
  expect_grouped_encoder_rows_equal_repeated(*m, full);
  NoGradGuard ng;
  const Tensor enc = m->encode(full.input_ids, full.attention_mask).last_hidden_state;
  Seq2SeqInputs other;
  other.encoder_hidden_states = enc.narrow(1, 0, 3).contiguous();
  other.attention_mask = full.attention_mask.narrow(1, 0, 3).contiguous();
  other.decoder_input_ids = full.decoder_input_ids.narrow(1, 0, 1).contiguous();
  other.cache = &c2;
  c2.self.truncate(1);
  EXPECT_THROW(m->forward(other), ValueError);  // cross keys are of a 7-position source
  c2.reset();
  EXPECT_EQ(c2.length(), 0);
  EXPECT_FALSE(c2.has_cross());
}

TEST_P(MarianFamily, LossAndGradientsMatchTransformers) {
  const json g = read_marian_golden(GetParam());
  auto m = load_marian(GetParam());
  expect_golden_loss_and_grads(*m, g);
  // The frozen sinusoids and final_logits_bias are buffers: no gradient, not trained.
  for (const auto& [name, t] : m->named_parameters())
    EXPECT_EQ(name.find("embed_positions"), std::string::npos) << name;
}

// The API carries a seq2seq greedy loop: encode once, start from decoder_start_token_id, one
// cached token per step (cross-attention K/V computed on the first): generate()'s tokens.
TEST_P(MarianFamily, GreedyLoopOnTheCacheEqualsTransformersGenerate) {
  const json g = read_marian_golden(GetParam());
  auto m = load_marian(GetParam());
  m->prepare_inference();
  const Tensor want = golden_tensor(g.at("greedy"));
  EXPECT_EQ(greedy_on_cache(*m, golden_tensor(g.at("input_ids")),
                            golden_tensor(g.at("attention_mask")), want.size(1)),
            want.to_vector<int64_t>());
}

// Training mode: dropout changes the loss (seeded: reproducible), and every parameter the forward
// uses gets a gradient.
TEST_P(MarianFamily, TrainingModeDropoutAndGradientsFlow) {
  const json g = read_marian_golden(GetParam());
  auto m = load_marian(GetParam());
  const MarianConfig c =
      MarianConfig::from_json(read_text(marian_fixture(GetParam()) + "/config.json"));
  // Shared but untied embeddings: model.shared is saved but the forward never reads it.
  expect_training_mode(*m, g, c.tie_word_embeddings ? "" : "model.shared.weight");
}

TEST_P(MarianFamily, ShiftTokensRightAsTransformers) {
  const json g = read_marian_golden(GetParam());
  const MarianConfig c =
      MarianConfig::from_json(read_text(marian_fixture(GetParam()) + "/config.json"));
  const Tensor s =
      shift_tokens_right(golden_tensor(g.at("labels")), *c.pad_token_id, c.decoder_start_token_id);
  EXPECT_EQ(s.to_vector<int64_t>(), golden_tensor(g.at("decoder_input_ids")).to_vector<int64_t>());
  EXPECT_THROW(shift_tokens_right(golden_tensor(g.at("labels")), -1, 0), ValueError);
}

// The registry builds MarianMTModel from config.json; save_pretrained writes config.json and
// model.safetensors byte for byte as transformers did (tied copies and sinusoids left out).
TEST_P(MarianFamily, RegistryLoadAndSavePretrainedAreByteIdentical) {
  const std::string dir = marian_fixture(GetParam());
  const std::string text = read_text(dir + "/config.json");
  const MarianConfig c = MarianConfig::from_json(text);
  EXPECT_EQ(c.to_json("MarianMTModel"), text);
  auto m = load_marian(GetParam());
  EXPECT_EQ(m->config_json(), text);
  expect_saved_like(*m, dir, "marian_" + GetParam());
}

TEST_P(MarianFamily, BaseModelTakesTheMTCheckpoint) {
  const json g = read_marian_golden(GetParam());
  LoadOptions base;
  base.architecture = "MarianModel";
  LoadReport rep;
  auto b = load_marian(GetParam(), base, &rep);
  EXPECT_EQ(b->architecture(), "MarianModel");
  EXPECT_FALSE(b->is_seq2seq_lm());
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_EQ(rep.prefix_change, "removed 'model.'");
  NoGradGuard ng;
  const Seq2SeqOutput o = b->forward(golden_inputs(g));
  EXPECT_FALSE(o.logits.defined());
  EXPECT_LE(max_abs(o.last_hidden_state, golden_tensor(g.at("decoder_last_hidden_state"))), 1e-4);
  EXPECT_LE(encoder_diff(o.encoder_last_hidden_state, g), 1e-4);
}

TEST_P(MarianFamily, AttentionProbabilitiesForHeatmaps) {
  const json g = read_marian_golden(GetParam());
  auto m = load_marian(GetParam());
  const MarianConfig c =
      MarianConfig::from_json(read_text(marian_fixture(GetParam()) + "/config.json"));
  NoGradGuard ng;
  Seq2SeqInputs in = golden_inputs(g);
  in.output_attentions = true;
  const Seq2SeqOutput o = m->forward(in);
  ASSERT_EQ(static_cast<int64_t>(o.encoder_attentions.size()), c.encoder_layers);
  ASSERT_EQ(static_cast<int64_t>(o.decoder_attentions.size()), c.decoder_layers);
  ASSERT_EQ(static_cast<int64_t>(o.cross_attentions.size()), c.decoder_layers);
  const int64_t S = in.input_ids.size(1), T = in.decoder_input_ids.size(1);
  EXPECT_EQ(o.encoder_attentions[0].shape(), (Shape{2, c.encoder_attention_heads, S, S}));
  EXPECT_EQ(o.cross_attentions[0].shape(), (Shape{2, c.decoder_attention_heads, T, S}));
  // Padded source positions get no cross-attention; the decoder's self-attention is causal.
  const auto cross = o.cross_attentions[0].contiguous().to_vector<float>();
  EXPECT_EQ(cross[(1 * c.decoder_attention_heads * T) * S + S - 1], 0.0f);
  const auto self = o.decoder_attentions[0].contiguous().to_vector<float>();
  EXPECT_EQ(self[1], 0.0f);  // query 0 never sees key 1
  EXPECT_LE(max_abs(o.logits, golden_tensor(g.at("logits"))), 1e-4);
}

// transformers 5.25 saves MarianModel with its sinusoidal tables (MarianMTModel without): the base
// folder loads, gives the same decoder states, and saves byte-identically.
TEST(Marian, BaseModelFolderWithSinusoidsLoadsAndSavesByteIdentically) {
  const std::string dir = marian_fixture("marian_base");
  LoadReport rep;
  LoadOptions strict;
  strict.strict = true;
  auto b = load_pretrained_as<EncoderDecoderModel>(dir, "an encoder-decoder", strict, &rep);
  EXPECT_EQ(b->architecture(), "MarianModel");
  EXPECT_TRUE(rep.missing_keys.empty() && rep.unexpected_keys.empty()) << rep.summary();
  const json g = read_marian_golden("marian_shared_untied");
  {
    NoGradGuard ng;
    const Seq2SeqOutput o = b->forward(golden_inputs(g));
    EXPECT_LE(max_abs(o.last_hidden_state, golden_tensor(g.at("decoder_last_hidden_state"))), 1e-4);
  }
  expect_saved_like(*b, dir, "marian_base");
  // The MT model takes the base folder: tables dropped, the head missing (initialised).
  LoadOptions mt;
  mt.architecture = "MarianMTModel";
  auto m = load_pretrained_as<EncoderDecoderModel>(dir, "an encoder-decoder", mt, &rep);
  EXPECT_EQ(rep.prefix_change, "added 'model.'");
  EXPECT_EQ(rep.missing_keys, (std::vector<std::string>{"final_logits_bias", "lm_head.weight"}));
  EXPECT_TRUE(rep.unexpected_keys.empty()) << rep.summary();
  for (float v : m->state_dict().at("final_logits_bias").to_vector<float>()) EXPECT_EQ(v, 0.0f);
}

// ---- bad input ----------------------------------------------------------------------------------

TEST(Marian, MissingTensorIsReportedAndStrictLoadRefusesIt) {
  const std::string dir = marian_fixture("marian");
  nn::StateDict sd = io::load_checkpoint_dir(dir);
  sd.erase("model.encoder.layers.1.fc2.weight");
  const std::string text = read_text(dir + "/config.json");
  LoadReport rep;
  auto m = load_pretrained(text, sd, {}, &rep, "marian (edited)");
  ASSERT_EQ(rep.missing_keys.size(), 1u);
  EXPECT_EQ(rep.missing_keys[0], "model.encoder.layers.1.fc2.weight");
  LoadOptions strict;
  strict.strict = true;
  try {
    load_pretrained(text, sd, strict, nullptr, "marian (edited)");
    FAIL() << "strict load accepted a missing tensor";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("model.encoder.layers.1.fc2.weight"), std::string::npos);
  }
}

TEST(Marian, WrongShapeNamesTheTensor) {
  const std::string dir = marian_fixture("marian");
  nn::StateDict sd = io::load_checkpoint_dir(dir);
  sd["model.decoder.layers.0.encoder_attn.q_proj.weight"] = Tensor::zeros({16, 32});
  try {
    load_pretrained(read_text(dir + "/config.json"), sd, {}, nullptr, "marian (edited)");
    FAIL() << "a wrong shape was accepted";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("model.decoder.layers.0.encoder_attn.q_proj.weight"),
              std::string::npos)
        << e.what();
  }
}

TEST(Marian, SourceLongerThanThePositionsIsAClearError) {
  auto m = load_marian("marian");
  const MarianConfig c =
      MarianConfig::from_json(read_text(marian_fixture("marian") + "/config.json"));
  expect_positions_checked(*m, c.max_position_embeddings);
  NoGradGuard ng;
  Seq2SeqInputs in;
  in.input_ids = Tensor::full({1, 3}, 5.0, DType::i64);
  in.decoder_input_ids = Tensor();
  EXPECT_THROW(m->forward(in), ValueError);  // neither decoder_input_ids nor labels
  in.decoder_input_ids = Tensor::full({2, 3}, 5.0, DType::i64);  // batch differs from source
  EXPECT_THROW(m->forward(in), ShapeError);
  in.decoder_input_ids = Tensor::full({1, 3}, 5.0, DType::i64);
  in.attention_mask = Tensor::ones({1, 4}, DType::i64);
  EXPECT_THROW(m->forward(in), ShapeError);
  EXPECT_THROW(m->make_cache(1, c.max_position_embeddings + 1), ValueError);
}

TEST(Marian, BadConfigFieldsAreNamed) {
  EXPECT_THROW(MarianConfig::from_json(R"({"model_type": "marian", "d_model": 30,
      "encoder_attention_heads": 4})"),
               ValueError);
  EXPECT_THROW(MarianConfig::from_json(R"({"model_type": "marian", "activation_function": "x"})"),
               ValueError);
  EXPECT_THROW(MarianConfig::from_json(R"({"model_type": "marian", "vocab_size": 10,
      "pad_token_id": 10})"),
               ValueError);
  EXPECT_THROW(MarianConfig::from_json(R"({"model_type": "marian", "vocab_size": 10,
      "decoder_vocab_size": 8, "pad_token_id": 1})"),
               ValueError);  // shared embeddings need one vocabulary
  EXPECT_THROW(MarianConfig::from_json(R"({"model_type": "bart"})"), ValueError);
  // Unknown keys (Helsinki-NLP configs carry generation settings) are kept and written back.
  const MarianConfig c = MarianConfig::from_json(
      R"({"model_type": "marian", "num_beams": 4, "bad_words_ids": [[58100]],
      "forced_eos_token_id": [0, 3], "vocab_size": 58101})");
  EXPECT_EQ(c.forced_eos_token_ids, (std::vector<int64_t>{0, 3}));
  const json out = json::parse(c.to_json("MarianMTModel"));
  EXPECT_EQ(out.at("num_beams"), 4);
  EXPECT_EQ(out.at("bad_words_ids"), json::parse("[[58100]]"));
  EXPECT_EQ(out.at("forced_eos_token_id"), json::parse("[0, 3]"));
  EXPECT_EQ(out.at("decoder_vocab_size"), 58101);
}

}  // namespace
}  // namespace lmf::models::test
