// The shared op-test table. Each op family's test file registers OpCases; test_op_table.cpp runs
// every case on every dtype it lists against a float64 reference, and checks the backward of every
// differentiable input against central finite differences of that float64 reference.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "lmforge/ops/ops.h"

namespace lmf::test {

// A float64 tensor for reference implementations (row-major).
struct Ref {
  Shape shape;
  std::vector<double> v;
  Ref() = default;
  explicit Ref(Shape s, double fill = 0.0) : shape(std::move(s)), v(shape_numel(shape), fill) {}
  int64_t numel() const { return static_cast<int64_t>(v.size()); }
  double& operator[](int64_t i) { return v[i]; }
  double operator[](int64_t i) const { return v[i]; }
  int64_t size(int64_t d) const { return shape[d < 0 ? d + shape.size() : d]; }
};
Ref to_ref(const Tensor& t);

struct OpCase {
  std::string name;                       // "family/variant", unique
  std::vector<DType> dtypes{DType::f32};  // forward is checked on each
  std::function<std::vector<Tensor>()> inputs;  // f32 (or integer/bool) inputs; seeded by runner
  std::function<Tensor(const std::vector<Tensor>&)> op;
  std::function<Ref(const std::vector<Ref>&)> reference;
  std::vector<int> grad_inputs;  // indices of inputs to gradient-check (f32 only)
  double tol = 1e-5;             // |got - ref| <= tol * max(1, |ref|)  (f32)
  double bf16_tol = 2e-2;        // same, for bf16/f16 runs
  double grad_tol = 1e-3;        // |analytic - numeric| <= grad_tol * max(|num|, 0.1 max|num|) + 1e-6
  double fd_step = 1e-6;         // finite-difference step (in float64)
};

std::vector<OpCase>& op_registry();
struct OpCaseRegistrar {
  explicit OpCaseRegistrar(std::vector<OpCase> cases) {
    for (auto& c : cases) op_registry().push_back(std::move(c));
  }
};

}  // namespace lmf::test

#define LMF_OP_CASES_CAT2(a, b) a##b
#define LMF_OP_CASES_CAT(a, b) LMF_OP_CASES_CAT2(a, b)
// LMF_REGISTER_OP_CASES({ OpCase{...}, ... });  at namespace scope in a test file.
#define LMF_REGISTER_OP_CASES(...)                                                   \
  static ::lmf::test::OpCaseRegistrar LMF_OP_CASES_CAT(lmf_op_cases_, __LINE__)( \
      std::vector<::lmf::test::OpCase> __VA_ARGS__)
