// Op-table cases and bad-input tests for embedding, concat/split/chunk/stack, gather, masked_fill
// and where.
#include <gtest/gtest.h>

#include <algorithm>

#include "ops/op_harness.h"

namespace lmf::test {
namespace {

Shape row_major(const Shape& s) {
  return contiguous_strides(s);
}

// Flat index -> multi-index in `shape`.
Shape unravel(int64_t flat, const Shape& shape) {
  Shape idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}
int64_t ravel(const Shape& idx, const Shape& shape) {
  int64_t f = 0;
  for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
  return f;
}
// Element of `r` at broadcast multi-index `idx` (of the broadcast shape).
double bcast_at(const Ref& r, const Shape& idx) {
  const size_t lead = idx.size() - r.shape.size();
  int64_t f = 0;
  for (size_t d = 0; d < r.shape.size(); ++d)
    f = f * r.shape[d] + (r.shape[d] == 1 ? 0 : idx[lead + d]);
  return r[f];
}

Tensor ids_i64(std::vector<int64_t> v, const Shape& s) {
  return Tensor::from_vector(v, s);
}

// ---- embedding ---------------------------------------------------------------------------------

Ref embedding_ref(const Ref& w, const Ref& ids) {
  const int64_t h = w.size(1);
  Shape s = ids.shape;
  s.push_back(h);
  Ref out(s);
  for (int64_t i = 0; i < ids.numel(); ++i)
    for (int64_t c = 0; c < h; ++c) out[i * h + c] = w[static_cast<int64_t>(ids[i]) * h + c];
  return out;
}

// ---- concat / split ----------------------------------------------------------------------------

Ref concat_ref(const std::vector<Ref>& xs, int64_t dim) {
  const int64_t rank = static_cast<int64_t>(xs[0].shape.size());
  const int64_t d = dim < 0 ? dim + rank : dim;
  Shape s = xs[0].shape;
  s[d] = 0;
  for (const Ref& x : xs) s[d] += x.shape[d];
  Ref out(s);
  int64_t start = 0;
  for (const Ref& x : xs) {
    for (int64_t i = 0; i < x.numel(); ++i) {
      Shape idx = unravel(i, x.shape);
      idx[d] += start;
      out[ravel(idx, s)] = x[i];
    }
    start += x.shape[d];
  }
  return out;
}

// Pieces of x along dim with `sizes`.
std::vector<Ref> split_ref(const Ref& x, const std::vector<int64_t>& sizes, int64_t dim) {
  const int64_t d = dim < 0 ? dim + static_cast<int64_t>(x.shape.size()) : dim;
  std::vector<Ref> out;
  int64_t start = 0;
  for (int64_t sz : sizes) {
    Shape s = x.shape;
    s[d] = sz;
    Ref p(s);
    for (int64_t i = 0; i < p.numel(); ++i) {
      Shape idx = unravel(i, s);
      idx[d] += start;
      p[i] = x[ravel(idx, x.shape)];
    }
    out.push_back(p);
    start += sz;
  }
  return out;
}

// Split then concatenated back in reverse order (exercises every piece's backward).
OpCase split_case(std::string name, Shape shape, std::vector<int64_t> sizes, int64_t dim) {
  return OpCase{.name = std::move(name),
                .dtypes = {DType::f32, DType::bf16},
                .inputs = [shape] { return std::vector<Tensor>{randn(shape)}; },
                .op =
                    [sizes, dim](const std::vector<Tensor>& in) {
                      auto ps = split(in[0], sizes, dim);
                      std::reverse(ps.begin(), ps.end());
                      return concat(ps, dim);
                    },
                .reference =
                    [sizes, dim](const std::vector<Ref>& in) {
                      auto ps = split_ref(in[0], sizes, dim);
                      std::reverse(ps.begin(), ps.end());
                      return concat_ref(ps, dim);
                    },
                .grad_inputs = {0}};
}

OpCase chunk_case(std::string name, Shape shape, int64_t chunks, std::vector<int64_t> expect_sizes,
                  int64_t dim) {
  return OpCase{.name = std::move(name),
                .inputs = [shape] { return std::vector<Tensor>{randn(shape)}; },
                .op =
                    [chunks, dim](const std::vector<Tensor>& in) {
                      auto ps = chunk(in[0], chunks, dim);
                      std::reverse(ps.begin(), ps.end());
                      return concat(ps, dim);
                    },
                .reference =
                    [expect_sizes, dim](const std::vector<Ref>& in) {
                      auto ps = split_ref(in[0], expect_sizes, dim);
                      std::reverse(ps.begin(), ps.end());
                      return concat_ref(ps, dim);
                    },
                .grad_inputs = {0}};
}

OpCase concat_case(std::string name, std::vector<Shape> shapes, int64_t dim) {
  std::vector<int> grads(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) grads[i] = static_cast<int>(i);
  return OpCase{.name = std::move(name),
                .dtypes = {DType::f32, DType::bf16},
                .inputs =
                    [shapes] {
                      std::vector<Tensor> v;
                      for (const Shape& s : shapes) v.push_back(randn(s));
                      return v;
                    },
                .op = [dim](const std::vector<Tensor>& in) { return concat(in, dim); },
                .reference = [dim](const std::vector<Ref>& in) { return concat_ref(in, dim); },
                .grad_inputs = grads};
}

OpCase stack_case(std::string name, Shape shape, int n, int64_t dim) {
  std::vector<int> grads(n);
  for (int i = 0; i < n; ++i) grads[i] = i;
  return OpCase{.name = std::move(name),
                .dtypes = {DType::f32, DType::bf16},
                .inputs =
                    [shape, n] {
                      std::vector<Tensor> v;
                      for (int i = 0; i < n; ++i) v.push_back(randn(shape));
                      return v;
                    },
                .op = [dim](const std::vector<Tensor>& in) { return stack(in, dim); },
                .reference =
                    [dim](const std::vector<Ref>& in) {
                      const int64_t rank = static_cast<int64_t>(in[0].shape.size()) + 1;
                      const int64_t d = dim < 0 ? dim + rank : dim;
                      std::vector<Ref> us;
                      for (const Ref& x : in) {
                        Ref u = x;
                        u.shape.insert(u.shape.begin() + d, 1);
                        us.push_back(u);
                      }
                      return concat_ref(us, d);
                    },
                .grad_inputs = grads};
}

// ---- gather ------------------------------------------------------------------------------------

Ref gather_ref(const Ref& x, int64_t dim, const Ref& index) {
  const int64_t d = dim < 0 ? dim + static_cast<int64_t>(x.shape.size()) : dim;
  Ref out(index.shape);
  for (int64_t i = 0; i < index.numel(); ++i) {
    Shape idx = unravel(i, index.shape);
    idx[d] = static_cast<int64_t>(index[i]);
    out[i] = x[ravel(idx, x.shape)];
  }
  return out;
}

OpCase gather_case(std::string name, Shape x_shape, Shape index_shape, int64_t dim) {
  return OpCase{
      .name = std::move(name),
      .dtypes = {DType::f32, DType::bf16},
      .inputs =
          [x_shape, index_shape, dim] {
            const int64_t d = dim < 0 ? dim + static_cast<int64_t>(x_shape.size()) : dim;
            return std::vector<Tensor>{randn(x_shape), randint(index_shape, 0, x_shape[d])};
          },
      .op = [dim](const std::vector<Tensor>& in) { return gather(in[0], dim, in[1]); },
      .reference = [dim](const std::vector<Ref>& in) { return gather_ref(in[0], dim, in[1]); },
      .grad_inputs = {0}};
}

// ---- masked_fill / where -----------------------------------------------------------------------

Ref where_ref(const Ref& c, const Ref& a, const Ref& b) {
  Shape s = broadcast_shapes(broadcast_shapes(c.shape, a.shape, "ref"), b.shape, "ref");
  Ref out(s);
  for (int64_t i = 0; i < out.numel(); ++i) {
    const Shape idx = unravel(i, s);
    out[i] = bcast_at(c, idx) != 0 ? bcast_at(a, idx) : bcast_at(b, idx);
  }
  return out;
}

OpCase masked_fill_case(std::string name, Shape x_shape, Shape mask_shape, double value) {
  return OpCase{
      .name = std::move(name),
      .dtypes = {DType::f32, DType::bf16},
      .inputs =
          [x_shape, mask_shape] {
            return std::vector<Tensor>{randn(x_shape), bernoulli(mask_shape, 0.4)};
          },
      .op = [value](const std::vector<Tensor>& in) { return masked_fill(in[0], in[1], value); },
      .reference =
          [value](const std::vector<Ref>& in) { return where_ref(in[1], Ref({}, value), in[0]); },
      .grad_inputs = {0}};
}

OpCase where_case(std::string name, Shape c_shape, Shape a_shape, Shape b_shape) {
  return OpCase{
      .name = std::move(name),
      .dtypes = {DType::f32, DType::bf16},
      .inputs =
          [c_shape, a_shape, b_shape] {
            return std::vector<Tensor>{bernoulli(c_shape, 0.5), randn(a_shape), randn(b_shape)};
          },
      .op = [](const std::vector<Tensor>& in) { return where(in[0], in[1], in[2]); },
      .reference = [](const std::vector<Ref>& in) { return where_ref(in[0], in[1], in[2]); },
      .grad_inputs = {1, 2}};
}

LMF_REGISTER_OP_CASES({
    OpCase{.name = "embedding/repeated_ids_i64",
           .dtypes = {DType::f32, DType::bf16},
           .inputs =
               [] {
                 return std::vector<Tensor>{randn({10, 6}),
                                            ids_i64({3, 1, 3, 9, 0, 3, 1, 7, 7, 2}, {2, 5})};
               },
           .op = [](const std::vector<Tensor>& in) { return embedding(in[0], in[1]); },
           .reference = [](const std::vector<Ref>& in) { return embedding_ref(in[0], in[1]); },
           .grad_inputs = {0}},
    OpCase{.name = "embedding/i32_ids",
           .inputs =
               [] {
                 return std::vector<Tensor>{
                     randn({7, 5}), Tensor::from_vector<int32_t>({6, 0, 0, 4, 2, 6, 1}, {7})};
               },
           .op = [](const std::vector<Tensor>& in) { return embedding(in[0], in[1]); },
           .reference = [](const std::vector<Ref>& in) { return embedding_ref(in[0], in[1]); },
           .grad_inputs = {0}},
    // Forward only: padding rows still read the weight but get no gradient, which finite
    // differences cannot express (checked by Embedding.PaddingRowGetsNoGradient).
    OpCase{.name = "embedding/padding_idx_forward",
           .inputs =
               [] {
                 return std::vector<Tensor>{randn({6, 4}), ids_i64({2, 0, 2, 5, 2}, {5})};
               },
           .op = [](const std::vector<Tensor>& in) { return embedding(in[0], in[1], 2); },
           .reference = [](const std::vector<Ref>& in) { return embedding_ref(in[0], in[1]); }},
    concat_case("concat/dim0_unequal", {{2, 3, 4}, {1, 3, 4}, {3, 3, 4}}, 0),
    concat_case("concat/dim1_unequal", {{2, 1, 4}, {2, 3, 4}, {2, 2, 4}}, 1),
    concat_case("concat/last_dim_unequal", {{2, 3, 5}, {2, 3, 1}, {2, 3, 2}}, -1),
    concat_case("concat/single_input", {{3, 4}}, 1),
    OpCase{.name = "concat/non_contiguous_inputs",
           .inputs =
               [] {
                 return std::vector<Tensor>{randn({4, 3}), randn({4, 2})};
               },
           .op =
               [](const std::vector<Tensor>& in) {
                 return concat({in[0].transpose(0, 1), in[1].transpose(0, 1)}, 0);
               },
           .reference =
               [](const std::vector<Ref>& in) {
                 std::vector<Ref> ts;
                 for (const Ref& x : in) {
                   Ref t({x.shape[1], x.shape[0]});
                   for (int64_t i = 0; i < x.shape[0]; ++i)
                     for (int64_t j = 0; j < x.shape[1]; ++j)
                       t[j * x.shape[0] + i] = x[i * x.shape[1] + j];
                   ts.push_back(t);
                 }
                 return concat_ref(ts, 0);
               },
           .grad_inputs = {0, 1}},
    stack_case("stack/dim0", {3, 4}, 3, 0),
    stack_case("stack/dim1", {3, 4}, 2, 1),
    stack_case("stack/last_dim", {3, 4}, 4, -1),
    split_case("split/dim0_unequal", {6, 3, 2}, {1, 3, 2}, 0),
    split_case("split/dim1_unequal", {2, 7, 3}, {4, 0, 1, 2}, 1),
    split_case("split/last_dim_unequal", {2, 3, 9}, {2, 5, 2}, -1),
    chunk_case("chunk/7_into_3", {7, 3}, 3, {3, 3, 1}, 0),
    chunk_case("chunk/5_into_4_gives_3", {2, 5}, 4, {2, 2, 1}, -1),
    chunk_case("chunk/even_middle", {2, 6, 2}, 3, {2, 2, 2}, 1),
    gather_case("gather/dim0_smaller_index", {5, 4, 3}, {7, 3, 2}, 0),
    gather_case("gather/last_dim", {4, 5, 6}, {3, 5, 8}, -1),
    gather_case("gather/middle_dim", {3, 6, 4}, {3, 2, 4}, 1),
    masked_fill_case("masked_fill/same_shape", {3, 5}, {3, 5}, -1e4),
    masked_fill_case("masked_fill/broadcast_mask", {2, 3, 4}, {3, 1}, -3.5),
    masked_fill_case("masked_fill/broadcast_leading", {2, 3, 4}, {2, 1, 4}, 2.25),
    where_case("where/same_shape", {3, 4}, {3, 4}, {3, 4}),
    where_case("where/broadcast_all", {2, 1, 4}, {3, 1}, {2, 3, 4}),
    where_case("where/scalar_b", {2, 5}, {2, 5}, {}),
});

// ---- plain tests -------------------------------------------------------------------------------

TEST(Embedding, RepeatedIdsAccumulateAndPaddingRowGetsNoGradient) {
  Tensor w = randn({5, 3}).set_requires_grad(true);
  Tensor ids = ids_i64({1, 4, 1, 1, 0, 4}, {2, 3});
  Tensor out = embedding(w, ids, 4);
  EXPECT_EQ(out.shape(), (Shape{2, 3, 3}));
  EXPECT_EQ(out.at({0, 1, 2}), w.at({4, 2}));  // padding rows still read the weight
  out.backward(Tensor::ones(out.shape()));
  Tensor g = w.grad();
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_EQ(g.at({1, c}), 3.0);
    EXPECT_EQ(g.at({0, c}), 1.0);
    EXPECT_EQ(g.at({4, c}), 0.0);
    EXPECT_EQ(g.at({2, c}), 0.0);
  }
}

TEST(Embedding, I32AndI64IdsAgreeAndLargeBatchBackwardIsExact) {
  Tensor w = randn({50, 40}).set_requires_grad(true);
  Tensor ids64 = randint({64, 33}, 0, 50);
  Tensor ids32 = ids64.to(DType::i32);
  Tensor a = embedding(w, ids64), b = embedding(w, ids32);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  // Integer-valued gradients make the scatter-add exact: counts of each id.
  b.backward(Tensor::ones(b.shape()));
  std::vector<int64_t> counts(50, 0);
  for (int64_t id : ids64.to_vector<int64_t>()) ++counts[id];
  Tensor g = w.grad();
  for (int64_t v = 0; v < 50; ++v) EXPECT_EQ(g.at({v, 17}), static_cast<double>(counts[v]));
}

TEST(Embedding, BadInputsThrow) {
  Tensor w = randn({4, 3});
  EXPECT_THROW(embedding(w, Tensor::from_vector<float>({1, 2}, {2})), DTypeError);
  EXPECT_THROW(embedding(randn({4}), ids_i64({1}, {1})), ShapeError);
  EXPECT_THROW(embedding(w, ids_i64({0, 4}, {2})), IndexError);
  EXPECT_THROW(embedding(w, ids_i64({-1}, {1})), IndexError);
  EXPECT_THROW(embedding(w, Tensor::from_vector<int32_t>({7}, {1})), IndexError);
  EXPECT_THROW(embedding(w, ids_i64({0}, {1}), 4), IndexError);
  try {
    embedding(w, ids_i64({0, 1, 9}, {3}));
    FAIL() << "no throw";
  } catch (const IndexError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("embedding"), std::string::npos) << m;
    EXPECT_NE(m.find("id 9"), std::string::npos) << m;
    EXPECT_NE(m.find("size 4"), std::string::npos) << m;
  }
}

