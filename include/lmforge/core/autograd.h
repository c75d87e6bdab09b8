// Tape-based reverse mode. An op whose inputs require grad attaches a Node to its output; the
// node keeps its inputs and whatever its backward closure captured. Tensor::backward() sorts the
// graph topologically, accumulates gradients (+=) and frees the nodes as it goes.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

struct Node {
  std::string name;
  std::vector<Tensor> inputs;  // one gradient slot per input; undefined tensors are skipped
  BackwardFn backward;
};

bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and any input requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);
// Records `out = op(inputs)` when needs_grad(inputs). `backward` returns one gradient per input
// (undefined where the input does not need one). Capture tensors with detach() in the closure so
// that the output is never kept alive by its own node.
void record(Tensor& out, const char* name, std::vector<Tensor> inputs, BackwardFn backward);

// Adds g into t.grad (allocating it on first use).
void accumulate_grad(const Tensor& t, const Tensor& g);

}  // namespace lmf
