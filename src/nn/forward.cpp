// Forward passes of every nn module, composed from lmf ops (which record autograd). Kept apart
// from construction so that building and loading module trees never depends on op kernels.
#include <cmath>
#include <cstring>
#include <numeric>

#include "lmforge/core/autograd.h"
#include "lmforge/nn/attention.h"
#include "lmforge/nn/feed_forward.h"
#include "lmforge/nn/layers.h"

namespace lmf::nn {

namespace {
void check_last_dim(const char* who, const Tensor& x, int64_t dim) {
  LMF_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == dim, ShapeError,
            "{}: input must be [..., {}], got {}", who, dim,
            x.defined() ? x.describe() : "undefined");
}
}  // namespace

Tensor LoraBranch::apply(const Tensor& x, bool training) const {
  const Tensor h = a->forward(dropout > 0 ? lmf::dropout(x, dropout, training) : x);
  return mul(b->forward(h), scaling);
}

Tensor Linear::forward(const Tensor& x, Activation act) const {
  if (!has_lora()) return run(x, bias(), act);
  const Tensor y = add(run(x, bias(), Activation::none), lora_.apply(x, is_training()));
  return act == Activation::none ? y : activation(y, act);
}

Tensor Linear::forward_with_bias(const Tensor& x, const Tensor& b) const {
  LMF_CHECK(!bias_, ValueError, "Linear::forward_with_bias: the layer has a bias of its own");
  LMF_CHECK(b.defined() && b.numel() == out_, ShapeError,
            "Linear::forward_with_bias: the bias must have {} elements, got {}", out_,
            b.defined() ? b.describe() : "undefined");
  return run(x, b.dim() == 1 ? b : b.reshape({out_}), Activation::none);
}

Tensor Linear::run(const Tensor& x, const Tensor& b, Activation act) const {
  check_last_dim("Linear", x, in_);
  if (pack_allowed_ && !is_training() && packed_linear_takes(x, {*weight_, b})) {
    std::shared_ptr<const PackedLinearWeight> p;
    {
      std::lock_guard<std::mutex> lock(pack_mu_);
      // Pack on first use, and again when the weight tensor was replaced since (tying).
      if (!packed_ || !packed_->made_from({*weight_})) packed_ = pack_linear_weight(*weight_);
      p = packed_;
    }
    if (p) return linear(x, *p, b, act);
  }
  return linear(x, *weight_, b, act);
}

bool Linear::is_packed() const {
  std::lock_guard<std::mutex> lock(pack_mu_);
  return packed_ != nullptr;
}

void Linear::on_prepare_inference(bool prepare) {
  std::lock_guard<std::mutex> lock(pack_mu_);
  pack_allowed_ = prepare;
  packed_ = nullptr;
}

Tensor Conv1D::forward(const Tensor& x, Activation act) const {
  check_last_dim("Conv1D", x, in_);
  if (has_lora()) {
    const Tensor y = add(linear(x, weight_->transpose(0, 1), *bias_, Activation::none),
                         lora_.apply(x, is_training()));
    return act == Activation::none ? y : activation(y, act);
  }
  if (pack_allowed_ && !is_training() && packed_linear_takes(x, {*weight_, *bias_})) {
    std::shared_ptr<const PackedLinearWeight> p;
    {
      std::lock_guard<std::mutex> lock(pack_mu_);
      if (!packed_ || !packed_source_.same(*weight_)) {
        packed_ = pack_linear_weight(weight_->transpose(0, 1).contiguous());
        packed_source_ = *weight_;
        // As pack_linear_weight does for [out, in] weights: the mapped original may leave memory.
        if (packed_) Storage::release_mapped(*weight_);
      }
      p = packed_;
    }
    if (p) return linear(x, *p, *bias_, act);
  }
  return linear(x, weight_->transpose(0, 1), *bias_, act);
}

void Conv1D::on_prepare_inference(bool prepare) {
  std::lock_guard<std::mutex> lock(pack_mu_);
  pack_allowed_ = prepare;
  packed_ = nullptr;
  packed_source_ = Tensor();
}

Tensor Embedding::forward(const Tensor& ids) const {
  return embedding(*weight_, ids, padding_idx_);
}

Tensor LayerNorm::forward(const Tensor& x) const {
  check_last_dim("LayerNorm", x, dim_);
  return layer_norm(x, weight(), bias(), eps_);
}

