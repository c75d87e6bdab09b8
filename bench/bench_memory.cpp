// Memory-bound op throughput: GB/s (bytes read + written) of layer_norm, softmax, gelu and add
// against the machine's memcpy bandwidth and the bare oneDNN primitive for the same work.
// Usage: bench_memory [threads=2] [workload substring]. Medians of 7 alternating runs.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <functional>
#include <string>
#include <vector>

#include "../src/kernels/cpu/elementwise.h"
#include "../src/kernels/cpu/norm.h"
#include "../src/kernels/cpu/softmax.h"
#include "lmforge/ops/ops.h"

using namespace lmf;

namespace {

constexpr int kReps = 7;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Medians (seconds) of fns run alternately: warm-up once each, then kReps rounds.
std::vector<double> medians(const std::vector<std::function<void()>>& fns) {
  for (auto& f : fns) f();
  std::vector<std::vector<double>> t(fns.size());
  for (int r = 0; r < kReps; ++r)
    for (size_t i = 0; i < fns.size(); ++i) {
      const double t0 = now_s();
      fns[i]();
      t[i].push_back(now_s() - t0);
    }
  std::vector<double> m;
  for (auto& v : t) {
    std::sort(v.begin(), v.end());
    m.push_back(v[v.size() / 2]);
  }
  return m;
}

double g_peak = 0;  // memcpy GB/s

void header() {
  std::printf("%-34s %9s %9s %9s %9s %7s %7s\n", "workload", "MB moved", "op GB/s", "kern GB/s",
              "oneDNN", "op/dnnl", "%memcpy");
}
void row(const char* name, double bytes, double op_s, double kern_s, double dnnl_s) {
  const double gb = 1e-9 * bytes;
  const double op = gb / op_s, kern = kern_s > 0 ? gb / kern_s : 0,
               dn = dnnl_s > 0 ? gb / dnnl_s : 0;
  char dnb[16] = "-", ratio[16] = "-";
  if (dnnl_s > 0) {
    std::snprintf(dnb, sizeof dnb, "%.1f", dn);
    std::snprintf(ratio, sizeof ratio, "%.2f", op / dn);
  }
  std::printf("%-34s %9.1f %9.1f %9.1f %9s %7s %6.0f%%\n", name, bytes / 1e6, op, kern, dnb, ratio,
              100.0 * op / g_peak);
}

void fill(std::vector<float>& v, float scale) {
  uint32_t s = 12345;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = scale * (static_cast<float>(s >> 8) / 16777216.f - 0.5f);
  }
}

double memcpy_gbs(size_t bytes) {
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  const int nt = omp_get_max_threads();
  auto copy = [&] {
#pragma omp parallel for num_threads(nt)
    for (int t = 0; t < nt; ++t) {
      const size_t b = bytes * t / nt, e = bytes * (t + 1) / nt;
      std::memcpy(dst.data() + b, src.data() + b, e - b);
    }
  };
  return 2e-9 * bytes / medians({copy})[0];
}

dnnl::memory::desc md2(int64_t r, int64_t c,
                       dnnl::memory::data_type dt = dnnl::memory::data_type::f32) {
  return dnnl::memory::desc({r, c}, dt, dnnl::memory::format_tag::ab);
}

Tensor wrap(std::vector<float>& v, const Shape& s) {
  auto st = Storage::wrap(v.data(), v.size() * 4, [] {});
  return Tensor::from_blob(st, s, DType::f32);
}

