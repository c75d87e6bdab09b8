// Construction of FeedForward (its forward is in forward.cpp).
#include "lmforge/nn/feed_forward.h"

namespace lmf::nn {

FeedForwardConfig FeedForwardConfig::gelu_mlp(int64_t dim, int64_t hidden) {
  FeedForwardConfig c;
  c.dim = dim;
  c.hidden = hidden;
  return c;
}

FeedForwardConfig FeedForwardConfig::swiglu(int64_t dim, int64_t hidden) {
  FeedForwardConfig c;
  c.dim = dim;
  c.hidden = hidden;
  c.gated = true;
  c.act = Activation::silu;
  c.bias = false;
  c.up_name = "up_proj";
  c.down_name = "down_proj";
  c.gate_name = "gate_proj";
  return c;
}

FeedForward::FeedForward(const FeedForwardConfig& config) : cfg_(config) {
  LMF_CHECK(cfg_.dim > 0 && cfg_.hidden > 0, ValueError,
            "FeedForward: dim {} and hidden {} must be positive", cfg_.dim, cfg_.hidden);
  // Registration order follows HF LLaMA's LlamaMLP (gate, up, down) for the gated form.
  if (cfg_.gated)
    gate_ =
        register_module(cfg_.gate_name, std::make_shared<Linear>(cfg_.dim, cfg_.hidden, cfg_.bias));
  up_ = register_module(cfg_.up_name, std::make_shared<Linear>(cfg_.dim, cfg_.hidden, cfg_.bias));
  down_ =
      register_module(cfg_.down_name, std::make_shared<Linear>(cfg_.hidden, cfg_.dim, cfg_.bias));
}

}  // namespace lmf::nn
