// A module tree with HF BertLayer's shape and names, built from lmf::nn modules (construction
// only, so tests that need just the tree link without the op kernels).
#pragma once
#include "lmforge/nn/attention.h"
#include "lmforge/nn/layers.h"

namespace lmf::test {

// Dense + dropout + residual LayerNorm (HF BertSelfOutput and BertOutput).
struct BertResidualOut : nn::Module {
  BertResidualOut(int64_t in, int64_t out, double eps) {
    dense = register_module("dense", std::make_shared<nn::Linear>(in, out));
    layer_norm = register_module("LayerNorm", std::make_shared<nn::LayerNorm>(out, eps));
    dropout = register_module("dropout", std::make_shared<nn::Dropout>(0.1));
  }
  std::shared_ptr<nn::Linear> dense;
  std::shared_ptr<nn::LayerNorm> layer_norm;
  std::shared_ptr<nn::Dropout> dropout;
};

struct BertAttentionBlock : nn::Module {
  BertAttentionBlock(int64_t hidden, int64_t heads, double eps) {
    self = register_module("self", std::make_shared<nn::MultiHeadAttention>(
                                       nn::AttentionConfig::bert(hidden, heads, 0.1)));
    output = register_module("output", std::make_shared<BertResidualOut>(hidden, hidden, eps));
  }
  std::shared_ptr<nn::MultiHeadAttention> self;
  std::shared_ptr<BertResidualOut> output;
};

struct BertIntermediateBlock : nn::Module {
  BertIntermediateBlock(int64_t hidden, int64_t intermediate) {
    dense = register_module("dense", std::make_shared<nn::Linear>(hidden, intermediate));
  }
  std::shared_ptr<nn::Linear> dense;
};

struct BertLayerTree : nn::Module {
  BertLayerTree(int64_t hidden, int64_t heads, int64_t intermediate, double eps = 1e-12) {
    attention =
        register_module("attention", std::make_shared<BertAttentionBlock>(hidden, heads, eps));
    intermediate_ = register_module("intermediate",
                                    std::make_shared<BertIntermediateBlock>(hidden, intermediate));
    output =
        register_module("output", std::make_shared<BertResidualOut>(intermediate, hidden, eps));
  }
  std::shared_ptr<BertAttentionBlock> attention;
  std::shared_ptr<BertIntermediateBlock> intermediate_;
  std::shared_ptr<BertResidualOut> output;
};

}  // namespace lmf::test
