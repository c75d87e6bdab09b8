#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace lmf::kernels {

namespace {


struct Add {
  float operator()(float a, float b) const { return a + b; }
};
struct Sub {
  float operator()(float a, float b) const { return a - b; }
};
struct Mul {
  float operator()(float a, float b) const { return a * b; }
};
struct Div {
  float operator()(float a, float b) const { return a / b; }
};

template <class Fn>
void with_binop(BinOp op, Fn&& fn) {
  switch (op) {
    case BinOp::add:
      return fn(Add{});
    case BinOp::sub:
      return fn(Sub{});
    case BinOp::mul:
      return fn(Mul{});
    case BinOp::div:
      return fn(Div{});
  }
}

// f with its operands swapped (b op a).
template <class F>
struct Swap {
  F f;
  float operator()(float a, float b) const { return f(b, a); }
};

template <class T, class F>
void map2(const T* a, const T* b, T* out, int64_t n, F f) {
  for_range(n, kParallelGrain,
            [=](int64_t i) LMF_INLINE_LAMBDA { st(out[i], f(ld(a[i]), ld(b[i]))); });
}

template <class T, class F>
void map2_row(const T* a, const T* b, T* out, int64_t rows, int64_t cols, F f) {
  for_range(rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(cols, 1)),
            [=](int64_t r) LMF_INLINE_LAMBDA {
              const T* ar = a + r * cols;
              T* o = out + r * cols;
              for (int64_t c = 0; c < cols; ++c) st(o[c], f(ld(ar[c]), ld(b[c])));
            });
}

template <class T, class F>
void map1(const T* x, T* y, int64_t n, F f) {
  for_range(n, kParallelGrain, [=](int64_t i) LMF_INLINE_LAMBDA { st(y[i], f(ld(x[i]))); });
}

// gx = gy * d(x, y).
template <class T, class D>
void map_bwd(const T* x, const T* y, const T* gy, T* gx, int64_t n, D d) {
  for_range(n, kParallelGrain,
            [=](int64_t i) LMF_INLINE_LAMBDA { st(gx[i], ld(gy[i]) * d(ld(x[i]), ld(y[i]))); });
}

constexpr float kSqrt1_2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluC = 0.044715f;

LMF_ALWAYS_INLINE float gelu_erf(float x) {
  return 0.5f * x * (1.f + vm::erf(x * kSqrt1_2));
}
LMF_ALWAYS_INLINE float gelu_tanh(float x) {
  return 0.5f * x * (1.f + vm::tanh(kSqrt2OverPi * (x + kGeluC * x * x * x)));
}

}  // namespace

bool cpu_has_avx512() {
  static const bool has = [] {
    const char* off = std::getenv("LMFORGE_DISABLE_AVX512");  // to test the baseline build
    if (off && *off && *off != '0') return false;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma");
  }();
  return has;
}

template <class T>
void binary_same(BinOp op, const T* a, const T* b, T* out, int64_t n) {
  with_binop(op, [&](auto f) { map2(a, b, out, n, f); });
}

template <class T>
void binary_row(BinOp op, const T* a, const T* b, T* out, int64_t rows, int64_t cols,
                bool swapped) {
  with_binop(op, [&](auto f) {
    if (swapped)
      map2_row(a, b, out, rows, cols, Swap<decltype(f)>{f});
    else
      map2_row(a, b, out, rows, cols, f);
  });
}

template <class T>
void binary_scalar(BinOp op, const T* a, float s, T* out, int64_t n, bool swapped) {
  with_binop(op, [&](auto f) {
    if (swapped)
      map1(a, out, n, [f, s](float x) { return f(s, x); });
    else
      map1(a, out, n, [f, s](float x) { return f(x, s); });
  });
}

template <class T>
void binary_run(BinOp op, const T* a, int64_t sa, const T* b, int64_t sb, T* out, int64_t so,
                int64_t n) {
  with_binop(op, [&](auto f) {
    if (sa == 1 && sb == 1 && so == 1) {
      for (int64_t k = 0; k < n; ++k) st(out[k], f(ld(a[k]), ld(b[k])));
    } else if (sa == 1 && sb == 0 && so == 1) {
      const float bv = ld(b[0]);
      for (int64_t k = 0; k < n; ++k) st(out[k], f(ld(a[k]), bv));
    } else if (sa == 0 && sb == 1 && so == 1) {
      const float av = ld(a[0]);
      for (int64_t k = 0; k < n; ++k) st(out[k], f(av, ld(b[k])));
    } else {
      for (int64_t k = 0; k < n; ++k) st(out[k * so], f(ld(a[k * sa]), ld(b[k * sb])));
    }
  });
}

