// The BERT encoder family, readable top to bottom like modeling_bert.py: config, embeddings,
// layer, encoder, model, heads. Parameter names are Hugging Face's state-dict keys.
// Today: BertModel (no pooler yet) and BertForTokenClassification, used by the demo and the
// training-step benchmark; checkpoint loading and the other heads are issue #4.
#pragma once
#include <memory>

#include "lmforge/nn/attention.h"
#include "lmforge/nn/layers.h"
#include "lmforge/nn/module.h"

namespace lmf::models {

// Field names and defaults as transformers' BertConfig.
struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  Activation hidden_act = Activation::gelu;  // HF "gelu" (erf)
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  int64_t num_labels = 2;
  void validate() const;  // ValueError naming the field
};

class BertEmbeddings : public nn::Module {
 public:
  explicit BertEmbeddings(const BertConfig& c);
  // ids [B, T]; token_type_ids [B, T] or undefined (zeros).
  Tensor forward(const Tensor& ids, const Tensor& token_type_ids) const;

 private:
  std::shared_ptr<nn::Embedding> word_, position_, token_type_;
  std::shared_ptr<nn::LayerNorm> norm_;
  std::shared_ptr<nn::Dropout> dropout_;
};

// Post-norm encoder layer: attention.self, attention.output.{dense,LayerNorm},
// intermediate.dense, output.{dense,LayerNorm}.
class BertLayer : public nn::Module {
 public:
  explicit BertLayer(const BertConfig& c);
  Tensor forward(const Tensor& x, const AttentionOptions& mask) const;

 private:
  BertConfig cfg_;
  std::shared_ptr<nn::MultiHeadAttention> self_;
  std::shared_ptr<nn::Linear> attn_out_, inter_, out_;
  std::shared_ptr<nn::LayerNorm> attn_norm_, out_norm_;
  std::shared_ptr<nn::Dropout> dropout_;
};

class BertModel : public nn::Module {
 public:
  explicit BertModel(const BertConfig& c);
  // ids [B, T] integer; attention_mask [B, T] (1 = token, 0 = padding) or undefined.
  // Returns last_hidden_state [B, T, H]. Throws ShapeError when T > max_position_embeddings.
  Tensor forward(const Tensor& ids, const Tensor& attention_mask = Tensor(),
                 const Tensor& token_type_ids = Tensor()) const;
  const BertConfig& config() const { return cfg_; }

 private:
  BertConfig cfg_;
  std::shared_ptr<BertEmbeddings> embeddings_;
  std::vector<std::shared_ptr<BertLayer>> layers_;
};

// bert + dropout + classifier [num_labels, H] on every token, as BertForTokenClassification.
class BertForTokenClassification : public nn::Module {
 public:
  explicit BertForTokenClassification(const BertConfig& c);
  Tensor forward(const Tensor& ids, const Tensor& attention_mask = Tensor(),
                 const Tensor& token_type_ids = Tensor()) const;  // logits [B, T, num_labels]
  // Mean cross-entropy over labels != -100 (HF's loss).
  Tensor loss(const Tensor& logits, const Tensor& labels) const;
  BertModel& bert() { return *bert_; }

 private:
  std::shared_ptr<BertModel> bert_;
  std::shared_ptr<nn::Dropout> dropout_;
  std::shared_ptr<nn::Linear> classifier_;
};

// HF's BertPreTrainedModel._init_weights: Linear/Embedding weights ~ N(0, initializer_range),
// biases 0, the padding row of word embeddings 0, LayerNorm weight 1 bias 0.
void init_bert_weights(nn::Module& m, const BertConfig& c);

}  // namespace lmf::models
