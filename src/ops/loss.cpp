// Losses: cross_entropy (fused log-softmax + nll + label smoothing), mse_loss and
// binary_cross_entropy_with_logits. Computed in f32 (other float dtypes round-trip through f32).
#include "kernels/cpu/loss.h"

#include <cmath>
#include <limits>

#include "lmforge/ops/ops.h"

namespace lmf {

namespace {

// Reduced result as a 0-d f32 tensor; mean over zero elements is NaN (as torch).
Tensor reduced(double total, int64_t count, Reduction r) {
  const double v = r == Reduction::sum ? total
                   : count == 0        ? std::numeric_limits<double>::quiet_NaN()
                                       : total / static_cast<double>(count);
  return Tensor::scalar(v, DType::f32);
}

// Checks shared by the elementwise losses: same shape, same floating dtype.
void check_pair(const Tensor& a, const Tensor& b, const char* op, const char* an, const char* bn) {
  LMF_CHECK(a.defined() && b.defined(), ValueError, "{}: {} or {} is an undefined tensor", op, an,
            bn);
  LMF_CHECK(is_floating(a.dtype()), DTypeError, "{}: {} must be floating point, got {}", op, an,
            a.describe());
  LMF_CHECK(a.dtype() == b.dtype(), DTypeError, "{}: {} is {} but {} is {}; dtypes must match", op,
            an, a.describe(), bn, b.describe());
  LMF_CHECK(a.shape() == b.shape(), ShapeError, "{}: {} {} and {} {} must have the same shape", op,
            an, shape_str(a.shape()), bn, shape_str(b.shape()));
}

}  // namespace

// Mean over zero non-ignored targets gives NaN (0 / 0), as torch does; its gradient is all zeros.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                     double label_smoothing, Reduction reduction) {
  LMF_CHECK(logits.defined() && targets.defined(), ValueError,
            "cross_entropy: logits or targets is an undefined tensor");
  LMF_CHECK(is_floating(logits.dtype()), DTypeError,
            "cross_entropy: logits must be floating point, got {}", logits.describe());
  LMF_CHECK(targets.dtype() == DType::i64 || targets.dtype() == DType::i32, DTypeError,
            "cross_entropy: targets must be i64 (or i32) class indices, got {} (logits {})",
            targets.describe(), logits.describe());
  LMF_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, ValueError,
            "cross_entropy: label_smoothing={} must be in [0, 1]", label_smoothing);
  const bool batched = logits.dim() == 2;
  LMF_CHECK((batched && targets.dim() == 1 && targets.size(0) == logits.size(0)) ||
                (logits.dim() == 1 && targets.dim() == 0),
            ShapeError,
            "cross_entropy: expected logits [N, C] with targets [N], or logits [C] with a 0-d "
            "target; got logits {} and targets {}",
            shape_str(logits.shape()), shape_str(targets.shape()));
  if (logits.dtype() != DType::f32)
    return cross_entropy(logits.to(DType::f32), targets, ignore_index, label_smoothing, reduction)
        .to(logits.dtype());

  const int64_t n = batched ? logits.size(0) : 1;
  const int64_t c = logits.size(-1);
  Tensor t = targets.to(DType::i64).contiguous();
  int64_t valid = 0;
  const int64_t bad = cpu::loss_check_targets(t.data<int64_t>(), n, c, ignore_index, &valid);
  if (bad >= 0) {
    fail<IndexError>(
        "cross_entropy: target {} at position {} is out of range for {} classes "
        "(logits {}; ignore_index is {})",
        t.data<int64_t>()[bad], bad, c, shape_str(logits.shape()), ignore_index);
  }
  Tensor x = logits.detach().contiguous();
  Tensor row_loss = Tensor::empty(targets.shape(), DType::f32);
  Tensor lse = Tensor::empty({n}, DType::f32);
  const float eps = static_cast<float>(label_smoothing);
  cpu::loss_cross_entropy_forward(x.data<float>(), t.data<int64_t>(), n, c, ignore_index, eps,
                                  row_loss.data<float>(), lse.data<float>());
  Tensor out = reduction == Reduction::none
                   ? row_loss
                   : reduced(cpu::loss_sum(row_loss.data<float>(), n), valid, reduction);
  const Shape x_shape = logits.shape();
  record(out, "cross_entropy", {logits},
         [x, t, lse, n, c, ignore_index, eps, reduction, valid, x_shape](const Tensor& g) {
           Tensor gc = g.to(DType::f32).contiguous();
           const int64_t gstride = reduction == Reduction::none ? 1 : 0;
           const float scale =
               reduction == Reduction::mean && valid > 0 ? 1.0f / static_cast<float>(valid) : 1.0f;
           Tensor gx = Tensor::empty(x_shape, DType::f32);
           cpu::loss_cross_entropy_backward(x.data<float>(), t.data<int64_t>(), lse.data<float>(),
                                            n, c, ignore_index, eps, gc.data<float>(), gstride,
                                            scale, gx.data<float>());
           return std::vector<Tensor>{gx};
         });
  return out;
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_pair(input, target, "mse_loss", "input", "target");
  if (input.dtype() != DType::f32)
    return mse_loss(input.to(DType::f32), target.to(DType::f32), reduction).to(input.dtype());
  Tensor a = input.detach().contiguous(), b = target.detach().contiguous();
  const int64_t n = a.numel();
  Tensor out;
  if (reduction == Reduction::none) {
    out = Tensor::empty(input.shape(), DType::f32);
    cpu::loss_mse_forward(a.data<float>(), b.data<float>(), n, out.data<float>());
  } else {
    out =
        reduced(cpu::loss_mse_forward(a.data<float>(), b.data<float>(), n, nullptr), n, reduction);
  }
  const bool need_a = input.requires_grad(), need_b = target.requires_grad();
  const Shape shape = input.shape();
  record(out, "mse_loss", {input, target},
         [a, b, n, reduction, need_a, need_b, shape](const Tensor& g) {
           Tensor gc = g.contiguous();
           std::vector<Tensor> grads(2);
           if (need_a) grads[0] = Tensor::empty(shape, DType::f32);
           if (need_b) grads[1] = Tensor::empty(shape, DType::f32);
           const float scale =
               reduction == Reduction::mean && n > 0 ? 1.0f / static_cast<float>(n) : 1.0f;
           cpu::loss_mse_backward(a.data<float>(), b.data<float>(), gc.data<float>(),
                                  reduction == Reduction::none ? 1 : 0, scale, n,
                                  need_a ? grads[0].data<float>() : nullptr,
                                  need_b ? grads[1].data<float>() : nullptr);
           return grads;
         });
  return out;
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        Reduction reduction) {
  check_pair(logits, targets, "binary_cross_entropy_with_logits", "logits", "targets");
  if (logits.dtype() != DType::f32)
    return binary_cross_entropy_with_logits(logits.to(DType::f32), targets.to(DType::f32),
                                            reduction)
        .to(logits.dtype());
  Tensor x = logits.detach().contiguous(), y = targets.detach().contiguous();
  const int64_t n = x.numel();
  Tensor out;
  if (reduction == Reduction::none) {
    out = Tensor::empty(logits.shape(), DType::f32);
    cpu::loss_bce_logits_forward(x.data<float>(), y.data<float>(), n, out.data<float>());
  } else {
    out = reduced(cpu::loss_bce_logits_forward(x.data<float>(), y.data<float>(), n, nullptr), n,
                  reduction);
  }
  const bool need_x = logits.requires_grad(), need_y = targets.requires_grad();
  const Shape shape = logits.shape();
  record(out, "binary_cross_entropy_with_logits", {logits, targets},
         [x, y, n, reduction, need_x, need_y, shape](const Tensor& g) {
           Tensor gc = g.contiguous();
           std::vector<Tensor> grads(2);
           if (need_x) grads[0] = Tensor::empty(shape, DType::f32);
           if (need_y) grads[1] = Tensor::empty(shape, DType::f32);
           const float scale =
               reduction == Reduction::mean && n > 0 ? 1.0f / static_cast<float>(n) : 1.0f;
           cpu::loss_bce_logits_backward(x.data<float>(), y.data<float>(), gc.data<float>(),
                                         reduction == Reduction::none ? 1 : 0, scale, n,
                                         need_x ? grads[0].data<float>() : nullptr,
                                         need_y ? grads[1].data<float>() : nullptr);
           return grads;
         });
  return out;
}

}  // namespace lmf
