// oneDNN matmul with a process-wide primitive cache; plus the activation loops linear's unfused
// (training) path uses.
#include "kernels/cpu/gemm.h"

#include <cmath>
#include <cstdlib>
#include <dnnl.hpp>
#include <mutex>
#include <unordered_map>

#include "kernels/cpu/elementwise.h"
#include "lmforge/core/error.h"
#include "lmforge/core/runtime.h"

namespace lmf::cpu {

namespace {

using dnnl::memory;

dnnl::engine& engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}
dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

struct KeyHash {
  size_t operator()(const std::vector<int64_t>& k) const {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t v : k) h = (h ^ static_cast<uint64_t>(v)) * 0x100000001b3ull;
    return h;
  }
};

struct Entry {
  dnnl::matmul prim;
  memory::desc a_md, b_md, bias_md, c_md;
};

std::mutex g_cache_mutex;
std::unordered_map<std::vector<int64_t>, std::shared_ptr<const Entry>, KeyHash> g_cache;

memory::data_type dnnl_type(DType t) {
  return t == DType::bf16 ? memory::data_type::bf16 : memory::data_type::f32;
}

// Makes a [rows, cols] matrix's strides canonical where a dim of size 1 leaves them arbitrary,
// so that oneDNN recognises the plain row- or column-major layout.
void canonical_strides(int64_t rows, int64_t cols, int64_t& rs, int64_t& cs) {
  if (rows == 1 && cols == 1) {
    rs = cs = 1;
  } else if (rows == 1) {
    rs = cs == 1 ? cols : 1;
  } else if (cols == 1) {
    cs = rs == 1 ? rows : 1;
  }
}

// oneDNN descriptor of one operand: batch dims (1 where broadcast), then the matrix.
memory::desc operand_md(const GemmDesc& d, const std::vector<int64_t>& bstrides, int64_t rows,
                        int64_t cols, int64_t rs, int64_t cs, DType t) {
  const size_t nb = d.batch.size();
  memory::dims dims(nb + 2), strides(nb + 2);
  dims[nb] = rows, dims[nb + 1] = cols;
  strides[nb] = rs, strides[nb + 1] = cs;
  int64_t extent = std::max(rows * rs, cols * cs);
  for (size_t i = nb; i-- > 0;) {
    const bool broadcast = bstrides[i] == 0 || d.batch[i] == 1;
    dims[i] = broadcast ? 1 : d.batch[i];
    strides[i] = broadcast ? extent : bstrides[i];
    extent = std::max(extent, strides[i] * dims[i]);
  }
  return memory::desc(dims, dnnl_type(t), strides);
}

dnnl::algorithm eltwise_alg(GemmAct act) {
  switch (act) {
    case GemmAct::relu:
      return dnnl::algorithm::eltwise_relu;
    case GemmAct::gelu_erf:
      return dnnl::algorithm::eltwise_gelu_erf;
    case GemmAct::gelu_tanh:
      return dnnl::algorithm::eltwise_gelu_tanh;
    case GemmAct::silu:
      return dnnl::algorithm::eltwise_swish;
    case GemmAct::tanh:
      return dnnl::algorithm::eltwise_tanh;
    case GemmAct::none:
      break;
  }
  return dnnl::algorithm::undef;
}

std::shared_ptr<const Entry> create_entry(const GemmDesc& d) {
  auto e = std::make_shared<Entry>();
  e->a_md = operand_md(d, d.a_batch_strides, d.m, d.k, d.a_rs, d.a_cs, d.ab_type);
  e->b_md = operand_md(d, d.b_batch_strides, d.k, d.n, d.b_rs, d.b_cs, d.ab_type);
  e->c_md = operand_md(d, d.c_batch_strides, d.m, d.n, d.c_rs, 1, d.c_type);
  if (d.has_bias) {
    memory::dims dims(d.batch.size() + 2, 1), strides(d.batch.size() + 2, d.n);
    dims.back() = d.n;
    strides.back() = 1;
    e->bias_md = memory::desc(dims, dnnl_type(d.bias_type), strides);
  }
  dnnl::post_ops po;
  if (d.accumulate) po.append_sum(1.0f);
  if (d.act != GemmAct::none) {
    // alpha is swish's beta in x * sigmoid(beta x); for relu it would be the negative slope.
    const float alpha = d.act == GemmAct::silu ? 1.0f : 0.0f;
    po.append_eltwise(1.0f, eltwise_alg(d.act), alpha, 0.0f);
  }
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  dnnl::matmul::desc desc = d.has_bias ? dnnl::matmul::desc(e->a_md, e->b_md, e->bias_md, e->c_md)
                                       : dnnl::matmul::desc(e->a_md, e->b_md, e->c_md);
  e->prim = dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, engine()));
  return e;
}

