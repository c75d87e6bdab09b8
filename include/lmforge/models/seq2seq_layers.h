// The post-norm encoder/decoder layer Marian and BART share (MarianEncoderLayer/DecoderLayer and
// BartEncoderLayer/DecoderLayer are the same code in transformers): self-attention, the decoder's
// cross-attention and the FFN, each followed by dropout, the residual and a LayerNorm.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/nn/attention.h"
#include "lmforge/nn/layers.h"

namespace lmf::models {

// A layer's shape: the config fields of one side (encoder_* or decoder_*).
struct Seq2SeqLayerOptions {
  int64_t d_model = 0;
  int64_t heads = 0;
  int64_t ffn_dim = 0;
  double dropout = 0.0, attention_dropout = 0.0, activation_dropout = 0.0;
  std::string activation = "gelu";  // an HF activation_function name
  bool decoder = false;             // adds encoder_attn (+ its LayerNorm)
};

// h = LN(x + attn(x)); [decoder: h = LN(h + cross_attn(h, encoder))]; out = LN(h +
// fc2(act(fc1(h)))). Modules: self_attn (q_proj/k_proj/v_proj/out_proj), self_attn_layer_norm,
// [encoder_attn, encoder_attn_layer_norm], fc1, fc2, final_layer_norm: HF's key names.
class Seq2SeqLayer : public nn::Module {
 public:
  explicit Seq2SeqLayer(const Seq2SeqLayerOptions& o);
  struct Inputs {
    AttentionOptions self_options;              // masks of the self-attention
    nn::KVCache* self_cache = nullptr;          // decoder: preallocated self-attention cache
    Tensor encoder_hidden_states;               // decoder: the cross-attention context
    AttentionOptions cross_options;             // decoder: the source padding
    nn::KVCache* cross_cache = nullptr;         // decoder: encoder keys/values, filled once
    std::vector<Tensor>* self_probs = nullptr;  // appended when given
    std::vector<Tensor>* cross_probs = nullptr;
  };
  Tensor forward(const Tensor& x, const Inputs& in) const;
  // Encoder layer, inference: x [1, n, d] holds the kept rows of a padded batch (see
  // nn::MultiHeadAttention::forward_packed; self_options: its key padding); returns the same rows.
  Tensor forward_packed(const Tensor& x, const nn::PackedRows& p,
                        const AttentionOptions& self_options) const;

 private:
  bool decoder_;
  double dropout_, activation_dropout_;
  Activation act_;
  std::shared_ptr<nn::MultiHeadAttention> self_attn_, encoder_attn_;
  std::shared_ptr<nn::LayerNorm> self_attn_layer_norm_, encoder_attn_layer_norm_, final_layer_norm_;
  std::shared_ptr<nn::Linear> fc1_, fc2_;
};

}  // namespace lmf::models
