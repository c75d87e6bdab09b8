// BART family (BartForConditionalGeneration, BartModel, BartForSequenceClassification) against
// transformers 5.25: tiny seeded checkpoints and goldens from scripts/reference/gen_bart_goldens.py
// (tests/fixtures/bart/). Logits with source/target padding, the denoising default (decoder input
// = shifted input_ids), cached decoding, loss and gradients (one training step), load -> save byte
// identity, the classification head, generate() parity (greedy and beam, single and batched), the
// byte-level BPE tokenizer of a BART folder, bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/models/bart.h"
#include "lmforge/models/registry.h"
#include "lmforge/tasks/inspect.h"
#include "lmforge/tasks/seq2seq.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "models/decoder_test_util.h"
#include "models/seq2seq_test_util.h"

namespace lmf::models::test {
namespace {

std::string bart_fixture(const std::string& name) {
  return std::string(LMF_FIXTURES_DIR) + "/bart/" + name;
}
json read_bart_golden(const std::string& name) {
  return json::parse(read_text(bart_fixture(name) + "/golden.json"));
}
std::unique_ptr<EncoderDecoderModel> load_bart(const std::string& name, const LoadOptions& opt = {},
                                               LoadReport* rep = nullptr) {
  return load_seq2seq(bart_fixture(name), opt, rep);
}

class BartFamily : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Fixtures, BartFamily, ::testing::Values("bart", "bart_untied"));

TEST_P(BartFamily, LogitsMatchTransformers) {
  const json g = read_bart_golden(GetParam());
  LoadReport rep;
  auto m = load_bart(GetParam(), {}, &rep);
  EXPECT_EQ(m->architecture(), "BartForConditionalGeneration");
  EXPECT_TRUE(m->is_seq2seq_lm());
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_TRUE(rep.unexpected_keys.empty()) << rep.summary();
  expect_golden_logits(*m, g);
  NoGradGuard ng;
  // No decoder_input_ids nor labels: the decoder reads shift_tokens_right(input_ids).
  Seq2SeqInputs denoise = golden_inputs(g);
  denoise.decoder_input_ids = Tensor();
  EXPECT_LE(max_abs(m->forward(denoise).logits, golden_tensor(g.at("logits_from_input_ids"))),
            1e-4);
  m->prepare_inference();
  EXPECT_LE(max_abs(m->forward(golden_inputs(g)).logits, golden_tensor(g.at("logits"))), 1e-4);
}

TEST_P(BartFamily, CachedDecodingEqualsFullForward) {
  const json g = read_bart_golden(GetParam());
  auto m = load_bart(GetParam());
  m->prepare_inference();
  NoGradGuard ng;
  const Seq2SeqInputs full = golden_inputs(g);
  const Tensor ref = m->forward(full).logits;
  const Tensor enc = m->encode(full.input_ids, full.attention_mask).last_hidden_state;
  const Tensor inc = cached_logits(*m, full, enc);
  EXPECT_LE(max_abs(inc, ref), 1e-5);
  EXPECT_LE(max_abs(inc, golden_tensor(g.at("logits"))), 1e-4);
  expect_grouped_encoder_rows_equal_repeated(*m, full);
}

TEST_P(BartFamily, LossAndGradientsMatchTransformers) {
  const json g = read_bart_golden(GetParam());
  auto m = load_bart(GetParam());
  expect_golden_loss_and_grads(*m, g);
  for (const auto& [name, t] : m->named_parameters())
    EXPECT_NE(name, "final_logits_bias") << "final_logits_bias is a buffer";
}

TEST_P(BartFamily, GreedyGenerateEqualsTransformers) {
  const json g = read_bart_golden(GetParam());
  auto m = load_bart(GetParam());
  m->prepare_inference();
  const Tensor want = golden_tensor(g.at("greedy"));
  const Tensor ids = golden_tensor(g.at("input_ids")), mask = golden_tensor(g.at("attention_mask"));
  std::vector<std::vector<int64_t>> src;
  const auto iv = ids.to_vector<int64_t>(), mv = mask.to_vector<int64_t>();
  const int64_t B = ids.size(0), S = ids.size(1), L = want.size(1);
  for (int64_t b = 0; b < B; ++b) {
    src.emplace_back();
    for (int64_t s = 0; s < S; ++s)
      if (mv[b * S + s]) src.back().push_back(iv[b * S + s]);
  }
  tasks::GenerationConfig c;
  c.max_new_tokens = L - 1;
  c.eos_token_id = {2};
  c.pad_token_id = 1;
  const tasks::GenerationResult r = tasks::generate_seq2seq(*m, src, c);
  const auto w = want.to_vector<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> row(w.begin() + b * L + 1, w.begin() + (b + 1) * L);
    // generate() pads a row after its eos with pad_token_id; output_ids end at the eos.
    const auto eos = std::find(row.begin(), row.end(), 2);
    if (eos != row.end()) row.erase(eos + 1, row.end());
    EXPECT_EQ(r.sequences[b].output_ids, row) << "row " << b;
  }
}

