// Checks and steps every encoder-decoder family shares (internal to src/models): token id and
// mask shapes, the decoder call's cache / encoder-state consistency, the encoder output of a
// forward, and the LM loss over labels.
#pragma once
#include <cstdint>
#include <string>

#include "lmforge/models/encoder_decoder.h"

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

}  // namespace lmf::models::detail
