#include <gtest/gtest.h>

#include "lmforge/train/toy_demo.h"
#include "lmforge/core/error.h"

using namespace lmf;

// Forward, backward and AdamW together: a 2-layer encoder learns to reverse sequences.
TEST(ToyDemo, EncoderLearnsToReverseSequencesToNearZeroLoss) {
  train::ToyDemoOptions o;  // defaults: reverse, 300 steps, batch 32, 8 symbols
  int64_t calls = 0;
  auto r = train::run_toy_demo(o, [&](const train::ToyDemoStep& s) {
    ++calls;
    EXPECT_EQ(s.step, calls);
    EXPECT_GT(s.tokens_per_s, 0);
  });
  EXPECT_EQ(calls, o.steps);
  ASSERT_EQ(static_cast<int64_t>(r.losses.size()), o.steps);
  EXPECT_GT(r.losses.front(), 2.0);  // ~ln(10) at random init
  EXPECT_LT(r.losses.back(), 0.05);
  EXPECT_LT(r.eval_loss, 0.05);
  EXPECT_GT(r.eval_token_accuracy, 0.99);
  EXPECT_LT(r.seconds, 120.0);  // ~1.5 s on an idle 2-core machine; generous for loaded CI hosts
}

TEST(ToyDemo, SameSeedGivesBitIdenticalLosses) {
  train::ToyDemoOptions o;
  o.steps = 20;
  o.task = "copy";
  auto a = train::run_toy_demo(o), b = train::run_toy_demo(o);
  EXPECT_EQ(a.losses, b.losses);
  o.seed = 1;
  EXPECT_NE(train::run_toy_demo(o).losses, a.losses);
}

TEST(ToyDemo, RejectsBadOptions) {
  train::ToyDemoOptions o;
  o.hidden = 10;  // not a multiple of 4 heads
  EXPECT_THROW(train::run_toy_demo(o), ValueError);
  o = {};
  o.task = "sort";
  EXPECT_THROW(train::run_toy_demo(o), ValueError);
}
