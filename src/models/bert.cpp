#include "lmforge/models/bert.h"

#include "lmforge/nn/init.h"

namespace lmf::models {

void BertConfig::validate() const {
  auto positive = [](int64_t v, const char* name) {
    LMF_CHECK(v > 0, ValueError, "BertConfig.{} must be positive, got {}", name, v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(intermediate_size, "intermediate_size");
  positive(max_position_embeddings, "max_position_embeddings");
  positive(type_vocab_size, "type_vocab_size");
  positive(num_labels, "num_labels");
  LMF_CHECK(hidden_size % num_attention_heads == 0, ValueError,
            "BertConfig: hidden_size {} is not a multiple of num_attention_heads {}", hidden_size,
            num_attention_heads);
  for (double p : {hidden_dropout_prob, attention_probs_dropout_prob})
    LMF_CHECK(p >= 0 && p < 1, ValueError, "BertConfig: dropout {} must lie in [0, 1)", p);
}

// ---- embeddings ---------------------------------------------------------------------------------

BertEmbeddings::BertEmbeddings(const BertConfig& c) {
  word_ = register_module("word_embeddings",
                          std::make_shared<nn::Embedding>(c.vocab_size, c.hidden_size, c.pad_token_id));
  position_ = register_module(
      "position_embeddings", std::make_shared<nn::Embedding>(c.max_position_embeddings, c.hidden_size));
  token_type_ = register_module("token_type_embeddings",
                                std::make_shared<nn::Embedding>(c.type_vocab_size, c.hidden_size));
  norm_ = register_module("LayerNorm", std::make_shared<nn::LayerNorm>(c.hidden_size, c.layer_norm_eps));
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.hidden_dropout_prob));
}

Tensor BertEmbeddings::forward(const Tensor& ids, const Tensor& token_type_ids) const {
  const int64_t t = ids.size(1);
  LMF_CHECK(t <= position_->num_embeddings(), ShapeError,
            "BERT: input of {} tokens is longer than max_position_embeddings {}; truncate it",
            t, position_->num_embeddings());
  Tensor types = token_type_ids.defined() ? token_type_ids : Tensor::zeros(ids.shape(), DType::i64);
  Tensor x = word_->forward(ids) + position_->forward(Tensor::arange(t)) + token_type_->forward(types);
  return dropout_->forward(norm_->forward(x));
}

// ---- layer --------------------------------------------------------------------------------------

namespace {
// A named container with no parameters of its own ("attention", "attention.output", ...).
struct Container : nn::Module {};
}  // namespace

BertLayer::BertLayer(const BertConfig& c) : cfg_(c) {
  auto attention = register_module("attention", std::make_shared<Container>());
  self_ = attention->register_module(
      "self", std::make_shared<nn::MultiHeadAttention>(nn::AttentionConfig::bert(
                  c.hidden_size, c.num_attention_heads, c.attention_probs_dropout_prob)));
  auto attn_output = attention->register_module("output", std::make_shared<Container>());
  attn_out_ = attn_output->register_module("dense",
                                           std::make_shared<nn::Linear>(c.hidden_size, c.hidden_size));
  attn_norm_ = attn_output->register_module(
      "LayerNorm", std::make_shared<nn::LayerNorm>(c.hidden_size, c.layer_norm_eps));
  auto intermediate = register_module("intermediate", std::make_shared<Container>());
  inter_ = intermediate->register_module(
      "dense", std::make_shared<nn::Linear>(c.hidden_size, c.intermediate_size));
  auto output = register_module("output", std::make_shared<Container>());
  out_ = output->register_module("dense",
                                 std::make_shared<nn::Linear>(c.intermediate_size, c.hidden_size));
  out_norm_ = output->register_module(
      "LayerNorm", std::make_shared<nn::LayerNorm>(c.hidden_size, c.layer_norm_eps));
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.hidden_dropout_prob));
}

Tensor BertLayer::forward(const Tensor& x, const AttentionOptions& mask) const {
  nn::AttentionInputs in;
  in.options = mask;
  Tensor ctx = self_->forward(x, in).out;  // [B, T, H] (heads merged)
  Tensor h = attn_norm_->forward(dropout_->forward(attn_out_->forward(ctx)) + x);
  Tensor inter = inter_->forward(h, cfg_.hidden_act);
  return out_norm_->forward(dropout_->forward(out_->forward(inter)) + h);
}

// ---- model --------------------------------------------------------------------------------------

BertModel::BertModel(const BertConfig& c) : cfg_(c) {
  c.validate();
  embeddings_ = register_module("embeddings", std::make_shared<BertEmbeddings>(c));
  auto encoder = register_module("encoder", std::make_shared<Container>());
  auto list = encoder->register_module("layer", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    layers_.push_back(list->push_back(std::make_shared<BertLayer>(c)));
}

Tensor BertModel::forward(const Tensor& ids, const Tensor& attention_mask,
                          const Tensor& token_type_ids) const {
  LMF_CHECK(ids.dim() == 2, ShapeError, "BertModel: input_ids must be [batch, seq], got {}",
            ids.describe());
  LMF_CHECK(!attention_mask.defined() || attention_mask.shape() == ids.shape(), ShapeError,
            "BertModel: attention_mask {} does not match input_ids {}", attention_mask.describe(),
            ids.describe());
  AttentionOptions mask;
  mask.key_padding_mask = attention_mask;
  Tensor h = embeddings_->forward(ids, token_type_ids);
  for (const auto& layer : layers_) h = layer->forward(h, mask);
  return h;
}

BertForTokenClassification::BertForTokenClassification(const BertConfig& c) {
  bert_ = register_module("bert", std::make_shared<BertModel>(c));
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.hidden_dropout_prob));
  classifier_ = register_module("classifier", std::make_shared<nn::Linear>(c.hidden_size, c.num_labels));
  init_bert_weights(*this, c);
}

Tensor BertForTokenClassification::forward(const Tensor& ids, const Tensor& attention_mask,
                                           const Tensor& token_type_ids) const {
  return classifier_->forward(dropout_->forward(bert_->forward(ids, attention_mask, token_type_ids)));
}

Tensor BertForTokenClassification::loss(const Tensor& logits, const Tensor& labels) const {
  const int64_t c = logits.size(-1);
  return cross_entropy(logits.reshape({-1, c}), labels.reshape({-1}), -100);
}

void init_bert_weights(nn::Module& m, const BertConfig& c) {
  NoGradGuard no_grad;
  m.apply([&](nn::Module& mod) {
    if (auto* lin = dynamic_cast<nn::Linear*>(&mod)) {
      nn::init::normal_(lin->weight(), 0.0, c.initializer_range);
      if (lin->bias().defined()) nn::init::zeros_(lin->bias());
    } else if (auto* emb = dynamic_cast<nn::Embedding*>(&mod)) {
      nn::init::normal_(emb->weight(), 0.0, c.initializer_range);
      if (emb->padding_idx() >= 0) emb->weight().select(0, emb->padding_idx()).zero_();
    } else if (auto* ln = dynamic_cast<nn::LayerNorm*>(&mod)) {
      if (ln->weight().defined()) nn::init::ones_(ln->weight());
      if (ln->bias().defined()) nn::init::zeros_(ln->bias());
    }
  });
}

}  // namespace lmf::models