TEST_P(BartFamily, RegistryLoadAndSavePretrainedAreByteIdentical) {
  const std::string dir = bart_fixture(GetParam());
  const std::string text = read_text(dir + "/config.json");
  EXPECT_EQ(BartConfig::from_json(text).to_json("BartForConditionalGeneration"), text);
  auto m = load_bart(GetParam());
  EXPECT_EQ(m->config_json(), text);
  expect_saved_like(*m, dir, "bart_" + GetParam());
}

TEST_P(BartFamily, TrainingModeDropoutAndGradientsFlow) {
  const json g = read_bart_golden(GetParam());
  auto m = load_bart(GetParam());
  const BartConfig c = BartConfig::from_json(read_text(bart_fixture(GetParam()) + "/config.json"));
  // Untied: model.shared is saved but the forward never reads it.
  expect_training_mode(*m, g, c.tie_word_embeddings ? "" : "model.shared.weight");
}

TEST(Bart, BaseModelFolderLoadsAndSavesByteIdentically) {
  const json g = read_bart_golden("bart");
  LoadOptions strict;
  strict.strict = true;
  LoadReport rep;
  auto b = load_bart("bart_base", strict, &rep);
  EXPECT_EQ(b->architecture(), "BartModel");
  EXPECT_FALSE(b->is_seq2seq_lm());
  NoGradGuard ng;
  const Seq2SeqOutput o = b->forward(golden_inputs(g));
  EXPECT_FALSE(o.logits.defined());
  EXPECT_LE(max_abs(o.last_hidden_state, golden_tensor(g.at("decoder_last_hidden_state"))), 1e-4);
  expect_saved_like(*b, bart_fixture("bart_base"), "bart_base");
  // The LM folder as BartModel: prefix removed, the head's tensors unexpected.
  LoadOptions base;
  base.architecture = "BartModel";
  auto b2 = load_bart("bart", base, &rep);
  EXPECT_EQ(rep.prefix_change, "removed 'model.'");
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  // The LM head on the base folder: lm_head is tied (not missing), final_logits_bias zeros.
  LoadOptions lm;
  lm.architecture = "BartForConditionalGeneration";
  auto m = load_bart("bart_base", lm, &rep);
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  for (float v : m->state_dict().at("final_logits_bias").to_vector<float>()) EXPECT_EQ(v, 0.0f);
}

// ---- sequence classification -------------------------------------------------------------------