Tensor LayerNorm::forward(const Tensor& x, const Tensor& residual) const {
  check_last_dim("LayerNorm", x, dim_);
  return add_layer_norm(x, residual, weight(), bias(), eps_);
}

Tensor RMSNorm::forward(const Tensor& x) const {
  check_last_dim("RMSNorm", x, dim_);
  return rms_norm(x, *weight_, eps_);
}

Tensor Dropout::forward(const Tensor& x) const {
  return dropout(x, p_, is_training());
}

namespace {
// [B, T, heads * head_dim] -> [B, heads, T, head_dim] (a view).
Tensor split_heads(const Tensor& x, int64_t heads, int64_t head_dim) {
  return x.reshape({x.size(0), x.size(1), heads, head_dim}).permute({0, 2, 1, 3});
}
// src [B, H, T, D] (last dim contiguous) into buf [B', H, capacity, D] at rows[b], positions
// [past, past + T).
void scatter_into_cache(const Tensor& src_any, const Tensor& buf, const int64_t* rows,
                        int64_t past) {
  const Tensor src = src_any.dtype() == buf.dtype() ? src_any : src_any.to(buf.dtype());
  const Tensor s = src.strides()[3] == 1 ? src : src.contiguous();
  const int64_t B = s.size(0), H = s.size(1), T = s.size(2), D = s.size(3);
  const size_t es = dtype_size(buf.dtype());
  const auto* from = static_cast<const char*>(s.data_ptr());
  auto* to = static_cast<char*>(buf.data_ptr());
  const int64_t cap = buf.size(2);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        std::memcpy(to + (((rows[b] * H + h) * cap) + past + t) * D * es,
                    from + (b * s.strides()[0] + h * s.strides()[1] + t * s.strides()[2]) * es,
                    static_cast<size_t>(D) * es);
}

Tensor default_positions(int64_t past, int64_t length) {
  std::vector<int64_t> pos(length);
  std::iota(pos.begin(), pos.end(), past);
  return Tensor::from_vector(pos, {length});
}
}  // namespace

AttentionResult cached_self_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                      KVCache& cache, const AttentionOptions& options,
                                      const Tensor& positions, const RopeFrequencies* rope,
                                      int64_t q_keep) {
  LMF_CHECK(cache.preallocated() && cache.v_buffer.defined(), ValueError,
            "cached_self_attention: the cache has no preallocated buffers");
  const Tensor& kb = cache.k_buffer;
  const int64_t B = k.size(0), Hkv = k.size(1), T = k.size(2), D = k.size(3);
  const int64_t past = cache.past;
  LMF_CHECK(kb.dim() == 4 && kb.size(0) == B && kb.size(1) == Hkv && kb.size(3) == D &&
                cache.v_buffer.dim() == 4 && cache.v_buffer.size(0) == B &&
                cache.v_buffer.size(1) == Hkv && cache.v_buffer.size(3) == v.size(3),
            ShapeError,
            "KV cache: buffers {} / {} do not fit keys {} and values {} (batch, kv heads and "
            "head size must match; make the cache for this model and batch)",
            kb.describe(), cache.v_buffer.describe(), k.describe(), v.describe());
  LMF_CHECK(past + T <= kb.size(2), ValueError,
            "KV cache full: {} cached + {} new positions exceed its capacity {} (make a larger "
            "cache, up to the model's maximum positions)",
            past, T, kb.size(2));
  Tensor k_slot = kb.narrow(2, past, T), v_slot = cache.v_buffer.narrow(2, past, T);
  const bool grad = needs_grad({q, k, v});
  LMF_CHECK(!cache.rows || !grad, ValueError,
            "cached_self_attention: a relabelled KV cache (after a beam reorder) serves "
            "inference only");
  Tensor qr = q, kr = k;
  if (rope) {
    const Tensor pos = positions.defined() ? positions : default_positions(past, T);
    if (!grad && q.dtype() == DType::f32 && !cache.rows) {
      // q rotated into [B, T, H, D] (the layout the attention output is merged in), k straight
      // into the cache.
      qr = Tensor::empty({B, T, q.size(1), D}).permute({0, 2, 1, 3});
      rotary_embedding_into(q, pos, rope->inv_freq, rope->attention_scaling, qr, rope->interleaved);
      rotary_embedding_into(k, pos, rope->inv_freq, rope->attention_scaling, k_slot,
                            rope->interleaved);
      kr = Tensor();
    } else {
      qr = rotary_embedding(q, pos, rope->inv_freq, rope->attention_scaling, rope->interleaved);
      kr = rotary_embedding(k, pos, rope->inv_freq, rope->attention_scaling, rope->interleaved);
    }
  }
  if (q_keep > 0 && q_keep < T) {
    LMF_CHECK(!grad, ValueError, "cached_self_attention: q_keep serves inference only");
    qr = qr.narrow(2, T - q_keep, q_keep);
  }
  if (cache.rows) {  // row b's positions live in buffer row rows[b]
    scatter_into_cache(kr.detach(), kb, cache.rows, past);
    scatter_into_cache(v.detach(), cache.v_buffer, cache.rows, past);
    AttentionOptions o = options;
    o.kv_rows = cache.rows;
    return scaled_dot_product_attention(qr, kb.narrow(2, 0, past + T),
                                        cache.v_buffer.narrow(2, 0, past + T), o);
  }
  if (kr.defined()) k_slot.copy_(kr.detach());
  v_slot.copy_(v.detach());
  Tensor keys, values;
  if (grad) {  // gradients flow into the new positions; the cached ones are constants
    keys = past > 0 ? concat({kb.narrow(2, 0, past), kr}, 2) : kr;
    values = past > 0 ? concat({cache.v_buffer.narrow(2, 0, past), v}, 2) : v;
  } else {
    keys = kb.narrow(2, 0, past + T);
    values = cache.v_buffer.narrow(2, 0, past + T);
  }
  return scaled_dot_product_attention(qr, keys, values, options);
}

