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
  // Keys/values of one batch row may serve several consecutive query rows (beam search's copies
  // of a source in cross-attention): k/v batch Bk dividing q's B, inference only.
  LMF_CHECK(k.size(0) > 0 && q.size(0) % k.size(0) == 0 && v.size(0) == k.size(0), ShapeError,
            "{}: batch sizes differ (k/v's batch must equal q's or divide it), got {}", kOp, s);
  if (o.kv_rows) {
    LMF_CHECK(!needs_grad({q, k, v}) && k.size(0) == q.size(0), ValueError,
              "{}: kv_rows (relabelled key/value rows) serve inference only, with k/v's batch "
              "equal to q's; got {}",
              kOp, s);
    for (int64_t b = 0; b < q.size(0); ++b)
      LMF_CHECK(o.kv_rows[b] >= 0 && o.kv_rows[b] < k.size(0), IndexError,
                "{}: kv_rows[{}] = {} is outside k's batch of {}", kOp, b, o.kv_rows[b],
                k.size(0));
  }
  if (k.size(0) != q.size(0)) {
    LMF_CHECK(!needs_grad({q, k, v}) && !(o.training && o.dropout_p > 0) && !o.causal &&
                  !o.attn_mask.defined(),
              ValueError,
              "{}: k/v with fewer batch rows than q (shared by groups of query rows) serve "
              "inference only: no gradient, dropout, causal or attn_mask; got {}",
              kOp, s);
  }
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
    LMF_CHECK(m.dim() == 2 && m.size(0) == k.size(0) && m.size(1) == Tk, ShapeError,
              "{}: key_padding_mask must be [Bk, Tk] = [{}, {}] (k's batch), got {} with {}", kOp,
              k.size(0), Tk, m.describe(), s);
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
  // Query groups (k/v batch Bk < B): the kernel sees batch Bk with each row's g = B / Bk query
  // rows stacked, [Bk, H, g * Tq, D] (q and out are read through strides, see below).
  const int64_t groups = q.size(0) / k.size(0);
  kernels::AttentionDims d{k.size(0), q.size(1), k.size(1), q.size(2) * groups,
                           k.size(2), q.size(3), v.size(3)};
  d.q_groups = groups;
  d.kv_rows = o.kv_rows;
  const float scale =
      o.scale != 0.0
          ? static_cast<float>(o.scale)
          : (d.D > 0 ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(d.D))) : 1.0f);
  const Shape score_shape{d.B, d.H, d.Tq, d.Tk};  // [Bk, H, g * Tq, Tk] with groups

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
  Tensor qc = layout(q);
  const Tensor kc = layout(k), vc = layout(v);
  const int64_t Tq = q.size(2);
  // With groups, row b * g + j of q / out is group row j of kernel batch b: that needs q's batch
  // stride to be Tq times its position stride (true of [B, Tq, H, D] storage, the projections'
  // layout, and of the output allocated below).
  if (groups > 1 && qc.strides()[0] != Tq * qc.strides()[2])
    qc = q.detach().permute({0, 2, 1, 3}).contiguous().permute({0, 2, 1, 3});
  Tensor out = grad ? Tensor::empty({q.size(0), d.H, Tq, d.Dv})
                    : Tensor::empty({q.size(0), Tq, d.H, d.Dv}).permute({0, 2, 1, 3});
  kernels::AttentionStrides st;
  const Tensor* ts[4] = {&qc, &kc, &vc, &out};
  int64_t* dst[4] = {st.q, st.k, st.v, st.out};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) dst[i][j] = ts[i]->strides()[j];
  if (groups > 1) {
    st.q[0] *= groups;
    st.out[0] *= groups;
  }
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
  if (o.return_probs && groups > 1)  // [Bk, H, g * Tq, Tk] -> [B, H, Tq, Tk]
    r.probs = probs.reshape({d.B, d.H, groups, Tq, d.Tk})
                  .permute({0, 2, 1, 3, 4})
                  .reshape({q.size(0), d.H, Tq, d.Tk});
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
