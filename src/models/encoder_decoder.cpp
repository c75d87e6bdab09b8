// The family-neutral encoder-decoder pieces: the seq2seq cache, make_cache and
// shift_tokens_right (see models/encoder_decoder.h), and the shared checks and loss
// (models/seq2seq_util.h).
#include "lmforge/models/encoder_decoder.h"

#include "lmforge/core/autograd.h"
#include "lmforge/ops/ops.h"
#include "models/seq2seq_util.h"

namespace lmf::models {

bool rows_stay_in_groups(const std::vector<int64_t>& rows, int64_t group, int64_t n) {
  bool within = group > 1 && static_cast<int64_t>(rows.size()) == n;
  for (int64_t i = 0; within && i < n; ++i) within = rows[i] / group == i / group;
  return within;
}

void Seq2SeqCache::reorder(const std::vector<int64_t>& rows) {
  const int64_t before = self.batch();
  self.reorder(rows);  // checks the rows
  NoGradGuard no_grad;
  for (nn::KVCache& c : cross) {
    if (!c.k.defined()) continue;
    // Cross keys/values shared by groups of rows (one per source) stay shared while every row
    // stays in its group; otherwise row r gets its group's own copy.
    const int64_t group = c.k.size(0) > 0 ? std::max<int64_t>(1, before / c.k.size(0)) : 1;
    if (rows_stay_in_groups(rows, group, before)) continue;
    std::vector<Tensor> k, v;
    for (int64_t r : rows) {
      k.push_back(c.k.select(0, r / group));
      v.push_back(c.v.select(0, r / group));
    }
    c.k = stack(k, 0);
    c.v = stack(v, 0);
  }
}

void Seq2SeqCache::reset() {
  self.reset();
  for (nn::KVCache& c : cross) c = nn::KVCache{};
}

size_t Seq2SeqCache::bytes() const {
  size_t n = self.bytes();
  for (const nn::KVCache& c : cross)
    if (c.k.defined()) n += c.k.nbytes() + c.v.nbytes();
  return n;
}

Seq2SeqCache EncoderDecoderModel::make_cache(int64_t batch, int64_t capacity) const {
  const Seq2SeqSpec s = spec();
  LMF_CHECK(s.max_target_positions <= 0 || capacity <= s.max_target_positions, ValueError,
            "{}: a cache of {} target positions exceeds the model's {} maximum positions",
            architecture(), capacity, s.max_target_positions);
  Seq2SeqCache c;
  c.self = KVCache(s.num_decoder_layers, batch, s.decoder_heads, s.head_dim, capacity);
  c.cross.resize(static_cast<size_t>(s.num_decoder_layers));
  return c;
}

Tensor shift_tokens_right(const Tensor& labels, int64_t pad_token_id,
                          int64_t decoder_start_token_id) {
  LMF_CHECK(labels.defined() && labels.dim() == 2 && !is_floating(labels.dtype()), ShapeError,
            "shift_tokens_right: labels must be integer [B, T], got {}",
            labels.defined() ? labels.describe() : "undefined");
  LMF_CHECK(pad_token_id >= 0, ValueError,
            "shift_tokens_right: the model's pad_token_id has to be defined (set it in "
            "config.json) to make decoder_input_ids from labels");
  const int64_t B = labels.size(0), T = labels.size(1);
  const std::vector<int64_t> l = labels.to_vector<int64_t>();
  std::vector<int64_t> out(B * T);
  for (int64_t b = 0; b < B; ++b) {
    out[b * T] = decoder_start_token_id;
    for (int64_t t = 1; t < T; ++t) out[b * T + t] = l[b * T + t - 1];
  }
  for (int64_t& v : out)
    if (v == -100) v = pad_token_id;
  return Tensor::from_vector(out, {B, T});
}

namespace detail {

void check_seq2seq_ids(const std::string& who, const char* name, const Tensor& ids) {
  LMF_CHECK(ids.defined() && ids.dim() == 2 && ids.size(1) > 0 && !is_floating(ids.dtype()),
            ShapeError, "{}: {} must be integer [B, T] with T > 0, got {}", who, name,
            ids.defined() ? ids.describe() : "undefined");
}

void check_seq2seq_mask(const std::string& who, const char* name, const Tensor& mask, int64_t B,
                        int64_t T) {
  if (mask.defined())
    LMF_CHECK(mask.dim() == 2 && mask.size(0) == B && mask.size(1) == T, ShapeError,
              "{}: {} must be [{}, {}], got {}", who, name, B, T, mask.describe());
}

int64_t check_decoder_call(const std::string& who, const Seq2SeqInputs& in, const Tensor& ids,
                           const Tensor& enc, int64_t d_model, int64_t decoder_layers) {
  check_seq2seq_ids(who, "decoder_input_ids", ids);
  const int64_t B = ids.size(0), T = ids.size(1);
  const Seq2SeqCache* cache = in.cache;
  const int64_t past = cache ? cache->length() : 0;
  if (cache) {
    LMF_CHECK(cache->batch() == B && static_cast<int64_t>(cache->cross.size()) == decoder_layers &&
                  cache->self.num_layers() == decoder_layers,
              ShapeError,
              "{}: the cache holds {} rows and {} layers but decoder_input_ids has {} rows and the "
              "model {} decoder layers (make it with make_cache)",
              who, cache->batch(), cache->self.num_layers(), B, decoder_layers);
  }
  // An encoder row may serve a group of consecutive decoder rows (Seq2SeqInputs).
  const int64_t g = in.encoder_row_group;
  LMF_CHECK(g >= 1 && B % g == 0, ValueError,
            "{}: encoder_row_group {} must be positive and divide the {} decoder rows", who, g, B);
  LMF_CHECK(enc.dim() == 3 && enc.size(0) == B / g && enc.size(2) == d_model, ShapeError,
            "{}: encoder_hidden_states must be [{}, S, {}]{}, got {}", who, B / g, d_model,
            g > 1 ? fmt::format(" (encoder_row_group {})", g) : "", enc.describe());
  check_seq2seq_mask(who, "attention_mask", in.attention_mask, B / g, enc.size(1));
  if (cache && cache->has_cross())
    LMF_CHECK(cache->cross[0].k.size(0) == B / g, ValueError,
              "{}: the cache holds cross-attention keys for {} rows but encoder_hidden_states has "
              "{} (encoder_row_group {}); after a reorder across sources pass one encoder row per "
              "decoder row",
              who, cache->cross[0].k.size(0), B / g, g);
  if (cache && cache->has_cross())
    LMF_CHECK(cache->cross[0].k.size(2) == enc.size(1), ValueError,
              "{}: the cache holds cross-attention keys of a {}-position source but "
              "encoder_hidden_states has {} positions (reset() the cache for a new source)",
              who, cache->cross[0].k.size(2), enc.size(1));
  check_seq2seq_mask(who, "decoder_attention_mask", in.decoder_attention_mask, B, past + T);
  return past;
}

Seq2SeqOutput seq2seq_encoder_output(const EncoderDecoderModel& m, const Seq2SeqInputs& in) {
  Seq2SeqOutput out;
  if (in.encoder_hidden_states.defined()) {
    out.encoder_last_hidden_state = in.encoder_hidden_states;
  } else {
    EncoderOutput e = m.encode(in.input_ids, in.attention_mask, in.output_attentions);
    out.encoder_last_hidden_state = e.last_hidden_state;
    out.encoder_attentions = std::move(e.attentions);
  }
  return out;
}

Tensor seq2seq_decoder_ids(const std::string& who, const Seq2SeqInputs& in,
                           const Seq2SeqLabels& labels, int64_t pad_token_id,
                           int64_t decoder_start_token_id) {
  Tensor ids = in.decoder_input_ids;
  if (!ids.defined() && labels.labels.defined()) {
    LMF_CHECK(decoder_start_token_id >= 0, ValueError,
              "{}: decoder_start_token_id has to be defined (set it in config.json) to make "
              "decoder_input_ids from labels",
              who);
    ids = shift_tokens_right(labels.labels, pad_token_id, decoder_start_token_id);
  }
  LMF_CHECK(ids.defined(), ValueError,
            "{}: give decoder_input_ids (start with decoder_start_token_id = {}) or labels", who,
            decoder_start_token_id);
  return ids;
}

Tensor seq2seq_lm_loss(const std::string& who, const Tensor& logits, const Tensor& l, int64_t keep,
                       int64_t T) {
  const int64_t B = logits.size(0), V = logits.size(2);
  LMF_CHECK(keep == 0 || keep >= T, ValueError,
            "{}: labels need the logits of every position (logits_to_keep = 0)", who);
  LMF_CHECK(
      l.dim() == 2 && l.size(0) == B && l.size(1) == logits.size(1) && !is_floating(l.dtype()),
      ShapeError, "{}: labels must be integer [B, T] = [{}, {}] like decoder_input_ids, got {}",
      who, B, logits.size(1), l.describe());
  return cross_entropy(logits.reshape({B * logits.size(1), V}),
                       l.reshape({B * logits.size(1)}).to(DType::i64), -100);
}

}  // namespace detail

}  // namespace lmf::models
