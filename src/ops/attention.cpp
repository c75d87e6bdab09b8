// scaled_dot_product_attention: checks, mask preparation, dispatch to the fused CPU kernel and
// the backward node. Non-f32 inputs run through f32 (the conversions carry the gradients).
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "lmforge/ops/ops.h"

namespace lmf {

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

std::string shapes_of(const Tensor& q, const Tensor& k, const Tensor& v) {
  return fmt::format("q {}, k {}, v {}", q.describe(), k.describe(), v.describe());
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  LMF_CHECK(q.defined() && k.defined() && v.defined(), ValueError, "{}: q, k and v must be defined",
            kOp);
  const std::string s = shapes_of(q, k, v);
  LMF_CHECK(is_floating(q.dtype()) && k.dtype() == q.dtype() && v.dtype() == q.dtype(), DTypeError,
            "{}: q, k and v must share one floating dtype, got {}", kOp, s);
  LMF_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, ShapeError,
            "{}: q, k, v must be rank 4 ([B, H, T, D]), got {}", kOp, s);
  LMF_CHECK(k.size(0) == q.size(0) && v.size(0) == q.size(0), ShapeError,
            "{}: batch sizes differ, got {}", kOp, s);
  LMF_CHECK(k.size(3) == q.size(3), ShapeError, "{}: q and k head sizes (dim 3) differ, got {}",
            kOp, s);
  LMF_CHECK(v.size(1) == k.size(1) && v.size(2) == k.size(2), ShapeError,
            "{}: k and v need the same kv heads and length (dims 1, 2), got {}", kOp, s);
  LMF_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, ShapeError,
            "{}: query heads ({}) must be a multiple of kv heads ({}), got {}", kOp, q.size(1),
            k.size(1), s);
  LMF_CHECK(o.dropout_p >= 0.0 && o.dropout_p < 1.0, ValueError,
            "{}: dropout_p={} is not in [0, 1)", kOp, o.dropout_p);
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), Tk = k.size(2);
  if (o.key_padding_mask.defined()) {
    const Tensor& m = o.key_padding_mask;
    LMF_CHECK(!is_floating(m.dtype()), DTypeError,
              "{}: key_padding_mask must be bool or integer (nonzero = attend), got {} with {}",
              kOp, m.describe(), s);
    LMF_CHECK(m.dim() == 2 && m.size(0) == B && m.size(1) == Tk, ShapeError,
              "{}: key_padding_mask must be [B, Tk] = [{}, {}], got {} with {}", kOp, B, Tk,
              m.describe(), s);
  }
  if (o.attn_mask.defined()) {
    const Tensor& m = o.attn_mask;
    LMF_CHECK(m.dtype() == DType::boolean || is_floating(m.dtype()), DTypeError,
              "{}: attn_mask must be bool (true = attend) or floating (added), got {} with {}", kOp,
              m.describe(), s);
    const Shape target{B, H, Tq, Tk};
    bool ok = m.dim() <= 4;
    for (int64_t i = 0; ok && i < m.dim(); ++i) {
      const int64_t have = m.size(m.dim() - 1 - i), want = target[3 - i];
      ok = have == want || have == 1;
    }
    LMF_CHECK(ok, ShapeError, "{}: attn_mask {} does not broadcast to [B, H, Tq, Tk] = {} ({})",
              kOp, m.describe(), shape_str(target), s);
  }
}

