// The shared post-norm encoder/decoder layer (models/seq2seq_layers.h) and the encoder-decoder
// loops of src/models/seq2seq_util.h, as modeling_marian.py / modeling_bart.py run them.
#include "lmforge/models/seq2seq_layers.h"

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/models/bert.h"  // parse_activation
#include "lmforge/ops/ops.h"
#include "models/decoder_util.h"
#include "models/seq2seq_util.h"

namespace lmf::models {

namespace {
nn::AttentionConfig seq2seq_attention(const Seq2SeqLayerOptions& o) {
  nn::AttentionConfig a;
  a.dim = o.d_model;
  a.n_heads = o.heads;
  a.dropout = o.attention_dropout;
  a.q_name = "q_proj";
  a.k_name = "k_proj";
  a.v_name = "v_proj";
  a.o_name = "out_proj";
  return a;
}
}  // namespace

Seq2SeqLayer::Seq2SeqLayer(const Seq2SeqLayerOptions& o)
    : decoder_(o.decoder),
      dropout_(o.dropout),
      activation_dropout_(o.activation_dropout),
      act_(parse_activation(o.activation)) {
  self_attn_ =
      register_module("self_attn", std::make_shared<nn::MultiHeadAttention>(seq2seq_attention(o)));
  self_attn_layer_norm_ =
      register_module("self_attn_layer_norm", std::make_shared<nn::LayerNorm>(o.d_model));
  if (o.decoder) {
    encoder_attn_ = register_module("encoder_attn",
                                    std::make_shared<nn::MultiHeadAttention>(seq2seq_attention(o)));
    encoder_attn_layer_norm_ =
        register_module("encoder_attn_layer_norm", std::make_shared<nn::LayerNorm>(o.d_model));
  }
  fc1_ = register_module("fc1", std::make_shared<nn::Linear>(o.d_model, o.ffn_dim));
  fc2_ = register_module("fc2", std::make_shared<nn::Linear>(o.ffn_dim, o.d_model));
  final_layer_norm_ =
      register_module("final_layer_norm", std::make_shared<nn::LayerNorm>(o.d_model));
}

Tensor Seq2SeqLayer::forward(const Tensor& x, const Inputs& in) const {
  const bool tr = is_training();
  nn::AttentionInputs sa;
  sa.options = in.self_options;
  sa.cache = in.self_cache;
  AttentionResult r = self_attn_->forward(x, sa);
  if (in.self_probs) in.self_probs->push_back(r.probs);
  Tensor h = self_attn_layer_norm_->forward(dropout(r.out, dropout_, tr), x);
  if (decoder_) {
    nn::AttentionInputs ca;
    ca.context = in.encoder_hidden_states;
    ca.options = in.cross_options;
    ca.cache = in.cross_cache;
    r = encoder_attn_->forward(h, ca);
    if (in.cross_probs) in.cross_probs->push_back(r.probs);
    h = encoder_attn_layer_norm_->forward(dropout(r.out, dropout_, tr), h);
  }
  const Tensor f = fc2_->forward(dropout(fc1_->forward(h, act_), activation_dropout_, tr));
  return final_layer_norm_->forward(dropout(f, dropout_, tr), h);
}

Tensor Seq2SeqLayer::forward_packed(const Tensor& x, const nn::PackedRows& p,
                                    const AttentionOptions& self_options) const {
  LMF_CHECK(!decoder_, ValueError, "Seq2SeqLayer::forward_packed serves encoder layers");
  const Tensor a = self_attn_->forward_packed(x, p, self_options);
  const Tensor h = self_attn_layer_norm_->forward(a, x);
  const Tensor f = fc2_->forward(fc1_->forward(h, act_));
  return final_layer_norm_->forward(f, h);
}

namespace detail {

namespace {
// Skips a layer with probability `layerdrop` in training (LayerDrop).
bool drop_layer(double layerdrop, bool training) {
  return training && layerdrop > 0 && default_generator().uniform() < layerdrop;
}
}  // namespace

EncoderOutput run_seq2seq_encoder(const Seq2SeqStackShape& s, const nn::ModuleList& layers,
                                  const Seq2SeqEmbed& embed, const Tensor& input_ids,
                                  const Tensor& attention_mask, bool output_attentions,
                                  bool training, bool skip_padding) {
  check_seq2seq_ids(s.who, "input_ids", input_ids);
  const int64_t B = input_ids.size(0), S = input_ids.size(1);
  check_seq2seq_mask(s.who, "attention_mask", attention_mask, B, S);
  LMF_CHECK(S <= s.max_positions, ValueError,
            "{}: the source has {} tokens but the model has max_position_embeddings = {} "
            "(truncate the source)",
            s.who, S, s.max_positions);
  Seq2SeqLayer::Inputs li;
  li.self_options.key_padding_mask = key_padding_from(attention_mask);
  li.self_options.return_probs = output_attentions;
  EncoderOutput out;
  if (output_attentions) li.self_probs = &out.attentions;
  Tensor h = embed(input_ids, 0);
  // Padded inference for a decoder: the layers' projections and FFNs run on the real positions
  // only (a batch of 32 Multi30k sources is ~55 % padding); padding rows come back as zeros.
  if (skip_padding && !training && !output_attentions && !grad_enabled() &&
      attention_mask.defined() && li.self_options.key_padding_mask.defined()) {
    const std::vector<int64_t> m = attention_mask.to(DType::i64).contiguous().to_vector<int64_t>();
    nn::PackedRows p{B, S, {}};
    for (int64_t i = 0; i < B * S; ++i)
      if (m[i] != 0) p.rows.push_back(i);
    if (p.rows.size() < static_cast<size_t>(B * S) && !p.rows.empty()) {
      Tensor hp = nn::gather_rows(h, p.rows).reshape({1, static_cast<int64_t>(p.rows.size()),
                                                       h.size(2)});
      for (size_t i = 0; i < layers.size(); ++i)
        hp = layers.at<Seq2SeqLayer>(i)->forward_packed(hp, p, li.self_options);
      out.last_hidden_state = nn::scatter_rows(hp, p.rows, B * S).reshape({B, S, h.size(2)});
      return out;
    }
  }
  for (size_t i = 0; i < layers.size(); ++i)
    if (!drop_layer(s.encoder_layerdrop, training)) h = layers.at<Seq2SeqLayer>(i)->forward(h, li);
  out.last_hidden_state = h;
  return out;
}

Tensor run_seq2seq_decoder(const Seq2SeqStackShape& s, const nn::ModuleList& layers,
                           const Seq2SeqEmbed& embed, const Seq2SeqInputs& in, const Tensor& ids,
                           const Tensor& enc, bool training, Seq2SeqOutput& out) {
  const std::string& who = s.who;
  const int64_t past = check_decoder_call(who, in, ids, enc, s.d_model, s.decoder_layers);
  const int64_t T = ids.size(1);
  Seq2SeqCache* cache = in.cache;
  LMF_CHECK(past + T <= s.max_positions, ValueError,
            "{}: {} target positions ({} cached + {} new) exceed max_position_embeddings = {} "
            "(shorten the target or the generation)",
            who, past + T, past, T, s.max_positions);
  Seq2SeqLayer::Inputs li;
  li.self_options =
      decoder_attention_options(key_padding_from(in.decoder_attention_mask), past, T, 0);
  li.self_options.return_probs = in.output_attentions;
  li.encoder_hidden_states = enc;
  li.cross_options.key_padding_mask = key_padding_from(in.attention_mask);
  li.cross_options.return_probs = in.output_attentions;
  if (in.output_attentions) {
    li.self_probs = &out.decoder_attentions;
    li.cross_probs = &out.cross_attentions;
  }
  Tensor h = embed(ids, past);
  for (size_t i = 0; i < layers.size(); ++i) {
    nn::KVCache self_cache;
    if (cache) {
      self_cache = cache->self.layer(static_cast<int64_t>(i));
      li.self_cache = &self_cache;
      li.cross_cache = &cache->cross[i];
    }
    // LayerDrop skips a layer only in training, where no cache is used.
    if (!drop_layer(s.decoder_layerdrop, training)) h = layers.at<Seq2SeqLayer>(i)->forward(h, li);
  }
  if (cache) cache->self.advance(T);
  return h;
}

void seq2seq_lm_logits(const std::string& who, const nn::Linear& lm_head,
                       const Tensor& final_logits_bias, const Seq2SeqInputs& in,
                       const Seq2SeqLabels& labels, Seq2SeqOutput& out) {
  const Tensor& h = out.last_hidden_state;
  const int64_t keep = in.logits_to_keep;
  LMF_CHECK(keep >= 0, ValueError, "{}: logits_to_keep must be >= 0, got {}", who, keep);
  const Tensor hk = keep > 0 && keep < h.size(1) ? h.narrow(1, h.size(1) - keep, keep) : h;
  // The bias in the GEMM's epilogue (one pass less over [B, T, V]); a bias that learns, or an
  // lm_head with a bias of its own, adds as transformers writes it.
  const bool fold = !lm_head.bias().defined() && final_logits_bias.defined() &&
                    final_logits_bias.numel() == lm_head.out_features() &&
                    !final_logits_bias.requires_grad();
  out.logits = fold ? lm_head.forward_with_bias(hk, final_logits_bias)
                    : lm_head.forward(hk) + final_logits_bias;
  if (labels.labels.defined())
    out.loss = seq2seq_lm_loss(who, out.logits, labels.labels, keep, h.size(1));
}

LoadReport load_seq2seq(PretrainedModel& m, const nn::StateDict& state, const LoadOptions& opt,
                        const std::string& origin,
                        const std::function<bool(const std::string&)>& not_missing) {
  LoadOptions lenient = opt;
  lenient.strict = false;
  LoadReport rep = m.PretrainedModel::load(state, lenient, origin);
  std::erase_if(rep.missing_keys, not_missing);
  LMF_CHECK(!opt.strict || (rep.missing_keys.empty() && rep.unexpected_keys.empty()), ValueError,
            "{} does not match {} (strict load): missing keys [{}]; unexpected keys [{}]", origin,
            m.architecture(), fmt::join(rep.missing_keys, ", "),
            fmt::join(rep.unexpected_keys, ", "));
  return rep;
}

void init_missing_seq2seq(PretrainedModel& m, const std::vector<std::string>& keys,
                          Tensor* final_logits_bias, double init_std,
                          std::optional<int64_t> pad_token_id) {
  std::vector<std::string> params;
  for (const std::string& k : keys)
    if (k == "final_logits_bias" && final_logits_bias)
      final_logits_bias->zero_();  // HF: zeros
    else
      params.push_back(k);
  init_missing_decoder_weights(m, params, init_std);
  // HF's _init_weights zeroes an embedding's padding row.
  if (pad_token_id)
    for (const std::string& k : params)
      if (k.find("embed_tokens") != std::string::npos || k.find("shared") != std::string::npos)
        m.parameter(k).select(0, *pad_token_id).zero_();
}

}  // namespace detail
}  // namespace lmf::models