TEST(Bart, SequenceClassificationMatchesTransformers) {
  const json g = read_bart_golden("bart_cls");
  LoadReport rep;
  auto m = load_bart("bart_cls", {}, &rep);
  EXPECT_EQ(m->architecture(), "BartForSequenceClassification");
  EXPECT_FALSE(m->is_seq2seq_lm());
  EXPECT_TRUE(rep.missing_keys.empty() && rep.unexpected_keys.empty()) << rep.summary();
  const auto& bm = dynamic_cast<const BartModel&>(*m);
  EXPECT_EQ(bm.config().num_labels, 3);
  Seq2SeqInputs in;
  in.input_ids = golden_tensor(g.at("input_ids"));
  in.attention_mask = golden_tensor(g.at("attention_mask"));
  Seq2SeqLabels labels;
  labels.labels = golden_tensor(g.at("labels"));
  const Seq2SeqOutput o = m->forward(in, labels);
  EXPECT_EQ(o.logits.shape(), (Shape{2, 3}));
  EXPECT_LE(rel_diff(o.logits, golden_tensor(g.at("logits"))), 1e-4);
  const double want = g.at("loss").get<double>();
  EXPECT_LE(std::abs(o.loss.item() - want) / want, 1e-5);
  o.loss.backward();
  for (const auto& [name, gj] : g.at("grads").items()) {
    const Tensor grad = m->parameter(name).grad();
    ASSERT_TRUE(grad.defined()) << name;
    EXPECT_LE(rel_diff(grad, golden_tensor(gj)), 1e-3) << name;
  }
  expect_saved_like(*m, bart_fixture("bart_cls"), "bart_cls");
  // Rows with different eos counts: transformers' error.
  NoGradGuard ng;
  in.input_ids = golden_tensor(g.at("uneven_eos_input_ids"));
  try {
    m->forward(in);
    FAIL() << "uneven eos counts were accepted";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find(g.at("uneven_eos_error").get<std::string>()),
              std::string::npos)
        << e.what();
  }
  in.input_ids = Tensor::full({1, 4}, 7.0, DType::i64);  // no eos at all
  in.attention_mask = Tensor();
  EXPECT_THROW(m->forward(in), ValueError);
}

// ---- generation --------------------------------------------------------------------------------

TEST(Bart, GenerateEqualsTransformersGreedyAndBeam) {
  const json g = json::parse(read_text(bart_fixture("generate.json")));
  const std::string dir = std::string(LMF_FIXTURES_DIR) + "/" + g.at("model").get<std::string>();
  tasks::Seq2SeqLM lm = tasks::load_seq2seq_lm(dir);
  // generation_config.json as facebook/bart-large's: forced BOS, no_repeat_ngram_size, beams.
  EXPECT_EQ(lm.generation.forced_bos_token_id, 0);
  EXPECT_EQ(lm.generation.decoder_start_token_id, 2);
  EXPECT_EQ(lm.generation.no_repeat_ngram_size, 3);
  EXPECT_EQ(lm.generation.num_beams, 4);
  ASSERT_GE(g.at("cases").size(), 8u);
  for (const json& c : g.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    tasks::GenerationConfig cfg = lm.generation;
    for (const auto& [k, v] : c.at("kwargs").items())
      if (v.is_null() && k == "forced_bos_token_id") cfg.forced_bos_token_id.reset();
    cfg = tasks::GenerationConfig::from_json(c.at("kwargs"), cfg);
    expect_generate_case(*lm.model, c, cfg);
  }
}

