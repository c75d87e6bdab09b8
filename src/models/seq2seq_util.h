// Pieces the encoder-decoder families share, internal to src/models: token id, mask and decoder-call
// checks, the encoder output, decoder ids and LM loss of a forward (Marian, BART, T5); for the
// post-norm families (Marian, BART) also the config fields, the encoder and decoder layer loops
// over a Seq2SeqCache (LayerDrop in training) and the LM head with final_logits_bias.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "lmforge/core/error.h"
#include "lmforge/models/encoder_decoder.h"
#include "lmforge/models/model.h"
#include "lmforge/models/seq2seq_layers.h"
#include "lmforge/nn/layers.h"
#include "models/decoder_util.h"

namespace lmf::models::detail {

// ids must be integer [B, T] with T > 0 (ShapeError naming `who` and `name`).
void check_seq2seq_ids(const std::string& who, const char* name, const Tensor& ids);
// An optional mask must be [B, T].
void check_seq2seq_mask(const std::string& who, const char* name, const Tensor& mask, int64_t B,
                        int64_t T);
// A decoder call on `ids` over `encoder_hidden` [B, S, d_model]: the cache (batch, layers,
// cross-attention source length), the source mask and the decoder mask over past + T. Returns past.
int64_t check_decoder_call(const std::string& who, const Seq2SeqInputs& in, const Tensor& ids,
                           const Tensor& encoder_hidden, int64_t d_model, int64_t decoder_layers);
// The encoder's output of a forward: in.encoder_hidden_states when given, else m.encode(...).
Seq2SeqOutput seq2seq_encoder_output(const EncoderDecoderModel& m, const Seq2SeqInputs& in);
// The decoder's input ids: in.decoder_input_ids, else shift_tokens_right(labels); ValueError
// naming decoder_start_token_id when there is neither.
Tensor seq2seq_decoder_ids(const std::string& who, const Seq2SeqInputs& in,
                           const Seq2SeqLabels& labels, int64_t pad_token_id,
                           int64_t decoder_start_token_id);
// The mean cross entropy of logits [B, T, V] over labels [B, T] (-100 ignored); logits_to_keep
// must have kept every position.
Tensor seq2seq_lm_loss(const std::string& who, const Tensor& logits, const Tensor& labels,
                       int64_t logits_to_keep, int64_t T);

// The size, dropout and pad checks of a Marian/BART-shaped config C (its fields carry HF's names);
// `target_vocab` is the decoder's vocabulary. ValueError naming `origin` and the values.
template <class C>
void check_seq2seq_config(const C& c, int64_t target_vocab, const std::string& origin) {
  LMF_CHECK(c.vocab_size > 0 && target_vocab > 0 && c.max_position_embeddings > 0 &&
                c.encoder_layers > 0 && c.decoder_layers > 0 && c.encoder_ffn_dim > 0 &&
                c.decoder_ffn_dim > 0 && c.d_model > 0 && c.encoder_attention_heads > 0 &&
                c.decoder_attention_heads > 0 && c.d_model % c.encoder_attention_heads == 0 &&
                c.d_model % c.decoder_attention_heads == 0,
            ValueError,
            "{}: vocab sizes, max_position_embeddings, layer counts, FFN widths, d_model and "
            "attention heads must be positive and d_model a multiple of both head counts (got "
            "d_model {}, encoder_attention_heads {}, decoder_attention_heads {})",
            origin, c.d_model, c.encoder_attention_heads, c.decoder_attention_heads);
  for (double p : {c.dropout, c.attention_dropout, c.activation_dropout, c.encoder_layerdrop,
                   c.decoder_layerdrop})
    LMF_CHECK(p >= 0 && p < 1, ValueError,
              "{}: dropout, attention_dropout, activation_dropout and the layerdrops must lie in "
              "[0, 1), got {}",
              origin, p);
  if (c.pad_token_id)
    LMF_CHECK(
        *c.pad_token_id >= 0 && *c.pad_token_id < c.vocab_size && *c.pad_token_id < target_vocab,
        ValueError, "{}: pad_token_id {} must lie in [0, {}) (the vocabulary size)", origin,
        *c.pad_token_id, std::min(c.vocab_size, target_vocab));
}

// The config.json keys Marian and BART share (names and meaning as transformers' configs): the
// list (for read_common's "modelled" keys), their reads and their writes.
inline std::vector<std::string> seq2seq_config_fields(std::vector<std::string> family_keys) {
  std::vector<std::string> k = {"vocab_size",
                                "max_position_embeddings",
                                "encoder_layers",
                                "encoder_ffn_dim",
                                "encoder_attention_heads",
                                "decoder_layers",
                                "decoder_ffn_dim",
                                "decoder_attention_heads",
                                "encoder_layerdrop",
                                "decoder_layerdrop",
                                "use_cache",
                                "is_encoder_decoder",
                                "d_model",
                                "dropout",
                                "attention_dropout",
                                "activation_dropout",
                                "init_std",
                                "decoder_start_token_id",
                                "scale_embedding",
                                "pad_token_id",
                                "bos_token_id",
                                "is_decoder",
                                "tie_word_embeddings",
                                "model_type",
                                "activation_function",
                                "forced_eos_token_id"};
  k.insert(k.end(), family_keys.begin(), family_keys.end());
  return k;
}
inline nlohmann::json seq2seq_id_json(int64_t v) {
  return v;
}
inline nlohmann::json seq2seq_id_json(const std::optional<int64_t>& v) {
  return optional_json(v);
}
template <class C>
void read_seq2seq_config(const ConfigReader& r, C& c) {
  r.get("vocab_size", c.vocab_size);
  r.get("max_position_embeddings", c.max_position_embeddings);
  r.get("encoder_layers", c.encoder_layers);
  r.get("encoder_ffn_dim", c.encoder_ffn_dim);
  r.get("encoder_attention_heads", c.encoder_attention_heads);
  r.get("decoder_layers", c.decoder_layers);
  r.get("decoder_ffn_dim", c.decoder_ffn_dim);
  r.get("decoder_attention_heads", c.decoder_attention_heads);
  r.get("encoder_layerdrop", c.encoder_layerdrop);
  r.get("decoder_layerdrop", c.decoder_layerdrop);
  r.get("use_cache", c.use_cache);
  r.get("is_encoder_decoder", c.is_encoder_decoder);
  r.get("d_model", c.d_model);
  r.get("dropout", c.dropout);
  r.get("attention_dropout", c.attention_dropout);
  r.get("activation_dropout", c.activation_dropout);
  r.get("init_std", c.init_std);
  r.get("decoder_start_token_id", c.decoder_start_token_id);
  r.get("scale_embedding", c.scale_embedding);
  r.get("pad_token_id", c.pad_token_id);
  r.get("bos_token_id", c.bos_token_id);
  r.get("is_decoder", c.is_decoder);
  r.get("tie_word_embeddings", c.tie_word_embeddings);
  r.get_activation("activation_function", c.activation_function);
  read_id_list(r, "forced_eos_token_id", c.forced_eos_token_ids, c.forced_eos_is_list);
}
template <class C>
void write_seq2seq_config(nlohmann::json& j, const C& c) {
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["encoder_layers"] = c.encoder_layers;
  j["encoder_ffn_dim"] = c.encoder_ffn_dim;
  j["encoder_attention_heads"] = c.encoder_attention_heads;
  j["decoder_layers"] = c.decoder_layers;
  j["decoder_ffn_dim"] = c.decoder_ffn_dim;
  j["decoder_attention_heads"] = c.decoder_attention_heads;
  j["encoder_layerdrop"] = c.encoder_layerdrop;
  j["decoder_layerdrop"] = c.decoder_layerdrop;
  j["use_cache"] = c.use_cache;
  j["is_encoder_decoder"] = c.is_encoder_decoder;
  j["d_model"] = c.d_model;
  j["dropout"] = c.dropout;
  j["attention_dropout"] = c.attention_dropout;
  j["activation_dropout"] = c.activation_dropout;
  j["init_std"] = c.init_std;
  j["decoder_start_token_id"] = seq2seq_id_json(c.decoder_start_token_id);
  j["scale_embedding"] = c.scale_embedding;
  j["pad_token_id"] = seq2seq_id_json(c.pad_token_id);
  j["bos_token_id"] = seq2seq_id_json(c.bos_token_id);
  j["is_decoder"] = c.is_decoder;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["activation_function"] = c.activation_function;
  j["forced_eos_token_id"] = id_list_json(c.forced_eos_token_ids, c.forced_eos_is_list);
}

// What the loops need to know of a family's config.
struct Seq2SeqStackShape {
  std::string who;  // the architecture, for errors
  int64_t d_model = 0;
  int64_t max_positions = 0;  // max_position_embeddings (source and target)
  int64_t decoder_layers = 0;
  double encoder_layerdrop = 0.0, decoder_layerdrop = 0.0;
};

// Embeds token ids [B, T] whose first position is `start` (positions, scaling, dropout).
using Seq2SeqEmbed = std::function<Tensor(const Tensor& ids, int64_t start)>;

// Checks input_ids [B, S] (S <= max_positions: a ValueError saying to truncate) and the mask, then
// runs embed + the encoder layers (Seq2SeqLayer).
// skip_padding: inference for a decoder's cross-attention only; padded positions are not
// computed (zeros in the output; the cross-attention never reads them).
EncoderOutput run_seq2seq_encoder(const Seq2SeqStackShape& s, const nn::ModuleList& layers,
                                  const Seq2SeqEmbed& embed, const Tensor& input_ids,
                                  const Tensor& attention_mask, bool output_attentions,
                                  bool training, bool skip_padding = false);

// Checks decoder ids, masks, cache and encoder states, then runs embed (from the cache's length)
// + the decoder layers over the cache (advanced by T); returns the last hidden state and fills
// out's decoder/cross attentions on request.
Tensor run_seq2seq_decoder(const Seq2SeqStackShape& s, const nn::ModuleList& layers,
                           const Seq2SeqEmbed& embed, const Seq2SeqInputs& in,
                           const Tensor& decoder_ids, const Tensor& encoder_hidden, bool training,
                           Seq2SeqOutput& out);

// The loops' shape, the layer options and the generation spec of a Marian/BART-shaped config C.
template <class C>
Seq2SeqStackShape seq2seq_stack_shape(const C& c, const std::string& who) {
  return {who,
          c.d_model,
          c.max_position_embeddings,
          c.decoder_layers,
          c.encoder_layerdrop,
          c.decoder_layerdrop};
}
template <class C>
Seq2SeqLayerOptions seq2seq_layer_options(const C& c, bool decoder) {
  Seq2SeqLayerOptions o;
  o.d_model = c.d_model;
  o.heads = decoder ? c.decoder_attention_heads : c.encoder_attention_heads;
  o.ffn_dim = decoder ? c.decoder_ffn_dim : c.encoder_ffn_dim;
  o.dropout = c.dropout;
  o.attention_dropout = c.attention_dropout;
  o.activation_dropout = c.activation_dropout;
  o.activation = c.activation_function;
  o.decoder = decoder;
  return o;
}
// Everything but the vocabulary sizes and decoder_start_token_id.
template <class C>
Seq2SeqSpec seq2seq_spec(const C& c) {
  Seq2SeqSpec s;
  s.num_decoder_layers = c.decoder_layers;
  s.decoder_heads = c.decoder_attention_heads;
  s.head_dim = c.d_model / c.decoder_attention_heads;
  s.max_source_positions = c.max_position_embeddings;
  s.max_target_positions = c.max_position_embeddings;
  s.pad_token_id = c.pad_token_id.value_or(-1);
  s.bos_token_id = c.bos_token_id.value_or(-1);
  if (c.eos_set) s.eos_token_ids = c.eos_token_ids;
  s.forced_eos_token_ids = c.forced_eos_token_ids;
  return s;
}
// encode() / the decoder of a model whose stacks (S: MarianStack, BartStack) have layers() and
// embed(ids, start).
template <class C, class S>
EncoderOutput encode_stack(const C& c, const std::string& who, const S& encoder,
                           const Tensor& input_ids, const Tensor& attention_mask,
                           bool output_attentions, bool training, bool skip_padding = false) {
  return run_seq2seq_encoder(
      seq2seq_stack_shape(c, who), encoder.layers(),
      [&](const Tensor& ids, int64_t start) { return encoder.embed(ids, start); }, input_ids,
      attention_mask, output_attentions, training, skip_padding);
}
template <class C, class S>
Tensor decode_stack(const C& c, const std::string& who, const S& decoder, const Seq2SeqInputs& in,
                    const Tensor& decoder_ids, const Tensor& encoder_hidden, bool training,
                    Seq2SeqOutput& out) {
  return run_seq2seq_decoder(
      seq2seq_stack_shape(c, who), decoder.layers(),
      [&](const Tensor& ids, int64_t start) { return decoder.embed(ids, start); }, in, decoder_ids,
      encoder_hidden, training, out);
}

// logits = lm_head(h[last logits_to_keep]) + final_logits_bias; the mean cross entropy over the
// labels (-100 ignored) when given.
void seq2seq_lm_logits(const std::string& who, const nn::Linear& lm_head,
                       const Tensor& final_logits_bias, const Seq2SeqInputs& in,
                       const Seq2SeqLabels& labels, Seq2SeqOutput& out);

// PretrainedModel::load, except that missing keys for which `not_missing` holds are dropped from
// the report (computed or zero-initialised tensors, transformers' _keys_to_ignore_on_load_missing);
// opt.strict then refuses what is left.
LoadReport load_seq2seq(PretrainedModel& m, const nn::StateDict& state, const LoadOptions& opt,
                        const std::string& origin,
                        const std::function<bool(const std::string&)>& not_missing);
// HF _init_weights for keys a checkpoint lacked: final_logits_bias zeros, biases 0, norms 1, the
// rest N(0, init_std), and the padding row of a (re)initialised token embedding zeroed.
void init_missing_seq2seq(PretrainedModel& m, const std::vector<std::string>& keys,
                          Tensor* final_logits_bias, double init_std,
                          std::optional<int64_t> pad_token_id);

}  // namespace lmf::models::detail