std::shared_ptr<const Entry> lookup(const GemmDesc& d) {
  const int64_t bias_type = d.has_bias ? static_cast<int64_t>(d.bias_type) : -1;
  std::vector<int64_t> key{d.m, d.n, d.k, d.a_rs, d.a_cs, d.b_rs, d.b_cs, d.c_rs};
  key.insert(key.end(), {static_cast<int64_t>(d.ab_type), static_cast<int64_t>(d.c_type), bias_type,
                         static_cast<int64_t>(d.act), d.accumulate, num_threads()});
  for (size_t i = 0; i < d.batch.size(); ++i) {
    key.insert(key.end(),
               {d.batch[i], d.a_batch_strides[i], d.b_batch_strides[i], d.c_batch_strides[i]});
  }
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  auto it = g_cache.find(key);
  if (it != g_cache.end()) return it->second;
  auto e = create_entry(d);
  g_cache.emplace(std::move(key), e);
  return e;
}

float act_value(GemmAct act, float x) {
  switch (act) {
    case GemmAct::none:
      return x;
    case GemmAct::relu:
      return x > 0 ? x : 0.0f;
    case GemmAct::gelu_erf:
      return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case GemmAct::gelu_tanh: {
      const float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.0f + std::tanh(u));
    }
    case GemmAct::silu:
      return x / (1.0f + std::exp(-x));
    case GemmAct::tanh:
      return std::tanh(x);
  }
  return x;
}

float act_derivative(GemmAct act, float x) {
  switch (act) {
    case GemmAct::none:
      return 1.0f;
    case GemmAct::relu:
      return x > 0 ? 1.0f : 0.0f;
    case GemmAct::gelu_erf:
      return 0.5f * (1.0f + std::erf(x * 0.70710678118654752f)) +
             x * 0.39894228040143268f * std::exp(-0.5f * x * x);
    case GemmAct::gelu_tanh: {
      const float c = 0.79788456080286536f;
      const float t = std::tanh(c * (x + 0.044715f * x * x * x));
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 3 * 0.044715f * x * x);
    }
    case GemmAct::silu: {
      const float s = 1.0f / (1.0f + std::exp(-x));
      return s * (1.0f + x * (1.0f - s));
    }
    case GemmAct::tanh: {
      const float t = std::tanh(x);
      return 1.0f - t * t;
    }
  }
  return 1.0f;
}

float load(DType t, const void* p, int64_t i) {
  return t == DType::bf16 ? bf16_to_f32(static_cast<const uint16_t*>(p)[i])
                          : static_cast<const float*>(p)[i];
}
void store(DType t, void* p, int64_t i, float v) {
  if (t == DType::bf16)
    static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
  else
    static_cast<float*>(p)[i] = v;
}

// k == 0: the product is empty, so C (+)= act(bias or 0). oneDNN rejects zero-sized reductions.
void gemm_empty_k(const GemmDesc& d, const void* bias, void* c) {
  int64_t count = 1;
  for (int64_t s : d.batch) count *= s;
  for (int64_t bi = 0; bi < count; ++bi) {
    int64_t rem = bi, off = 0;
    for (size_t j = d.batch.size(); j-- > 0;) {
      off += (rem % d.batch[j]) * d.c_batch_strides[j];
      rem /= d.batch[j];
    }
    for (int64_t i = 0; i < d.m; ++i) {
      for (int64_t j = 0; j < d.n; ++j) {
        const int64_t at = off + i * d.c_rs + j;
        float v = d.has_bias ? load(d.bias_type, bias, j) : 0.0f;
        if (d.accumulate) v += load(d.c_type, c, at);
        store(d.c_type, c, at, act_value(d.act, v));
      }
    }
  }
}

}  // namespace

// Measured with bench_gemm_layouts: n = 3072 runs at ~35 % of the swapped form, n <= 1536 as fast.
bool gemm_swap_pays(const GemmDesc& d) {
  static const bool on = std::getenv("LMFORGE_NO_GEMM_SWAP") == nullptr;  // for A/B runs
  return on && d.batch.empty() && d.ab_type == DType::f32 && d.c_type == DType::f32 &&
         !d.has_bias && d.act == GemmAct::none && !d.accumulate && d.b_cs == 1 && d.n >= 2048 &&
         d.m >= 64 && d.k > 0;
}

GemmDesc gemm_swapped(const GemmDesc& d) {
  GemmDesc s = d;
  std::swap(s.m, s.n);
  s.a_rs = d.b_cs, s.a_cs = d.b_rs;  // B^T [n, k]
  s.b_rs = d.a_cs, s.b_cs = d.a_rs;  // A^T [k, m]
  s.c_rs = d.m;
  return s;
}