void bench_layer_norm(dnnl::engine& eng, dnnl::stream& strm, int64_t rows, int64_t cols) {
  using namespace dnnl;
  const int64_t n = rows * cols;
  std::vector<float> x(n), y(n), gy(n), gx(n), w(cols, 1.1f), b(cols, 0.1f), mean(rows), var(rows),
      gw(cols), gb(cols);
  fill(x, 4.f);
  fill(gy, 1.f);
  Tensor tx = wrap(x, {rows, cols}), tw = wrap(w, {cols}), tb = wrap(b, {cols});
  Tensor tg = wrap(gy, {rows, cols});

  auto md = md2(rows, cols);
  const auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
  layer_normalization_forward::primitive_desc fpd({prop_kind::forward_training, md, 1e-5f, flags},
                                                  eng);
  layer_normalization_forward fwd(fpd);
  memory mx(md, eng, x.data()), my(md, eng, y.data()), mgy(md, eng, gy.data()),
      mgx(md, eng, gx.data());
  const memory::desc vd({cols}, memory::data_type::f32, memory::format_tag::a);
  memory mw(vd, eng, w.data()), mb(vd, eng, b.data());
  memory mm(fpd.mean_desc(), eng, mean.data()), mv(fpd.variance_desc(), eng, var.data());
  memory mgw(vd, eng, gw.data()), mgb(vd, eng, gb.data());
  layer_normalization_backward::primitive_desc bpd({prop_kind::backward, md, md, 1e-5f, flags}, eng,
                                                   fpd);
  layer_normalization_backward bwd(bpd);
  auto dnnl_fwd = [&] {
    fwd.execute(strm, {{DNNL_ARG_SRC, mx},
                       {DNNL_ARG_DST, my},
                       {DNNL_ARG_SCALE, mw},
                       {DNNL_ARG_SHIFT, mb},
                       {DNNL_ARG_MEAN, mm},
                       {DNNL_ARG_VARIANCE, mv}});
    strm.wait();
  };
  auto dnnl_bwd = [&] {
    bwd.execute(strm, {{DNNL_ARG_SRC, mx},
                       {DNNL_ARG_DIFF_DST, mgy},
                       {DNNL_ARG_SCALE, mw},
                       {DNNL_ARG_SHIFT, mb},
                       {DNNL_ARG_MEAN, mm},
                       {DNNL_ARG_VARIANCE, mv},
                       {DNNL_ARG_DIFF_SRC, mgx},
                       {DNNL_ARG_DIFF_SCALE, mgw},
                       {DNNL_ARG_DIFF_SHIFT, mgb}});
    strm.wait();
  };
  auto kern_fwd = [&] {
    kernels::layer_norm_fwd(x.data(), w.data(), b.data(), y.data(), mean.data(), var.data(), rows,
                            cols, 1e-5f);
  };
  auto kern_bwd = [&] {
    kernels::layer_norm_bwd(x.data(), w.data(), mean.data(), var.data(), gy.data(), gx.data(),
                            gw.data(), gb.data(), rows, cols);
  };
  auto op_fwd = [&] { layer_norm(tx, tw, tb); };
  auto m = medians({op_fwd, kern_fwd, dnnl_fwd});
  char name[64];
  std::snprintf(name, sizeof name, "layer_norm fwd [%ld, %ld]", long(rows), long(cols));
  row(name, 8.0 * n, m[0], m[1], m[2]);

  // forward + backward: the op's own backward node (no gradient accumulation into .grad).
  tx.set_requires_grad(true);
  tw.set_requires_grad(true);
  tb.set_requires_grad(true);
  auto op_fb = [&] {
    Tensor out = layer_norm(tx, tw, tb);
    NoGradGuard ng;
    out.grad_fn()->backward(tg);
  };
  auto kern_fb = [&] { kern_fwd(), kern_bwd(); };
  auto dnnl_fb = [&] { dnnl_fwd(), dnnl_bwd(); };
  m = medians({op_fb, kern_fb, dnnl_fb});
  std::snprintf(name, sizeof name, "layer_norm fwd+bwd [%ld, %ld]", long(rows), long(cols));
  row(name, 20.0 * n, m[0], m[1], m[2]);
}

void bench_softmax(dnnl::engine& eng, dnnl::stream& strm, int64_t rows, int64_t cols) {
  using namespace dnnl;
  const int64_t n = rows * cols;
  std::vector<float> x(n), y(n), gy(n), gx(n);
  fill(x, 8.f);
  fill(gy, 1.f);
  Tensor tx = wrap(x, {rows, cols}), tg = wrap(gy, {rows, cols});
  auto md = md2(rows, cols);
  softmax_forward::primitive_desc fpd({prop_kind::forward_training, md, 1}, eng);
  softmax_forward fwd(fpd);
  softmax_backward::primitive_desc bpd({md, md, 1}, eng, fpd);
  softmax_backward bwd(bpd);
  memory mx(md, eng, x.data()), my(md, eng, y.data()), mgy(md, eng, gy.data()),
      mgx(md, eng, gx.data());
  auto dnnl_fwd = [&] {
    fwd.execute(strm, {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DST, my}});
    strm.wait();
  };
  auto dnnl_bwd = [&] {
    bwd.execute(strm, {{DNNL_ARG_DST, my}, {DNNL_ARG_DIFF_DST, mgy}, {DNNL_ARG_DIFF_SRC, mgx}});
    strm.wait();
  };
  auto kern_fwd = [&] { kernels::softmax_fwd(x.data(), y.data(), rows, cols, 1, false); };
  auto kern_bwd = [&] {
    kernels::softmax_bwd(y.data(), gy.data(), gx.data(), rows, cols, 1, false);
  };
  auto op_fwd = [&] { softmax(tx, -1); };
  auto m = medians({op_fwd, kern_fwd, dnnl_fwd});
  char name[64];
  std::snprintf(name, sizeof name, "softmax fwd [%ld, %ld]", long(rows), long(cols));
  row(name, 8.0 * n, m[0], m[1], m[2]);
  tx.set_requires_grad(true);
  auto op_fb = [&] {
    Tensor out = softmax(tx, -1);
    NoGradGuard ng;
    out.grad_fn()->backward(tg);
  };
  auto kern_fb = [&] { kern_fwd(), kern_bwd(); };
  auto dnnl_fb = [&] { dnnl_fwd(), dnnl_bwd(); };
  m = medians({op_fb, kern_fb, dnnl_fb});
  std::snprintf(name, sizeof name, "softmax fwd+bwd [%ld, %ld]", long(rows), long(cols));
  row(name, 20.0 * n, m[0], m[1], m[2]);
}

