// `lmforge evaluate` for translation models (train::evaluate_translation) against
// scripts/reference/gen_translation_eval_goldens.py (tests/fixtures/translation_eval/):
// transformers' greedy and beam translations of the tiny trained Marian, sacrebleu's corpus
// BLEU/chrF of them, MarianMTModel's loss; plus bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"
#include "lmforge/train/translation_eval.h"

namespace {

using namespace lmf;
using namespace lmf::train;
namespace fs = std::filesystem;

const std::string kFix = LMF_FIXTURES_DIR;
const std::string kDir = kFix + "/translation_eval";
const std::string kModel = kFix + "/seq2seq_generate/translate";

nlohmann::json golden() {
  return nlohmann::json::parse(std::ifstream(kDir + "/golden.json"));
}

TranslationEvalOptions options(int64_t beams) {
  TranslationEvalOptions o;
  o.model_dir = kModel;
  o.data = kDir + "/src.en," + kDir + "/tgt.fr";
  o.num_beams = beams;
  o.max_new_tokens = golden()["max_new_tokens"].get<int64_t>();
  return o;
}

TEST(TranslationEval, GreedyAndBeamMatchTransformersAndSacrebleu) {
  const nlohmann::json g = golden();
  for (const auto& c : g["cases"]) {
    const int64_t beams = c["num_beams"].get<int64_t>();
    SCOPED_TRACE(beams);
    const TranslationEvalResult r = evaluate_translation(options(beams));
    EXPECT_EQ(r.hypotheses, c["hypotheses"].get<std::vector<std::string>>());
    EXPECT_EQ(r.references, g["references"].get<std::vector<std::string>>());
    // BLEU/chrF equal sacrebleu's to 1e-9 (same hypotheses, tasks/bleu.h is exact).
    EXPECT_NEAR(r.metrics.at("eval_bleu"), c["bleu"].get<double>(), 1e-9);
    EXPECT_NEAR(r.metrics.at("eval_chrf"), c["chrf"].get<double>(), 1e-9);
    EXPECT_DOUBLE_EQ(r.metrics.at("eval_gen_len"), c["gen_len"].get<double>());
    EXPECT_EQ(r.metrics.at("eval_samples"), g["samples"].get<double>());
    EXPECT_EQ(r.metrics.at("eval_skipped_empty"), g["skipped_empty"].get<double>());
    // One padded batch: the loss is the mean over its target tokens (f32 forward: 1e-4).
    EXPECT_NEAR(r.metrics.at("eval_loss"), g["eval_loss"].get<double>(), 1e-4);
  }
}

TEST(TranslationEval, BatchSizeDoesNotChangeTheTranslations) {
  TranslationEvalOptions o = options(1);
  o.batch_size = 3;
  o.loss = false;
  const TranslationEvalResult r = evaluate_translation(o);
  EXPECT_EQ(r.hypotheses, golden()["cases"][0]["hypotheses"].get<std::vector<std::string>>());
  EXPECT_EQ(r.metrics.count("eval_loss"), 0u);
}

TEST(TranslationEval, BadInputIsAnError) {
  const fs::path d =
      fs::temp_directory_path() / ("lmf_translation_eval_" + std::to_string(::getpid()));
  fs::create_directories(d);
  std::ofstream(d / "a.en") << "one\ntwo\n";
  std::ofstream(d / "a.fr") << "un\n";
  std::ofstream(d / "empty.en") << "\n\n";
  std::ofstream(d / "empty.fr") << "\n\n";
  TranslationEvalOptions o = options(1);
  o.data = (d / "a.en").string() + "," + (d / "a.fr").string();
  try {
    evaluate_translation(o);
    ADD_FAILURE() << "mismatched line counts accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.en:2"), std::string::npos) << e.what();
  }
  o.data = (d / "empty.en").string() + "," + (d / "empty.fr").string();
  EXPECT_THROW(evaluate_translation(o), ValueError);
  o.data = kDir + "/src.en," + kDir + "/tgt.fr";
  o.model_dir = (d / "missing").string();
  EXPECT_THROW(evaluate_translation(o), Error);
  fs::remove_all(d);
}

}  // namespace
