#include <gtest/gtest.h>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/core/tensor.h"

using namespace lmf;

TEST(Tensor, FactoriesShapesAndAlignment) {
  Tensor t = Tensor::zeros({2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.strides(), (Shape{3, 1}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64, 0u);
  EXPECT_EQ(Tensor::arange(5).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_THROW(Tensor::empty({2, -1}), ShapeError);
}

TEST(Tensor, ViewsShareStorageWithoutCopy) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (Shape{3, 2}));
  EXPECT_EQ(tt.storage().get(), t.storage().get());
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.at({2, 1}), 5.0);
  EXPECT_EQ(tt.contiguous().to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  Tensor n = t.narrow(1, 1, 2);
  EXPECT_EQ(n.to_vector<float>(), (std::vector<float>{1, 2, 4, 5}));
  EXPECT_EQ(t.reshape({3, 2}).storage().get(), t.storage().get());
  EXPECT_THROW(tt.view({6}), ShapeError);  // needs a copy
  EXPECT_EQ(tt.reshape({6}).to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  Tensor e = Tensor::from_vector<float>({1, 2}, {2, 1}).expand({2, 3});
  EXPECT_EQ(e.strides()[1], 0);
  EXPECT_EQ(e.to_vector<float>(), (std::vector<float>{1, 1, 1, 2, 2, 2}));
  EXPECT_THROW(t.narrow(1, 2, 2), IndexError);
  EXPECT_THROW(t.reshape({4, 2}), ShapeError);
}

TEST(Tensor, Bf16AndF16RoundToNearestEven) {
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even gives 1.0.
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1.0p-8f), f32_to_bf16(1.0f));
  // 1 + 3*2^-8 rounds up to 1 + 2^-6 (odd mantissa -> even).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3 * 0x1.0p-8f)), 1.0f + 0x1.0p-6f);
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 0x1.0p-11f)), 1.0f);
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 3 * 0x1.0p-11f)), 1.0f + 0x1.0p-9f);
  EXPECT_EQ(f16_to_f32(f32_to_f16(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(70000.0f))));
  EXPECT_EQ(f16_to_f32(f32_to_f16(0x1.0p-24f)), 0x1.0p-24f);  // smallest subnormal
  EXPECT_EQ(f16_to_f32(f32_to_f16(0x1.0p-25f)), 0.0f);        // tie -> even (zero)
  EXPECT_EQ(f16_to_f32(f32_to_f16(-2.5f)), -2.5f);
  Tensor t = Tensor::from_vector<float>({1.5f, -3.25f, 1e-3f}, {3});
  auto back = t.to(DType::bf16).to(DType::f32).to_vector<float>();
  EXPECT_EQ(back[0], 1.5f);
  EXPECT_EQ(back[1], -3.25f);
  EXPECT_NEAR(back[2], 1e-3f, 1e-5f);
}

TEST(Tensor, RngIsReproducibleAndStateRoundTrips) {
  manual_seed(42);
  Tensor a = randn({100});
  manual_seed(42);
  Tensor b = randn({100});
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  auto st = default_generator().state();
  Tensor c = rand({10});
  default_generator().set_state(st);
  EXPECT_EQ(rand({10}).to_vector<float>(), c.to_vector<float>());
  manual_seed(1);
  Tensor big = randn({20000});
  double mean = 0, sq = 0;
  for (float v : big.to_vector<float>()) mean += v, sq += double(v) * v;
  mean /= 20000;
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(sq / 20000 - mean * mean, 1.0, 0.05);
  Tensor m = bernoulli({20000}, 0.25);
  int64_t ones = 0;
  for (bool v : m.to_vector<bool>()) ones += v;
  EXPECT_NEAR(ones / 20000.0, 0.25, 0.02);
}

TEST(Autograd, ViewBackwardAndAccumulation) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad(true);
  Tensor y = x.transpose(0, 1).narrow(0, 1, 2);  // [[2,5],[3,6]]
  y.backward(Tensor::ones({2, 2}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{0, 1, 1, 0, 1, 1}));
  Tensor z = x.unsqueeze(0).expand({4, 2, 3});
  z.backward(Tensor::ones({4, 2, 3}));  // accumulates onto the previous gradient
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{4, 5, 5, 4, 5, 5}));
  EXPECT_THROW(Tensor::ones({2}).backward(), AutogradError);
  {
    NoGradGuard ng;
    EXPECT_FALSE(x.reshape({6}).requires_grad());
  }
}

TEST(Autograd, LeafGradientsNeverAliasEachOtherOrTheSeed) {
  // clone's backward passes the incoming gradient through unchanged; two leaves fed by the same
  // gradient tensor must still get separate .grad buffers, and the user's seed must stay intact.
  Tensor a = Tensor::ones({4}).set_requires_grad(true);
  Tensor seed = Tensor::full({4}, 2.0);
  a.clone().backward(seed);
  a.grad().fill_(7.0);
  EXPECT_EQ(seed.to_vector<float>(), (std::vector<float>{2, 2, 2, 2}));
  Tensor b = Tensor::ones({2}).set_requires_grad(true);
  Tensor c = Tensor::ones({2}).set_requires_grad(true);
  Tensor g = Tensor::full({2}, 3.0);
  b.clone().backward(g);
  c.clone().backward(g);
  b.grad().fill_(0.0);
  EXPECT_EQ(c.grad().to_vector<float>(), (std::vector<float>{3, 3}));
  EXPECT_EQ(g.to_vector<float>(), (std::vector<float>{3, 3}));
  // Accumulation into an existing gradient held by the user does not change the user's copy.
  Tensor held = c.grad();
  c.clone().backward(g);
  EXPECT_EQ(held.to_vector<float>(), (std::vector<float>{3, 3}));
  EXPECT_EQ(c.grad().to_vector<float>(), (std::vector<float>{6, 6}));
}
