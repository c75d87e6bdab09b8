// Encoder-decoder (sequence-to-sequence) models: the family-neutral interface a seq2seq generation
// loop, translation and training use. The encoder runs once per source batch (encode()); the
// decoder then runs step by step over a Seq2SeqCache: a preallocated self-attention KV cache per
// layer (models::KVCache) and the cross-attention keys/values, computed from the encoder output on
// the first decoder call and reused after. Marian implements it (models/marian.h); BART and T5 are
// meant to implement the same interface.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/models/decoder.h"
#include "lmforge/nn/attention.h"

namespace lmf::models {

// What a decoding loop keeps per batch of sequences: the decoder's self-attention KV cache
// (preallocated to `capacity` target positions) and each decoder layer's cross-attention keys and
// values ([B, n_heads, S, head_dim], filled by the first forward that uses the cache).
// True when `rows` keeps n rows and every row stays in its group of `group` consecutive rows
// (beam search within a source's beams), with group > 1: what grouped encoder rows and their
// cross-attention keys/values survive unchanged.
bool rows_stay_in_groups(const std::vector<int64_t>& rows, int64_t group, int64_t n);

struct Seq2SeqCache {
  KVCache self;
  std::vector<nn::KVCache> cross;                   // one per decoder layer
  int64_t length() const { return self.length(); }  // target positions decoded so far
  int64_t batch() const { return self.batch(); }
  bool has_cross() const { return !cross.empty() && cross[0].k.defined(); }
  // Beam search / batch compaction: row b becomes old row rows[b] in both caches. Cross
  // keys/values shared by groups of rows stay shared while rows_stay_in_groups; otherwise every
  // row gets its own copy.
  void reorder(const std::vector<int64_t>& rows);
  // Forgets everything (self-attention positions and the cross-attention keys/values), so the
  // cache serves a new source batch of the same size.
  void reset();
  size_t bytes() const;
};

struct Seq2SeqInputs {
  // Source tokens [B, S]; unused when encoder_hidden_states is given.
  Tensor input_ids;
  // Source padding [B, S] (1 attend / 0 padding) for the encoder and the cross-attention;
  // undefined: no padding. With encoder_row_group g, [B / g, S] like encoder_hidden_states.
  Tensor attention_mask;
  // The encoder's last hidden state [B, S, d] from encode(); undefined: the model encodes
  // input_ids first (one full forward, as training does). With encoder_row_group g > 1,
  // [B / g, S, d].
  Tensor encoder_hidden_states;
  // Inference only: each row of encoder_hidden_states (and attention_mask) serves g consecutive
  // decoder rows (beam search's copies of one source), whose cross-attention keys/values are then
  // computed, cached and read once; the results equal those of the rows repeated g times.
  int64_t encoder_row_group = 1;
  // Target tokens [B, T] after the cache's positions; undefined with labels: made from the labels
  // by shift_tokens_right(labels, pad, decoder_start) as transformers does.
  Tensor decoder_input_ids;
  // [B, past + T] over cached and new target positions; undefined: all attended (transformers'
  // default; the decoder is causal either way).
  Tensor decoder_attention_mask;
  Seq2SeqCache* cache = nullptr;  // read and extended by T positions; null: no cache
  int64_t logits_to_keep = 0;     // logits of the last N target positions only; 0: all
  // Attention probabilities per layer [B, H, Tq, Tk] (encoder self, decoder self, cross), for
  // heatmaps; no gradient flows through them.
  bool output_attentions = false;
};

struct Seq2SeqLabels {
  Tensor labels;  // [B, T] integer targets, -100 ignored (mean cross entropy as transformers)
};

struct EncoderOutput {
  Tensor last_hidden_state;        // [B, S, d]
  std::vector<Tensor> attentions;  // per layer, on request
};

struct Seq2SeqOutput {
  Tensor loss;                       // scalar when labels were given
  Tensor logits;                     // [B, T', V] (heads with an LM head)
  Tensor last_hidden_state;          // the decoder's [B, T, d]
  Tensor encoder_last_hidden_state;  // [B, S, d] (the one given, or computed)
  std::vector<Tensor> encoder_attentions, decoder_attentions, cross_attentions;  // on request
};

// Shape and token facts the generation loop needs, read from the family's config.
struct Seq2SeqSpec {
  int64_t vocab_size = 0;         // the decoder's (target) vocabulary: the logits' width
  int64_t source_vocab_size = 0;  // the encoder's
  int64_t num_decoder_layers = 0;
  int64_t decoder_heads = 0;  // self- and cross-attention heads of the decoder
  int64_t head_dim = 0;
  int64_t max_source_positions = 0;  // 0: no hard limit (relative positions)
  int64_t max_target_positions = 0;
  int64_t decoder_start_token_id = -1;
  int64_t pad_token_id = -1;  // -1: none
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::vector<int64_t> forced_eos_token_ids;  // config forced_eos_token_id (empty: none)
};

class EncoderDecoderModel : public PretrainedModel {
 public:
  // Runs the encoder once: input_ids [B, S], attention_mask [B, S] or undefined.
  virtual EncoderOutput encode(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                               bool output_attentions = false) const = 0;
  // The encoder output as generation's cross-attention reads it: the attended positions equal
  // encode()'s; padded ones are unspecified (Marian and BART skip them: zeros).
  virtual EncoderOutput encode_for_decoder(const Tensor& input_ids,
                                           const Tensor& attention_mask = Tensor()) const {
    return encode(input_ids, attention_mask);
  }
  // Encoder (unless encoder_hidden_states is given) then decoder; runs in the module's mode.
  virtual Seq2SeqOutput forward(const Seq2SeqInputs& in,
                                const Seq2SeqLabels& labels = {}) const = 0;
  virtual Seq2SeqSpec spec() const = 0;
  // True for *ForConditionalGeneration / *MTModel (logits over the target vocabulary).
  virtual bool is_seq2seq_lm() const = 0;
  // A cache for `batch` rows and `capacity` target positions (<= max_target_positions).
  Seq2SeqCache make_cache(int64_t batch, int64_t capacity) const;
};

// transformers' shift_tokens_right: [decoder_start, labels[:, :-1]] with -100 replaced by pad.
// ValueError when pad_token_id < 0 (none), as transformers.
Tensor shift_tokens_right(const Tensor& labels, int64_t pad_token_id,
                          int64_t decoder_start_token_id);

}  // namespace lmf::models
