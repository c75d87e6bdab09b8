#include <gtest/gtest.h>

#include <cmath>

#include "lmforge/models/bert.h"

using namespace lmf;

// create_model(dir) skips the random init of weights the checkpoint replaces; the weights it does
// not provide must still get HF's initialisation (never leftover memory).
TEST(BertLoadInit, WeightsMissingFromTheCheckpointGetHfInitialisation) {
  models::LoadOptions opt;
  opt.architecture = "BertForSequenceClassification";  // the MLM checkpoint has no classifier
  models::LoadReport rep;
  auto m = models::create_model(std::string(LMF_FIXTURES_DIR) + "/bert/bert_mlm", opt, &rep);
  bool saw_weight = false, saw_bias = false;
  for (const auto& key : rep.missing_keys) {
    const Tensor t = m->parameter(key);
    const auto v = t.to_vector<float>();
    if (key == "classifier.bias") {
      saw_bias = true;
      for (float x : v) EXPECT_EQ(x, 0.0f);
    } else if (key == "classifier.weight") {
      saw_weight = true;
      double sq = 0;
      for (float x : v) {
        ASSERT_TRUE(std::isfinite(x));
        sq += double(x) * x;
      }
      const double std = std::sqrt(sq / v.size());
      EXPECT_NEAR(std, m->config().initializer_range, 0.5 * m->config().initializer_range);
    }
  }
  EXPECT_TRUE(saw_weight && saw_bias) << rep.summary();
  // The pooler is absent from an MLM checkpoint: still refused, never random.
  EXPECT_TRUE(rep.pooler_missing);
  EXPECT_FALSE(rep.pooler_initialized);
}
