// Position-wise feed-forward blocks: the plain MLP down(act(up(x))) (BERT/BART/GPT style, GELU by
// default) and the gated SwiGLU down(silu(gate(x)) * up(x)) of LLaMA.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "lmforge/nn/layers.h"

namespace lmf::nn {

struct FeedForwardConfig {
  int64_t dim = 0;     // model width
  int64_t hidden = 0;  // intermediate width
  bool gated = false;  // SwiGLU-style gate projection
  Activation act = Activation::gelu;
  bool bias = true;
  std::string up_name = "fc1", down_name = "fc2", gate_name = "gate_proj";

  static FeedForwardConfig gelu_mlp(int64_t dim, int64_t hidden);  // fc1 -> gelu -> fc2
  static FeedForwardConfig swiglu(int64_t dim, int64_t hidden);    // gate_/up_/down_proj, no bias
};

class FeedForward : public Module {
 public:
  explicit FeedForward(const FeedForwardConfig& config);
  Tensor forward(const Tensor& x) const;  // [..., dim] -> [..., dim]
  const FeedForwardConfig& config() const { return cfg_; }
  const Linear& up() const { return *up_; }
  const Linear& down() const { return *down_; }
  const Linear* gate() const { return gate_.get(); }

 protected:
  // Inference: a gated block without biases packs gate and up as one pair (ops::gated_linear).
  void on_prepare_inference(bool prepare) override;

 private:
  // act(gate(x)) * up(x) through the pair pack, or undefined where it does not apply.
  Tensor fused_gate_up(const Tensor& x) const;

  FeedForwardConfig cfg_;
  std::shared_ptr<Linear> up_, down_, gate_;
  bool fuse_allowed_ = false;
  mutable std::mutex fuse_mu_;
  mutable std::shared_ptr<const PackedLinearWeight> gate_up_packed_;
};

}  // namespace lmf::nn