void transpose_f32(const float* src, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  constexpr int64_t kB = 32;
  const int64_t row_blocks = (rows + kB - 1) / kB;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t rb = 0; rb < row_blocks; ++rb) {
    const int64_t i0 = rb * kB, i1 = std::min(rows, i0 + kB);
    for (int64_t j0 = 0; j0 < cols; j0 += kB) {
      const int64_t j1 = std::min(cols, j0 + kB);
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = i0; i < i1; ++i) dst[j * ldd + i] = src[i * cols + j];
    }
  }
}

void gemm(const GemmDesc& desc, const void* a, const void* b, const void* bias, void* c) {
  int64_t count = 1;
  for (int64_t s : desc.batch) count *= s;
  if (count == 0 || desc.m == 0 || desc.n == 0) return;
  if (desc.k == 0) return gemm_empty_k(desc, bias, c);
  GemmDesc d = desc;
  canonical_strides(d.m, d.k, d.a_rs, d.a_cs);
  canonical_strides(d.k, d.n, d.b_rs, d.b_cs);
  if (d.m == 1) d.c_rs = d.n;
  if (gemm_small_applies(d))
    return gemm_small(d, static_cast<const float*>(a), static_cast<const float*>(b),
                      static_cast<const float*>(bias), static_cast<float*>(c));
  try {
    auto e = lookup(d);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, memory(e->a_md, engine(), const_cast<void*>(a))},
        {DNNL_ARG_WEIGHTS, memory(e->b_md, engine(), const_cast<void*>(b))},
        {DNNL_ARG_DST, memory(e->c_md, engine(), c)}};
    if (d.has_bias)
      args.emplace(DNNL_ARG_BIAS, memory(e->bias_md, engine(), const_cast<void*>(bias)));
    e->prim.execute(stream(), args);
    stream().wait();
  } catch (const dnnl::error& err) {
    fail<Error>("gemm: oneDNN failed for m={} n={} k={} batch [{}] ({}): {}", d.m, d.n, d.k,
                fmt::join(d.batch, ", "),
                dnnl_type(d.ab_type) == memory::data_type::bf16 ? "bf16" : "f32", err.what());
  }
}

size_t gemm_cache_size() {
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  return g_cache.size();
}

namespace {
// The elementwise kernel computing act, when its backward needs only the input (all but tanh).
bool vector_op(GemmAct act, kernels::UnOp& op) {
  switch (act) {
    case GemmAct::relu:
      op = kernels::UnOp::relu;
      return true;
    case GemmAct::gelu_erf:
      op = kernels::UnOp::gelu;
      return true;
    case GemmAct::gelu_tanh:
      op = kernels::UnOp::gelu_tanh;
      return true;
    case GemmAct::silu:
      op = kernels::UnOp::silu;
      return true;
    case GemmAct::none:
    case GemmAct::tanh:
      break;
  }
  return false;
}
}  // namespace

void activation_forward(GemmAct act, DType t, const void* z, void* y, int64_t n) {
  kernels::UnOp op;
  if (vector_op(act, op)) {  // vectorised (vm:: math), parallel above the elementwise grain
    if (t == DType::f32)
      return kernels::unary(op, static_cast<const float*>(z), static_cast<float*>(y), n);
    return kernels::unary(op, static_cast<const bf16_t*>(z), static_cast<bf16_t*>(y), n);
  }
  if (t == DType::f32) {
    const float* zf = static_cast<const float*>(z);
    float* yf = static_cast<float*>(y);
#pragma omp parallel for if (n > 16384)
    for (int64_t i = 0; i < n; ++i) yf[i] = act_value(act, zf[i]);
    return;
  }
#pragma omp parallel for if (n > 16384)
  for (int64_t i = 0; i < n; ++i) store(t, y, i, act_value(act, load(t, z, i)));
}

void activation_backward(GemmAct act, DType t, const void* z, const void* dy, void* dz, int64_t n) {
  kernels::UnOp op;
  if (vector_op(act, op)) {  // these derivatives read only z; y is passed as z, unused
    if (t == DType::f32) {
      const float* zf = static_cast<const float*>(z);
      return kernels::unary_backward(op, zf, zf, static_cast<const float*>(dy),
                                     static_cast<float*>(dz), n);
    }
    const bf16_t* zb = static_cast<const bf16_t*>(z);
    return kernels::unary_backward(op, zb, zb, static_cast<const bf16_t*>(dy),
                                   static_cast<bf16_t*>(dz), n);
  }
  if (t == DType::f32) {
    const float* zf = static_cast<const float*>(z);
    const float* dyf = static_cast<const float*>(dy);
    float* dzf = static_cast<float*>(dz);
#pragma omp parallel for if (n > 16384)
    for (int64_t i = 0; i < n; ++i) dzf[i] = act_derivative(act, zf[i]) * dyf[i];
    return;
  }
#pragma omp parallel for if (n > 16384)
  for (int64_t i = 0; i < n; ++i)
    store(t, dz, i, act_derivative(act, load(t, z, i)) * load(t, dy, i));
}

}  // namespace lmf::cpu