// A BART folder with its tokenizer.json translates as transformers' tokenizer -> generate() ->
// decode(skip_special_tokens=True) (tests/fixtures/bart/translate.json).
TEST(Bart, TranslateFolderTextToTextAsTransformers) {
  const json g = json::parse(read_text(bart_fixture("translate.json")));
  tasks::Seq2SeqLM lm = tasks::load_seq2seq_lm(bart_fixture("translate"));
  ASSERT_TRUE(lm.has_tokenizer());
  EXPECT_EQ(lm.tokenizer, nullptr);  // not a Marian folder
  std::vector<std::vector<int64_t>> src;
  for (const json& t : g.at("texts")) src.push_back(tasks::encode_source_text(lm, t));
  EXPECT_EQ(src, g.at("source_ids").get<std::vector<std::vector<int64_t>>>());
  for (const char* mode : {"greedy", "beam3"}) {
    tasks::GenerationConfig c = lm.generation;
    c.num_beams = std::string(mode) == "greedy" ? 1 : 3;
    c.max_new_tokens = 10;
    const tasks::GenerationResult r = tasks::generate_seq2seq(*lm.model, src, c);
    const json& w = g.at(mode);
    ASSERT_EQ(r.sequences.size(), w.at("output_ids").size());
    for (size_t i = 0; i < r.sequences.size(); ++i) {
      EXPECT_EQ(r.sequences[i].output_ids, w.at("output_ids")[i].get<std::vector<int64_t>>())
          << mode << " " << i;
      EXPECT_EQ(tasks::decode_target_text(lm, r.sequences[i].output_ids),
                w.at("text")[i].get<std::string>());
    }
  }
  EXPECT_EQ(tasks::token_labels(lm, {0, 2})[1], "</s>");
}

// lmforge inspect's library side: a BART folder goes through the registry, not the BERT path.
TEST(Bart, InspectDescribesABartFolder) {
  const tasks::ModelInfo info = tasks::inspect_model(bart_fixture("translate"));
  EXPECT_FALSE(info.bert_family);
  EXPECT_EQ(info.model_type, "bart");
  EXPECT_EQ(info.architecture, "BartForConditionalGeneration");
  EXPECT_GT(info.parameters, 0);
  EXPECT_TRUE(info.report.missing_keys.empty() && info.report.unexpected_keys.empty());
  EXPECT_EQ(info.report.tied_keys.size(), 3u);  // both embed_tokens and lm_head share model.shared
  EXPECT_NE(info.tokenizer.find("tokenizer.json"), std::string::npos) << info.tokenizer;
  const auto names = registered_architectures();
  for (const char* a :
       {"BartModel", "BartForConditionalGeneration", "BartForSequenceClassification"})
    EXPECT_NE(std::find(names.begin(), names.end(), a), names.end()) << a;
}

// The generation goldens exercise what they claim: the folder's no_repeat_ngram_size 3 changes
// greedy search on the repeating source, forced BOS/EOS show in the outputs.
TEST(Bart, GenerateGoldensCoverTheProcessors) {
  const json g = json::parse(read_text(bart_fixture("generate.json")));
  std::map<std::string, json> by;
  for (const json& c : g.at("cases")) by[c.at("name").get<std::string>()] = c.at("output_ids");
  EXPECT_NE(by.at("greedy_batched"), by.at("greedy_no_ngram_block"));
  for (const auto& row : by.at("forced_bos_7_beam2")) EXPECT_EQ(row.front(), 7);
  for (const auto& row : by.at("defaults_beam4")) EXPECT_EQ(row.front(), 0);
  for (const auto& row : by.at("forced_eos_short")) EXPECT_EQ(row.back(), 2);
  std::set<size_t> lengths;
  for (const auto& row : by.at("greedy_batched")) lengths.insert(row.size());
  EXPECT_GE(lengths.size(), 3u);
}

// ---- tokenizer ---------------------------------------------------------------------------------

class BartTokenizerFolders : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Folders, BartTokenizerFolders,
                         ::testing::Values("tokenizer", "tokenizer_legacy"));