AttentionResult attention_f32(const Tensor& q, const Tensor& k, const Tensor& v,
                              const AttentionOptions& o) {
  kernels::AttentionDims d{q.size(0), q.size(1), k.size(1), q.size(2),
                           k.size(2), q.size(3), v.size(3)};
  const float scale =
      o.scale != 0.0
          ? static_cast<float>(o.scale)
          : (d.D > 0 ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(d.D))) : 1.0f);
  const Shape score_shape{d.B, d.H, d.Tq, d.Tk};

  kernels::AttentionMask mask;
  Tensor kp, am;
  if (o.key_padding_mask.defined()) {
    kp = o.key_padding_mask.detach().to(DType::boolean).contiguous();
    // A mask that keeps every key (unpadded inputs: HF passes ones) changes nothing; skipping it
    // saves a pass over every score block.
    const bool* keep = kp.data<bool>();
    if (!std::all_of(keep, keep + kp.numel(), [](bool b) { return b; })) mask.key_padding = keep;
  }
  if (o.attn_mask.defined()) {
    am = o.attn_mask.detach();
    if (am.dtype() != DType::boolean) am = am.to(DType::f32);
    am = am.expand(score_shape);
    for (int i = 0; i < 4; ++i) mask.strides[i] = am.strides()[i];
    if (am.dtype() == DType::boolean)
      mask.allow = am.data<bool>();
    else
      mask.bias = am.data<float>();
  }
  mask.causal = o.causal;

  // A floating attn_mask that requires grad (T5's learned relative position bias) gets the
  // gradient of the scores, summed down to its broadcast shape.
  const bool bias_grad =
      o.attn_mask.defined() && o.attn_mask.dtype() != DType::boolean && needs_grad({o.attn_mask});
  const bool grad = needs_grad({q, k, v}) || bias_grad;
  const bool dropout = o.training && o.dropout_p > 0.0;
  const float p = dropout ? static_cast<float>(o.dropout_p) : 0.0f;
  // Without a backward, q/k/v are read through their strides (views of a fused projection) and
  // out is written as [B, Tq, H, Dv] (returned as the usual [B, H, Tq, Dv] view), so that merging
  // the heads afterwards is a free reshape. The backward wants the packed layouts.
  auto layout = [grad](const Tensor& t) {
    return grad || t.strides()[3] != 1 ? t.detach().contiguous() : t.detach();
  };
  const Tensor qc = layout(q), kc = layout(k), vc = layout(v);

  Tensor out = grad ? Tensor::empty({d.B, d.H, d.Tq, d.Dv})
                    : Tensor::empty({d.B, d.Tq, d.H, d.Dv}).permute({0, 2, 1, 3});
  kernels::AttentionStrides st;
  const Tensor* ts[4] = {&qc, &kc, &vc, &out};
  int64_t* dst[4] = {st.q, st.k, st.v, st.out};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) dst[i][j] = ts[i]->strides()[j];
  Tensor probs, keep;
  if (grad || o.return_probs) probs = Tensor::empty(score_shape);
  std::vector<uint64_t> seeds;
  if (dropout) {
    keep = Tensor::empty(score_shape, DType::u8);
    seeds.resize(d.B * d.H);
    for (auto& s : seeds) s = default_generator().next_u64();
  }
  kernels::attention_forward(d, mask, scale, qc.data<float>(), kc.data<float>(), vc.data<float>(),
                             out.data<float>(), probs.defined() ? probs.data<float>() : nullptr, p,
                             seeds.data(), dropout ? keep.data<uint8_t>() : nullptr, st);

  AttentionResult r;
  if (o.return_probs) r.probs = grad ? probs.clone() : probs;
  if (grad) {
    std::vector<Tensor> inputs{q, k, v};
    if (bias_grad) inputs.push_back(o.attn_mask);
    const Shape bias_shape = bias_grad ? o.attn_mask.shape() : Shape{};
    const DType bias_dtype = bias_grad ? o.attn_mask.dtype() : DType::f32;
    record(out, kOp, std::move(inputs),
           [d, scale, p, qc, kc, vc, probs, keep, bias_grad, bias_shape, bias_dtype,
            score_shape](const Tensor& g) {
             const Tensor go = g.to(DType::f32).contiguous();
             Tensor dq = Tensor::empty(qc.shape()), dk = Tensor::empty(kc.shape()),
                    dv = Tensor::empty(vc.shape());
             Tensor ds = bias_grad ? Tensor::empty(score_shape) : Tensor();
             kernels::attention_backward(d, scale, qc.data<float>(), kc.data<float>(),
                                         vc.data<float>(), probs.data<float>(),
                                         keep.defined() ? keep.data<uint8_t>() : nullptr, p,
                                         go.data<float>(), dq.data<float>(), dk.data<float>(),
                                         dv.data<float>(), bias_grad ? ds.data<float>() : nullptr);
             std::vector<Tensor> grads{dq, dk, dv};
             if (bias_grad) grads.push_back(sum_to(ds, bias_shape).to(bias_dtype));
             return grads;
           });
  }
  r.out = out;
  return r;
}

}  // namespace

// result.probs are the softmax probabilities before dropout (what a heatmap wants).
AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& opt) {
  check_inputs(q, k, v, opt);
  if (q.dtype() == DType::f32) return attention_f32(q, k, v, opt);
  AttentionResult r = attention_f32(q.to(DType::f32), k.to(DType::f32), v.to(DType::f32), opt);
  r.out = r.out.to(q.dtype());
  return r;
}

}  // namespace lmf