AttentionResult MultiHeadAttention::forward(const Tensor& x, const AttentionInputs& in) const {
  const AttentionConfig& c = cfg_;
  LMF_CHECK(x.defined() && x.dim() == 3 && x.size(2) == c.dim, ShapeError,
            "MultiHeadAttention: x must be [B, T, {}], got {}", c.dim,
            x.defined() ? x.describe() : "undefined");
  const bool cross = in.context.defined();
  // A context row may serve several consecutive rows of x (beam search's copies of a source,
  // inference only): its keys/values are then computed and cached once for them.
  if (cross)
    LMF_CHECK(in.context.dim() == 3 && in.context.size(0) > 0 &&
                  x.size(0) % in.context.size(0) == 0 && in.context.size(2) == c.kv_input_dim,
              ShapeError,
              "MultiHeadAttention: context must be [{}, Tk, {}] (or have a batch dividing {}), got "
              "{}",
              x.size(0), c.kv_input_dim, x.size(0), in.context.describe());
  LMF_CHECK(!(cross && in.cache && in.cache->preallocated()), ValueError,
            "MultiHeadAttention: a preallocated KV cache serves self-attention only");
  LMF_CHECK(in.q_keep >= 0 && (in.q_keep == 0 || (in.cache && in.cache->preallocated())),
            ValueError,
            "MultiHeadAttention: q_keep ({}) needs self-attention over a preallocated KV cache",
            in.q_keep);
  const int64_t past = in.cache ? in.cache->length() : 0;
  const Tensor qkv = cross ? Tensor() : fused_qkv(x);
  Tensor q, k, v;
  if (qkv.defined()) {
    const int64_t qn = c.n_heads * c.head_dim, kvn = c.n_kv_heads * c.head_dim;
    q = split_heads(qkv.narrow(2, 0, qn), c.n_heads, c.head_dim);
    k = split_heads(qkv.narrow(2, qn, kvn), c.n_kv_heads, c.head_dim);
    v = split_heads(qkv.narrow(2, qn + kvn, kvn), c.n_kv_heads, c.head_dim);
  } else {
    q = split_heads(q_->forward(x), c.n_heads, c.head_dim);
    if (cross && in.cache && past > 0) {  // encoder keys/values computed on an earlier call
      k = in.cache->k;
      v = in.cache->v;
    } else {
      const Tensor& src = cross ? in.context : x;
      k = split_heads(k_->forward(src), c.n_kv_heads, c.head_dim);
      v = split_heads(v_->forward(src), c.n_kv_heads, c.head_dim);
    }
  }
  AttentionOptions opt = in.options;
  opt.dropout_p = c.dropout;
  opt.training = is_training();
  // Rotary frequencies from the caller, or the fixed theta of the config (self-attention only).
  RopeFrequencies theta_rope;
  const RopeFrequencies* rope = cross ? nullptr : in.rope;
  AttentionResult r;
  if (in.cache && in.cache->preallocated()) {
    if (!rope && c.rope_theta > 0) {
      std::vector<float> f(c.head_dim / 2);
      for (int64_t i = 0; i < c.head_dim / 2; ++i)
        f[i] = static_cast<float>(1.0 / std::pow(c.rope_theta, 2.0 * i / c.head_dim));
      theta_rope.inv_freq = Tensor::from_vector(f, {c.head_dim / 2});
      rope = &theta_rope;
    }
    const int64_t T = x.size(1);
    if (in.q_keep > 0 && in.q_keep < T && opt.attn_mask.defined() && opt.attn_mask.dim() >= 2 &&
        opt.attn_mask.size(opt.attn_mask.dim() - 2) == T)
      opt.attn_mask = opt.attn_mask.narrow(opt.attn_mask.dim() - 2, T - in.q_keep, in.q_keep);
    r = cached_self_attention(q, k, v, *in.cache, opt, in.positions, rope, in.q_keep);
  } else {
    if (!cross && (rope || c.rope_theta > 0)) {
      Tensor pos = in.positions.defined() ? in.positions : default_positions(past, x.size(1));
      if (rope) {
        q = rotary_embedding(q, pos, rope->inv_freq, rope->attention_scaling, rope->interleaved);
        k = rotary_embedding(k, pos, rope->inv_freq, rope->attention_scaling, rope->interleaved);
      } else {
        q = rotary_embedding(q, pos, c.rope_theta);
        k = rotary_embedding(k, pos, c.rope_theta);
      }
    }
    if (in.cache && !cross) {
      if (past > 0) {
        k = concat({in.cache->k, k}, 2);
        v = concat({in.cache->v, v}, 2);
      }
      in.cache->k = k;
      in.cache->v = v;
    } else if (in.cache && cross && past == 0) {
      in.cache->k = k;
      in.cache->v = v;
    }
    r = scaled_dot_product_attention(q, k, v, opt);
  }
  Tensor merged =
      r.out.permute({0, 2, 1, 3}).reshape({x.size(0), r.out.size(2), c.n_heads * c.head_dim});
  r.out = o_ ? o_->forward(merged) : merged;
  return r;
}