TEST_P(BartTokenizerFolders, EncodeDecodeAsTransformers) {
  const json g = json::parse(read_text(bart_fixture("tokenizer.json"))).at(GetParam());
  const tok::Tokenizer t = tok::Tokenizer::from_pretrained(bart_fixture(GetParam()));
  EXPECT_EQ(static_cast<int64_t>(t.vocab_size()), g.at("vocab_size").get<int64_t>());
  auto ids64 = [](const tok::Encoding& e) {
    return std::vector<int64_t>(e.ids.begin(), e.ids.end());
  };
  for (const json& c : g.at("texts")) {
    const std::string text = c.at("text");
    SCOPED_TRACE(text);
    const tok::Encoding e = t.encode(text);
    EXPECT_EQ(ids64(e), c.at("ids").get<std::vector<int64_t>>());
    EXPECT_EQ(ids64(t.encode(text, false)), c.at("no_special").get<std::vector<int64_t>>());
    EXPECT_EQ(t.decode(e.ids, false), c.at("decoded").get<std::string>());
    EXPECT_EQ(t.decode(e.ids, true), c.at("decoded_skip").get<std::string>());
  }
  for (const json& c : g.at("pairs")) {
    const tok::Encoding e = t.encode(c.at("a").get<std::string>(), c.at("b").get<std::string>());
    EXPECT_EQ(ids64(e), c.at("ids").get<std::vector<int64_t>>());
    EXPECT_EQ(t.decode(e.ids, false), c.at("decoded").get<std::string>());
  }
}

// ---- bad input ---------------------------------------------------------------------------------

TEST(Bart, SourceLongerThanThePositionsIsAClearError) {
  auto m = load_bart("bart");
  const BartConfig c = BartConfig::from_json(read_text(bart_fixture("bart") + "/config.json"));
  expect_positions_checked(*m, c.max_position_embeddings);
  NoGradGuard ng;
  Seq2SeqInputs in;
  in.encoder_hidden_states = Tensor::zeros({1, 3, c.d_model});
  EXPECT_THROW(m->forward(in), ValueError);  // nothing to make decoder_input_ids from
  in.encoder_hidden_states = Tensor();
  in.input_ids = Tensor::full({1, 3}, 5.0, DType::i64);
  in.attention_mask = Tensor::ones({1, 4}, DType::i64);
  EXPECT_THROW(m->forward(in), ShapeError);
  // generate_seq2seq: the source is refused (or truncated on request).
  tasks::GenerationConfig g;
  g.max_new_tokens = 2;
  std::vector<int64_t> longsrc(c.max_position_embeddings + 5, 7);
  EXPECT_THROW(tasks::generate_seq2seq(*m, {longsrc}, g), ValueError);
}

TEST(Bart, BadConfigFieldsAreNamed) {
  auto expect_error = [](const std::string& text, const std::string& word) {
    try {
      BartConfig::from_json(text);
      ADD_FAILURE() << "accepted " << text;
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"model_type": "bart", "d_model": 30, "encoder_attention_heads": 4})", "d_model");
  expect_error(R"({"model_type": "bart", "activation_function": "x"})", "activation_function");
  expect_error(R"({"model_type": "bart", "vocab_size": 10, "pad_token_id": 10})", "pad_token_id");
  expect_error(R"({"model_type": "bart", "dropout": 1.5})", "dropout");
  expect_error(R"({"model_type": "bart", "normalize_before": true})", "normalize_before");
  expect_error(R"({"model_type": "marian"})", "bart");
  expect_error(R"({"model_type": "bart", "vocab_size": "many"})", "vocab_size");
  EXPECT_THROW(create_pretrained(R"({"model_type": "bart"})", "BartForQuestionAnswering"),
               ValueError);
  // BartConfig defaults; unknown keys (old configs carry generation settings) written back.
  const BartConfig d = BartConfig::from_json(R"({"model_type": "bart", "num_beams": 4,
      "forced_bos_token_id": 0, "normalize_before": false})");
  EXPECT_EQ(d.vocab_size, 50265);
  EXPECT_EQ(d.num_labels, 3);
  EXPECT_EQ(d.decoder_start_token_id, 2);
  EXPECT_EQ(d.forced_eos_token_ids, std::vector<int64_t>{2});
  const json out = json::parse(d.to_json("BartForConditionalGeneration"));
  EXPECT_EQ(out.at("num_beams"), 4);
  EXPECT_EQ(out.at("forced_bos_token_id"), 0);
  EXPECT_EQ(out.at("id2label").size(), 3u);
}

}  // namespace
}  // namespace lmf::models::test