void bench_gelu(dnnl::engine& eng, dnnl::stream& strm, int64_t rows, int64_t cols, bool bf16) {
  using namespace dnnl;
  const int64_t n = rows * cols;
  std::vector<float> x(n), y(n);
  fill(x, 6.f);
  Tensor tx = wrap(x, {rows, cols});
  const auto dt = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  if (bf16) tx = tx.to(DType::bf16);
  void* px = tx.data_ptr();
  auto md = md2(rows, cols, dt);
  eltwise_forward::primitive_desc pd(
      {prop_kind::forward_inference, algorithm::eltwise_gelu_erf, md, 0.f, 0.f}, eng);
  eltwise_forward prim(pd);
  memory mx(md, eng, px), my(md, eng, y.data());
  auto dnnl_f = [&] {
    prim.execute(strm, {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DST, my}});
    strm.wait();
  };
  auto kern = [&] {
    if (bf16)
      kernels::unary(kernels::UnOp::gelu, static_cast<const bf16_t*>(px),
                     reinterpret_cast<bf16_t*>(y.data()), n);
    else
      kernels::unary(kernels::UnOp::gelu, x.data(), y.data(), n);
  };
  auto op = [&] { gelu(tx); };
  auto m = medians({op, kern, dnnl_f});
  char name[64];
  std::snprintf(name, sizeof name, "gelu(erf) %s [%ld, %ld]", bf16 ? "bf16" : "f32", long(rows),
                long(cols));
  row(name, (bf16 ? 4.0 : 8.0) * n, m[0], m[1], m[2]);
}

void bench_add(dnnl::engine& eng, dnnl::stream& strm, int64_t rows, int64_t cols, bool bias) {
  using namespace dnnl;
  const int64_t n = rows * cols, nb = bias ? cols : n;
  std::vector<float> a(n), b(nb), o(n);
  fill(a, 1.f);
  fill(b, 1.f);
  Tensor ta = wrap(a, {rows, cols}), tb = bias ? wrap(b, {cols}) : wrap(b, {rows, cols});
  auto md = md2(rows, cols), mdb = bias ? md2(1, cols) : md;
  binary::primitive_desc pd({algorithm::binary_add, md, mdb, md}, eng);
  binary prim(pd);
  memory ma(md, eng, a.data()), mb(mdb, eng, b.data()), mo(md, eng, o.data());
  auto dnnl_f = [&] {
    prim.execute(strm, {{DNNL_ARG_SRC_0, ma}, {DNNL_ARG_SRC_1, mb}, {DNNL_ARG_DST, mo}});
    strm.wait();
  };
  auto kern = [&] {
    if (bias)
      kernels::binary_row(kernels::BinOp::add, a.data(), b.data(), o.data(), rows, cols, false);
    else
      kernels::binary_same(kernels::BinOp::add, a.data(), b.data(), o.data(), n);
  };
  auto op = [&] { add(ta, tb); };
  auto m = medians({op, kern, dnnl_f});
  char name[64];
  std::snprintf(name, sizeof name, "add %s [%ld, %ld]", bias ? "bias-row" : "same", long(rows),
                long(cols));
  row(name, (bias ? 8.0 : 12.0) * n, m[0], m[1], m[2]);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  set_num_threads(threads);
  const double t0 = now_s();
  g_peak = memcpy_gbs(size_t(256) << 20);
  const double l3 = memcpy_gbs(size_t(32) << 20);
  std::printf(
      "threads %d; memcpy 256 MB: %.1f GB/s (read+write; the %% column's peak); "
      "memcpy 32 MB: %.1f GB/s\n",
      threads, g_peak, l3);
  std::printf(
      "op = public lmforge op (allocates its output), kern = lmforge kernel into a "
      "preallocated buffer, oneDNN = bare primitive (preallocated); medians of %d\n",
      kReps);
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  header();
  const std::string only = argc > 2 ? argv[2] : "";
  auto want = [&](const char* w) {
    return only.empty() || std::string(w).find(only) != std::string::npos;
  };
  if (want("layer_norm")) bench_layer_norm(eng, strm, 32 * 128, 768);
  if (want("softmax")) bench_softmax(eng, strm, 32 * 12 * 128, 128);
  if (want("softmax")) bench_softmax(eng, strm, 8 * 12 * 512, 512);
  if (want("gelu")) bench_gelu(eng, strm, 32 * 128, 3072, false);
  if (want("gelu")) bench_gelu(eng, strm, 32 * 128, 3072, true);
  if (want("add")) bench_add(eng, strm, 32 * 128, 768, false);
  if (want("add")) bench_add(eng, strm, 32 * 128, 3072, false);
  if (want("add")) bench_add(eng, strm, 32 * 128, 3072, true);
  std::printf("total %.1f s\n", now_s() - t0);
  return 0;
}