template <class T>
void unary(UnOp op, const T* x, T* y, int64_t n, float p) {
  switch (op) {
    case UnOp::neg:
      return map1(x, y, n, [](float v) { return -v; });
    case UnOp::exp:
      return map1(x, y, n, [](float v) { return vm::exp(v); });
    case UnOp::log:
      return map1(x, y, n, [](float v) { return std::log(v); });
    case UnOp::sqrt:
      return map1(x, y, n, [](float v) { return std::sqrt(v); });
    case UnOp::pow:
      if (p == 2.f) return map1(x, y, n, [](float v) { return v * v; });
      if (p == 1.f) return map1(x, y, n, [](float v) { return v; });
      return map1(x, y, n, [p](float v) { return std::pow(v, p); });
    case UnOp::relu:
      return map1(x, y, n, [](float v) { return v > 0.f ? v : 0.f; });
    case UnOp::gelu:
      return map1(x, y, n, [](float v) { return gelu_erf(v); });
    case UnOp::gelu_tanh:
      return map1(x, y, n, [](float v) { return gelu_tanh(v); });
    case UnOp::silu:
      return map1(x, y, n, [](float v) { return v * vm::sigmoid(v); });
    case UnOp::tanh:
      return map1(x, y, n, [](float v) { return vm::tanh(v); });
    case UnOp::sigmoid:
      return map1(x, y, n, [](float v) { return vm::sigmoid(v); });
    case UnOp::add_scalar:
      return map1(x, y, n, [p](float v) { return v + p; });
    case UnOp::mul_scalar:
      return map1(x, y, n, [p](float v) { return v * p; });
  }
}

template <class T>
void unary_backward(UnOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, float p) {
  switch (op) {
    case UnOp::neg:
      return map_bwd(x, y, gy, gx, n, [](float, float) { return -1.f; });
    case UnOp::exp:
      return map_bwd(x, y, gy, gx, n, [](float, float o) { return o; });
    case UnOp::log:
      return map_bwd(x, y, gy, gx, n, [](float v, float) { return 1.f / v; });
    case UnOp::sqrt:
      return map_bwd(x, y, gy, gx, n, [](float, float o) { return 0.5f / o; });
    case UnOp::pow:
      if (p == 2.f) return map_bwd(x, y, gy, gx, n, [](float v, float) { return 2.f * v; });
      return map_bwd(x, y, gy, gx, n, [p](float v, float) { return p * std::pow(v, p - 1.f); });
    case UnOp::relu:
      return map_bwd(x, y, gy, gx, n, [](float v, float) { return v > 0.f ? 1.f : 0.f; });
    case UnOp::gelu:
      return map_bwd(x, y, gy, gx, n, [](float v, float) {
        const float cdf = 0.5f * (1.f + vm::erf(v * kSqrt1_2));
        return cdf + v * kInvSqrt2Pi * vm::exp(-0.5f * v * v);
      });
    case UnOp::gelu_tanh:
      return map_bwd(x, y, gy, gx, n, [](float v, float) {
        const float t = vm::tanh(kSqrt2OverPi * (v + kGeluC * v * v * v));
        const float du = kSqrt2OverPi * (1.f + 3.f * kGeluC * v * v);
        return 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * du;
      });
    case UnOp::silu:
      return map_bwd(x, y, gy, gx, n, [](float v, float) {
        const float s = vm::sigmoid(v);
        return s * (1.f + v * (1.f - s));
      });
    case UnOp::tanh:
      return map_bwd(x, y, gy, gx, n, [](float, float o) { return 1.f - o * o; });
    case UnOp::sigmoid:
      return map_bwd(x, y, gy, gx, n, [](float, float o) { return o * (1.f - o); });
    case UnOp::add_scalar:
      return map_bwd(x, y, gy, gx, n, [](float, float) { return 1.f; });
    case UnOp::mul_scalar:
      return map_bwd(x, y, gy, gx, n, [p](float, float) { return p; });
  }
}

#define LMF_INSTANTIATE(T)                                                                        \
  template void binary_same<T>(BinOp, const T*, const T*, T*, int64_t);                           \
  template void binary_row<T>(BinOp, const T*, const T*, T*, int64_t, int64_t, bool);             \
  template void binary_scalar<T>(BinOp, const T*, float, T*, int64_t, bool);                      \
  template void binary_run<T>(BinOp, const T*, int64_t, const T*, int64_t, T*, int64_t, int64_t); \
  template void unary<T>(UnOp, const T*, T*, int64_t, float);                                     \
  template void unary_backward<T>(UnOp, const T*, const T*, const T*, T*, int64_t, float);
LMF_INSTANTIATE(float)
LMF_INSTANTIATE(bf16_t)
#undef LMF_INSTANTIATE

}  // namespace lmf::kernels
