#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "ops/op_harness.h"

namespace lmf::test {

std::vector<OpCase>& op_registry() {
  static std::vector<OpCase> cases;
  return cases;
}

Ref to_ref(const Tensor& t) {
  Ref r(t.shape());
  Tensor c = t.contiguous();
  visit_dtype(c.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* p = static_cast<const T*>(c.data_ptr());
    for (int64_t i = 0; i < r.numel(); ++i) r[i] = to_double(p[i]);
  });
  return r;
}

namespace {

struct Param {
  size_t index;
  DType dtype;
};

// Failure messages name the case ("add/row f32") instead of dumping the struct's bytes.
void PrintTo(const Param& p, std::ostream* os) {
  *os << op_registry()[p.index].name << " " << dtype_name(p.dtype);
}

std::string param_name(const testing::TestParamInfo<Param>& info) {
  std::string n = op_registry()[info.param.index].name + "_" +
                  std::string(dtype_name(info.param.dtype));
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

std::vector<Param> all_params() {
  std::vector<Param> ps;
  for (size_t i = 0; i < op_registry().size(); ++i)
    for (DType d : op_registry()[i].dtypes) ps.push_back({i, d});
  return ps;
}

// Gradients are checked once per differentiable case, in f32.
std::vector<Param> grad_params() {
  std::vector<Param> ps;
  for (size_t i = 0; i < op_registry().size(); ++i)
    if (!op_registry()[i].grad_inputs.empty()) ps.push_back({i, DType::f32});
  return ps;
}

class OpTable : public testing::TestWithParam<Param> {};
class OpGrad : public testing::TestWithParam<Param> {};

void expect_close(const Ref& got, const Ref& want, double tol, const std::string& what) {
  ASSERT_EQ(got.shape, want.shape) << what << ": shape " << shape_str(got.shape) << " vs reference "
                                   << shape_str(want.shape);
  double worst = 0;
  int64_t worst_i = -1;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double err = std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i]));
    if (!(err <= worst)) worst = err, worst_i = i;  // also catches NaN
  }
  EXPECT_LE(worst, tol) << what << ": worst relative error at flat index " << worst_i << ": got "
                        << got[worst_i] << " reference " << want[worst_i];
}

TEST_P(OpTable, ForwardMatchesFloat64Reference) {
  const OpCase& c = op_registry()[GetParam().index];
  const DType dt = GetParam().dtype;
  manual_seed(std::hash<std::string>{}(c.name) & 0xffffffff);
  std::vector<Tensor> ins = c.inputs();
  for (auto& t : ins)
    if (t.dtype() == DType::f32 && dt != DType::f32) t = t.to(dt);
  std::vector<Ref> refs;
  for (auto& t : ins) refs.push_back(to_ref(t));
  Tensor out = c.op(ins);
  if (dt != DType::f32) {
    EXPECT_EQ(out.dtype(), dt) << "a " << dtype_name(dt) << " op should return " << dtype_name(dt);
  }
  expect_close(to_ref(out), c.reference(refs), dt == DType::f32 ? c.tol : c.bf16_tol,
               c.name + " forward");
}

TEST_P(OpGrad, BackwardMatchesFiniteDifferences) {
  const OpCase& c = op_registry()[GetParam().index];
  manual_seed(std::hash<std::string>{}(c.name) & 0xffffffff);
  std::vector<Tensor> ins = c.inputs();
  for (int i : c.grad_inputs) ins[i].set_requires_grad(true);
  Tensor out = c.op(ins);
  ASSERT_TRUE(out.requires_grad()) << c.name << ": output does not require grad";
  Tensor seed = randn(out.shape());
  out.backward(seed);
  const Ref r = to_ref(seed);

  std::vector<Ref> refs;
  for (auto& t : ins) refs.push_back(to_ref(t.detach()));
  for (int i : c.grad_inputs) {
    Tensor g = ins[i].grad();
    ASSERT_TRUE(g.defined()) << c.name << ": no gradient for input " << i;
    const Ref ana = to_ref(g);
    ASSERT_EQ(ana.shape, refs[i].shape);
    // Check at most 48 evenly spread elements of each input.
    const int64_t n = refs[i].numel();
    const int64_t step = std::max<int64_t>(1, n / 48);
    std::vector<std::pair<int64_t, double>> num;
    double max_num = 0;
    for (int64_t j = 0; j < n; j += step) {
      std::vector<Ref> p = refs, m = refs;
      p[i][j] += c.fd_step;
      m[i][j] -= c.fd_step;
      const Ref op = c.reference(p), om = c.reference(m);
      double d = 0;
      for (int64_t k = 0; k < op.numel(); ++k) d += (op[k] - om[k]) * r[k];
      d /= 2 * c.fd_step;
      num.push_back({j, d});
      max_num = std::max(max_num, std::abs(d));
    }
    for (auto [j, d] : num) {
      const double tol = c.grad_tol * std::max(std::abs(d), 0.1 * max_num) + 1e-6;
      EXPECT_NEAR(ana[j], d, tol) << c.name << ": d/d input" << i << "[" << j << "]";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpTable, testing::ValuesIn(all_params()), param_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpGrad, testing::ValuesIn(grad_params()), param_name);

}  // namespace
}  // namespace lmf::test