namespace {
// Copies rows of `bytes` bytes: row i of the packed side <-> row rows[i] of the other (R rows).
void move_rows(const Tensor& src, Tensor& dst, const std::vector<int64_t>& rows, int64_t R,
               size_t bytes, bool gather, const char* who) {
  const auto* from = static_cast<const char*>(src.data_ptr());
  auto* to = static_cast<char*>(dst.data_ptr());
  for (size_t i = 0; i < rows.size(); ++i) {
    LMF_CHECK(rows[i] >= 0 && rows[i] < R, IndexError, "{}: row {} of {}", who, rows[i], R);
    const int64_t a = static_cast<int64_t>(i), b = rows[i];
    std::memcpy(to + (gather ? a : b) * bytes, from + (gather ? b : a) * bytes, bytes);
  }
}
}  // namespace

Tensor gather_rows(const Tensor& x_any, const std::vector<int64_t>& rows) {
  const Tensor x = x_any.contiguous();
  const int64_t C = x.size(x.dim() - 1), R = x.numel() / std::max<int64_t>(1, C);
  Tensor out = Tensor::empty({static_cast<int64_t>(rows.size()), C}, x.dtype());
  move_rows(x, out, rows, R, static_cast<size_t>(C) * dtype_size(x.dtype()), true, "gather_rows");
  return out;
}

Tensor scatter_rows(const Tensor& x_any, const std::vector<int64_t>& rows, int64_t R) {
  const Tensor x = x_any.contiguous();
  const int64_t C = x.size(x.dim() - 1), n = static_cast<int64_t>(rows.size());
  LMF_CHECK(x.numel() == n * C, ShapeError, "scatter_rows: {} for {} rows", x.describe(), n);
  Tensor out = Tensor::zeros({R, C}, x.dtype());
  move_rows(x, out, rows, R, static_cast<size_t>(C) * dtype_size(x.dtype()), false, "scatter_rows");
  return out;
}