TEST(Concat, BadInputsThrow) {
  EXPECT_THROW(concat({}, 0), ValueError);
  EXPECT_THROW(concat({randn({2, 3}), randn({2, 4})}, 0), ShapeError);
  EXPECT_THROW(concat({randn({2, 3}), randn({2, 3, 1})}, 0), ShapeError);
  EXPECT_THROW(concat({randn({2, 3}), randn({2, 3}).to(DType::bf16)}, 0), DTypeError);
  EXPECT_THROW(concat({randn({2, 3})}, 2), IndexError);
  EXPECT_THROW(concat({Tensor::scalar(1.0)}, 0), ShapeError);
  try {
    concat({randn({2, 3}), randn({5, 4})}, 1);
    FAIL() << "no throw";
  } catch (const ShapeError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("concat"), std::string::npos) << m;
    EXPECT_NE(m.find("[5, 4]"), std::string::npos) << m;
  }
}

TEST(Concat, IntegerAndBoolTensorsConcatenate) {
  Tensor a = ids_i64({1, 2, 3, 4}, {2, 2}), b = ids_i64({5, 6}, {2, 1});
  EXPECT_EQ(concat({a, b}, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 5, 3, 4, 6}));
}

TEST(SplitChunk, PiecesAreViewsWithTorchSizes) {
  Tensor x = randn({5, 2});
  auto ps = chunk(x, 4, 0);  // torch: ceil(5/4) = 2 -> sizes 2, 2, 1
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(ps[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(ps[2].shape(), (Shape{1, 2}));
  EXPECT_EQ(ps[1].storage().get(), x.storage().get());
  EXPECT_EQ(ps[2].at({0, 1}), x.at({4, 1}));
  EXPECT_EQ(chunk(x, 10, 0).size(), 5u);
  EXPECT_EQ(chunk(randn({0, 3}), 3, 0).size(), 3u);
  auto ss = split(x, {0, 5}, 0);
  EXPECT_EQ(ss[0].shape(), (Shape{0, 2}));
}

TEST(SplitChunk, BadInputsThrow) {
  Tensor x = randn({5, 2});
  EXPECT_THROW(split(x, {2, 2}, 0), ShapeError);
  EXPECT_THROW(split(x, {6, -1}, 0), ShapeError);
  EXPECT_THROW(split(x, {5}, 2), IndexError);
  EXPECT_THROW(split(Tensor::scalar(1.0), {1}, 0), ShapeError);
  EXPECT_THROW(chunk(x, 0, 0), ValueError);
  EXPECT_THROW(chunk(x, 2, -3), IndexError);
}

TEST(Stack, BadInputsThrow) {
  EXPECT_THROW(stack({}, 0), ValueError);
  EXPECT_THROW(stack({randn({2, 3}), randn({3, 2})}, 0), ShapeError);
  EXPECT_THROW(stack({randn({2}), randn({2}).to(DType::bf16)}, 0), DTypeError);
  EXPECT_THROW(stack({randn({2}), randn({2})}, 2), IndexError);
  EXPECT_EQ(stack({randn({2}), randn({2})}, -1).shape(), (Shape{2, 2}));
}

TEST(Gather, BadInputsThrow) {
  Tensor x = randn({3, 4});
  EXPECT_THROW(gather(x, 1, Tensor::from_vector<int32_t>({0, 1, 2}, {3, 1})), DTypeError);
  EXPECT_THROW(gather(x, 1, ids_i64({0, 1, 2}, {3})), ShapeError);
  EXPECT_THROW(gather(x, 1, ids_i64({0, 1, 2, 3}, {4, 1})), ShapeError);  // dim 0 larger than x
  EXPECT_THROW(gather(x, 1, ids_i64({0, 4, 2}, {3, 1})), IndexError);
  EXPECT_THROW(gather(x, 0, ids_i64({-1}, {1, 1})), IndexError);
  EXPECT_THROW(gather(x, 2, ids_i64({0}, {1, 1})), IndexError);
  try {
    gather(x, -1, ids_i64({0, 1, 7}, {3, 1}));
    FAIL() << "no throw";
  } catch (const IndexError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("gather"), std::string::npos) << m;
    EXPECT_NE(m.find("7"), std::string::npos) << m;
  }
}

TEST(Gather, LargeScatterAddMatchesCounts) {
  // Large enough to run threaded; integer gradients keep the sums exact.
  Tensor x = randn({64, 300}).set_requires_grad(true);
  Tensor idx = randint({200, 300}, 0, 64);
  Tensor out = gather(x, 0, idx);
  EXPECT_EQ(out.at({17, 5}), x.at({static_cast<int64_t>(idx.at({17, 5})), 5}));
  out.backward(Tensor::ones(out.shape()));
  std::vector<int64_t> counts(64, 0);
  for (int64_t r = 0; r < 200; ++r) ++counts[static_cast<int64_t>(idx.at({r, 123}))];
  for (int64_t v = 0; v < 64; ++v) EXPECT_EQ(x.grad().at({v, 123}), static_cast<double>(counts[v]));
}

TEST(MaskedFill, BadInputsThrowAndIntegerTensorsWork) {
  Tensor x = randn({2, 3});
  EXPECT_THROW(masked_fill(x, Tensor::zeros({2, 3}, DType::f32), 0.0), DTypeError);
  EXPECT_THROW(masked_fill(x, Tensor::zeros({3, 2}, DType::boolean), 0.0), ShapeError);
  EXPECT_THROW(masked_fill(x, Tensor::zeros({4, 2, 3}, DType::boolean), 0.0), ShapeError);
  Tensor ints = ids_i64({1, 2, 3}, {3});
  Tensor m = Tensor::from_vector<uint8_t>({1, 0, 1}, {3}).to(DType::boolean);
  EXPECT_EQ(masked_fill(ints, m, -7).to_vector<int64_t>(), (std::vector<int64_t>{-7, 2, -7}));
}

TEST(Where, BadInputsThrowAndLargeBroadcastMatches) {
  EXPECT_THROW(where(Tensor::zeros({2}, DType::f32), randn({2}), randn({2})), DTypeError);
  EXPECT_THROW(where(Tensor::zeros({2}, DType::boolean), randn({2}), randn({2}).to(DType::bf16)),
               DTypeError);
  EXPECT_THROW(where(Tensor::zeros({3}, DType::boolean), randn({2}), randn({2})), ShapeError);
  // Threaded path: [8, 1, 64] cond against [8, 128, 64] a and [64] b.
  Tensor c = bernoulli({8, 1, 64}, 0.5), a = randn({8, 128, 64}), b = randn({64});
  Tensor out = where(c, a, b);
  for (int64_t i : {0L, 3L, 7L})
    for (int64_t j : {0L, 77L, 127L})
      for (int64_t k : {0L, 31L, 63L})
        EXPECT_EQ(out.at({i, j, k}), c.at({i, 0, k}) != 0 ? a.at({i, j, k}) : b.at({k}));
}

}  // namespace
}  // namespace lmf::test
