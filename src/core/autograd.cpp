#include "lmforge/core/autograd.h"

#include <unordered_map>
#include <unordered_set>

namespace lmf {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(Tensor& out, const char* name, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl()->requires_grad = true;
  out.set_grad_fn(std::move(node));
}

namespace {
// Contiguous f32-or-other sum a + b (same shape), used only to accumulate gradients.
Tensor add_same_shape(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  Tensor ac = a.contiguous(), bc = b.to(a.dtype()).contiguous();
  visit_dtype(a.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* x = static_cast<const T*>(ac.data_ptr());
    const T* y = static_cast<const T*>(bc.data_ptr());
    T* o = static_cast<T*>(out.data_ptr());
    const int64_t n = out.numel();
    if constexpr (std::is_same_v<T, float>) {
#pragma omp parallel for if (n > 65536)
      for (int64_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
    } else {
      for (int64_t i = 0; i < n; ++i) o[i] = from_double<T>(to_double(x[i]) + to_double(y[i]));
    }
  });
  return out;
}
}  // namespace

namespace {
// True when nothing but `t` refers to its memory, so it may be taken over or updated in place.
bool sole_owner(const Tensor& t) {
  return t.handle_count() == 1 && t.is_contiguous() && t.offset() == 0 &&
         t.storage().use_count() == 1 && t.nbytes() == t.storage()->nbytes();
}
}  // namespace

void accumulate_grad(const Tensor& t, const Tensor& g) {
  LMF_CHECK(g.shape() == t.shape(), AutogradError,
            "gradient of shape {} does not match tensor {} (a backward function is wrong)",
            shape_str(g.shape()), t.describe());
  Tensor& cur = t.impl()->grad;
  if (!cur.defined()) {
    // Take the incoming gradient over when nothing else can see it; otherwise own a copy.
    if (g.dtype() == t.dtype() && sole_owner(g)) {
      cur = g.detach();
    } else {
      Tensor owned = Tensor::empty(t.shape(), t.dtype());
      owned.copy_(g);
      cur = owned;
    }
  } else if (cur.dtype() == DType::f32 && g.dtype() == DType::f32 && sole_owner(cur) &&
             g.is_contiguous()) {
    float* c = cur.data<float>();  // in place, like torch's .grad += g
    const float* x = g.data<float>();
    const int64_t n = cur.numel();
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; ++i) c[i] += x[i];
  } else {
    cur = add_same_shape(cur, g);
  }
}

void Tensor::backward(const Tensor& grad) const {
  LMF_CHECK(requires_grad(), AutogradError,
            "backward() on {} which does not require grad (no input requires grad, or it was "
            "computed under NoGradGuard)",
            describe());
  Tensor seed = grad;
  if (!seed.defined()) {
    LMF_CHECK(numel() == 1, AutogradError,
              "backward() without a gradient needs a scalar output, got {}; pass a gradient",
              describe());
    seed = Tensor::ones(shape(), dtype());
  }
  LMF_CHECK(seed.shape() == shape(), ShapeError, "backward: gradient {} for output {}",
            seed.describe(), describe());

  // Topological order by iterative DFS over grad_fn edges.
  std::vector<TensorImpl*> order;
  std::unordered_map<TensorImpl*, Tensor> handle;
  std::unordered_set<TensorImpl*> seen;
  std::vector<std::pair<Tensor, size_t>> stack{{*this, 0}};
  seen.insert(impl());
  while (!stack.empty()) {
    auto& [t, next] = stack.back();
    const auto& fn = t.grad_fn();
    if (fn && next < fn->inputs.size()) {
      const Tensor& in = fn->inputs[next++];
      if (in.defined() && in.requires_grad() && seen.insert(in.impl()).second)
        stack.push_back({in, 0});
      continue;
    }
    order.push_back(t.impl());
    handle.emplace(t.impl(), t);
    stack.pop_back();
  }

  NoGradGuard no_grad;
  std::unordered_map<TensorImpl*, Tensor> grads;
  grads[impl()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Tensor t = handle.at(*it);
    auto git = grads.find(*it);
    if (git == grads.end()) continue;
    Tensor g = std::move(git->second);
    grads.erase(git);
    std::shared_ptr<Node> fn = t.grad_fn();
    if (!fn) {
      accumulate_grad(t, g);
      continue;
    }
    std::vector<Tensor> in_grads = fn->backward(g);
    LMF_CHECK(in_grads.size() == fn->inputs.size(), AutogradError,
              "backward of {} returned {} gradients for {} inputs", fn->name, in_grads.size(),
              fn->inputs.size());
    for (size_t i = 0; i < in_grads.size(); ++i) {
      const Tensor& in = fn->inputs[i];
      if (!in.defined() || !in.requires_grad() || !in_grads[i].defined()) continue;
      LMF_CHECK(in_grads[i].shape() == in.shape(), AutogradError,
                "backward of {}: gradient {} for input {}", fn->name, in_grads[i].describe(),
                in.describe());
      auto [slot, fresh] = grads.try_emplace(in.impl(), in_grads[i]);
      if (!fresh) slot->second = add_same_shape(slot->second, in_grads[i]);
    }
    t.set_grad_fn(nullptr);  // free the graph as we go
  }
}

}  // namespace lmf