Tensor MultiHeadAttention::forward_packed(const Tensor& x, const PackedRows& p,
                                          const AttentionOptions& options) const {
  const AttentionConfig& c = cfg_;
  const int64_t n = static_cast<int64_t>(p.rows.size());
  LMF_CHECK(x.defined() && x.dim() == 3 && x.size(0) == 1 && x.size(1) == n && x.size(2) == c.dim,
            ShapeError, "MultiHeadAttention::forward_packed: x must be [1, {}, {}], got {}", n,
            c.dim, x.defined() ? x.describe() : "undefined");
  LMF_CHECK(!is_training() && !grad_enabled() && c.rope_theta == 0, ValueError,
            "MultiHeadAttention::forward_packed serves inference without rotary embeddings");
  const int64_t qn = c.n_heads * c.head_dim, kvn = c.n_kv_heads * c.head_dim;
  Tensor qkv = fused_qkv(x);
  if (!qkv.defined()) qkv = concat({q_->forward(x), k_->forward(x), v_->forward(x)}, 2);
  // The kept rows back in the padded layout (padding rows zero: masked out as keys, and their
  // query rows' outputs are dropped below).
  const Tensor padded = scatter_rows(qkv, p.rows, p.B * p.S).reshape({p.B, p.S, qn + 2 * kvn});
  const Tensor q = split_heads(padded.narrow(2, 0, qn), c.n_heads, c.head_dim);
  const Tensor k = split_heads(padded.narrow(2, qn, kvn), c.n_kv_heads, c.head_dim);
  const Tensor v = split_heads(padded.narrow(2, qn + kvn, kvn), c.n_kv_heads, c.head_dim);
  AttentionOptions opt = options;
  opt.dropout_p = 0.0;
  opt.training = false;
  const AttentionResult r = scaled_dot_product_attention(q, k, v, opt);
  const Tensor merged =
      gather_rows(r.out.permute({0, 2, 1, 3}).reshape({p.B * p.S, qn}), p.rows).reshape({1, n, qn});
  return o_ ? o_->forward(merged) : merged;
}

Tensor MultiHeadAttention::fused_qkv(const Tensor& x) const {
  if (!fuse_allowed_ || is_training() || q_->has_lora() || k_->has_lora() || v_->has_lora() ||
      !packed_linear_takes(
          x, {q_->weight(), k_->weight(), v_->weight(), q_->bias(), k_->bias(), v_->bias()}))
    return Tensor();
  std::shared_ptr<const PackedLinearWeight> p;
  Tensor bias;
  {
    std::lock_guard<std::mutex> lock(fuse_mu_);
    if (!qkv_packed_ || !qkv_packed_->made_from({q_->weight(), k_->weight(), v_->weight()})) {
      qkv_packed_ = pack_linear_weights({q_->weight(), k_->weight(), v_->weight()});
      qkv_bias_ = cfg_.qkv_bias ? concat({q_->bias(), k_->bias(), v_->bias()}, 0) : Tensor();
    }
    p = qkv_packed_;
    bias = qkv_bias_;
  }
  if (!p) return Tensor();
  return linear(x, *p, bias);
}

void MultiHeadAttention::on_prepare_inference(bool prepare) {
  std::lock_guard<std::mutex> lock(fuse_mu_);
  fuse_allowed_ = prepare && cfg_.kv_input_dim == cfg_.dim;
  qkv_packed_ = nullptr;
  qkv_bias_ = Tensor();
}

Tensor FeedForward::forward(const Tensor& x) const {
  check_last_dim("FeedForward", x, cfg_.dim);
  if (cfg_.gated) {
    const Tensor h = fused_gate_up(x);
    if (h.defined()) return down_->forward(h);
    return down_->forward(gate_->forward(x, cfg_.act) * up_->forward(x));
  }
  return down_->forward(up_->forward(x, cfg_.act));
}

Tensor FeedForward::fused_gate_up(const Tensor& x) const {
  if (!fuse_allowed_ || is_training() || gate_->has_lora() || up_->has_lora() ||
      !packed_linear_takes(x, {gate_->weight(), up_->weight(), gate_->bias(), up_->bias()}))
    return Tensor();
  std::shared_ptr<const PackedLinearWeight> p;
  {
    std::lock_guard<std::mutex> lock(fuse_mu_);
    if (!gate_up_packed_ || !gate_up_packed_->made_from({gate_->weight(), up_->weight()}))
      gate_up_packed_ = pack_gated_linear_weights(gate_->weight(), up_->weight());
    p = gate_up_packed_;
  }
  if (!p) return Tensor();
  return gated_linear(x, *p, cfg_.act);
}

void FeedForward::on_prepare_inference(bool prepare) {
  std::lock_guard<std::mutex> lock(fuse_mu_);
  fuse_allowed_ = prepare && cfg_.gated && !gate_->bias().defined() && !up_->bias().defined();
  gate_up_packed_ = nullptr;
}

}  // namespace lmf::nn
