// The family-neutral encoder-decoder pieces: the seq2seq cache, make_cache and
// shift_tokens_right (see models/encoder_decoder.h).
#include "lmforge/models/encoder_decoder.h"

#include "lmforge/core/autograd.h"
#include "lmforge/ops/ops.h"

namespace lmf::models {

void Seq2SeqCache::reorder(const std::vector<int64_t>& rows) {
  self.reorder(rows);  // checks the rows
  NoGradGuard no_grad;
  for (nn::KVCache& c : cross) {
    if (!c.k.defined()) continue;
    std::vector<Tensor> k, v;
    for (int64_t r : rows) {
      k.push_back(c.k.select(0, r));
      v.push_back(c.v.select(0, r));
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

}  // namespace lmf::models
