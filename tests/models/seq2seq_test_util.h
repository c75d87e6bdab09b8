// Shared checks of the encoder-decoder family tests (Marian, BART, T5) on their golden.json files
// (gen_marian_goldens.py / gen_bart_goldens.py / gen_t5_goldens.py write the same keys): inputs,
// comparisons, the teacher-forced logits, the cached decoder (with a beam-style reorder), a greedy
// loop on the cache, training mode, and the loss with its gradients.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/models/encoder_decoder.h"
#include "lmforge/models/registry.h"
#include "lmforge/tasks/seq2seq.h"
#include "models/decoder_test_util.h"

namespace lmf::models::test {

inline std::unique_ptr<EncoderDecoderModel> load_seq2seq(const std::string& dir,
                                                         const LoadOptions& opt = {},
                                                         LoadReport* rep = nullptr) {
  auto m = load_pretrained_as<EncoderDecoderModel>(dir, "an encoder-decoder", opt, rep);
  m->eval();
  return m;
}
inline Seq2SeqInputs golden_inputs(const json& g) {
  Seq2SeqInputs in;
  in.input_ids = golden_tensor(g.at("input_ids"));
  in.attention_mask = golden_tensor(g.at("attention_mask"));
  in.decoder_input_ids = golden_tensor(g.at("decoder_input_ids"));
  return in;
}
inline double max_abs(const Tensor& a, const Tensor& b) {
  return max_abs_diff_masked(a, b, Tensor::ones({a.size(0), a.size(1)}, DType::i64));
}
// Max |a - b| at the attended source rows.
inline double encoder_diff(const Tensor& a, const json& g) {
  return max_abs_diff_masked(a, golden_tensor(g.at("encoder_last_hidden_state")),
                             golden_tensor(g.at("attention_mask")));
}

inline Tensor dec_ids_source(const json& g) { return golden_tensor(g.at("input_ids")); }

// Logits (with the golden's source padding, and with its decoder_attention_mask) and encoder
// states; encode() then the decoder on the given states gives the same logits.
inline void expect_golden_logits(const EncoderDecoderModel& m, const json& g) {
  NoGradGuard ng;
  const Seq2SeqOutput o = m.forward(golden_inputs(g));
  EXPECT_LE(max_abs(o.logits, golden_tensor(g.at("logits"))), 1e-4);
  EXPECT_LE(encoder_diff(o.encoder_last_hidden_state, g), 1e-4);
  Seq2SeqInputs padded = golden_inputs(g);
  padded.decoder_attention_mask = golden_tensor(g.at("decoder_attention_mask"));
  EXPECT_LE(max_abs(m.forward(padded).logits, golden_tensor(g.at("logits_decoder_mask"))), 1e-4);
  Seq2SeqInputs dec = golden_inputs(g);
  dec.encoder_hidden_states = m.encode(dec.input_ids, dec.attention_mask).last_hidden_state;
  dec.input_ids = Tensor();
  EXPECT_LE(max_abs(m.forward(dec).logits, o.logits), 1e-6);
  // encode_for_decoder (generation's encoder; Marian and BART skip the padded positions): the
  // attended positions as encode() gives them, and the same logits through the decoder.
  const Tensor mask = golden_tensor(g.at("attention_mask"));
  const auto mv = mask.to(DType::i64).to_vector<int64_t>();
  ASSERT_TRUE(std::count(mv.begin(), mv.end(), 0) > 0) << "the golden has no padding";
  const Tensor fd = m.encode_for_decoder(dec_ids_source(g), mask).last_hidden_state;
  EXPECT_LE(max_abs_diff_masked(fd, dec.encoder_hidden_states, mask), 1e-5);
  Seq2SeqInputs via = golden_inputs(g);
  via.encoder_hidden_states = fd;
  via.input_ids = Tensor();
  EXPECT_LE(max_abs(m.forward(via).logits, o.logits), 1e-5);
}

// The packed inference weights (m is prepared) give the golden logits too.
inline void expect_prepared_logits(EncoderDecoderModel& m, const json& g) {
  NoGradGuard ng;
  m.prepare_inference();
  EXPECT_LE(max_abs(m.forward(golden_inputs(g)).logits, golden_tensor(g.at("logits"))), 1e-4);
}

// The decoder over a Seq2SeqCache, a 2-token prefix then one token per step; returns the
// concatenated logits (compared with the full forward and the golden).
inline Tensor cached_logits(const EncoderDecoderModel& m, const Seq2SeqInputs& full,
                            const Tensor& enc) {
  const int64_t B = full.decoder_input_ids.size(0), T = full.decoder_input_ids.size(1);
  Seq2SeqCache cache = m.make_cache(B, T);
  EXPECT_FALSE(cache.has_cross());
  std::vector<Tensor> steps;
  for (int64_t start = 0; start < T;) {
    const int64_t n = start == 0 ? 2 : 1;
    Seq2SeqInputs in;
    in.encoder_hidden_states = enc;
    in.attention_mask = full.attention_mask;
    in.decoder_input_ids = full.decoder_input_ids.narrow(1, start, n).contiguous();
    in.cache = &cache;
    in.logits_to_keep = n == 1 ? 1 : 0;
    steps.push_back(m.forward(in).logits);
    start += n;
    EXPECT_EQ(cache.length(), start);
    EXPECT_TRUE(cache.has_cross());
  }
  return concat(steps, 1);
}

// cached_logits against the full forward `ref` and the golden logits; then a cache filled with
// T - 1 positions, its rows swapped, gives the swapped rows' last logits; one more position than
// the capacity is refused. Returns the cache of the reorder check (length T) for further checks.
inline Seq2SeqCache expect_cached_decoding_equals_full(const EncoderDecoderModel& m,
                                                       const Seq2SeqInputs& full,
                                                       const Tensor& golden_logits) {
  NoGradGuard ng;
  const Tensor ref = m.forward(full).logits;
  const Tensor enc = m.encode(full.input_ids, full.attention_mask).last_hidden_state;
  const int64_t B = full.decoder_input_ids.size(0), T = full.decoder_input_ids.size(1);
  const Tensor inc = cached_logits(m, full, enc);
  EXPECT_LE(max_abs(inc, ref), 1e-5);
  EXPECT_LE(max_abs(inc, golden_logits), 1e-4);
  Seq2SeqCache c2 = m.make_cache(B, T);
  Seq2SeqInputs p;
  p.encoder_hidden_states = enc;
  p.attention_mask = full.attention_mask;
  p.decoder_input_ids = full.decoder_input_ids.narrow(1, 0, T - 1).contiguous();
  p.cache = &c2;
  m.forward(p);
  c2.reorder({1, 0});
  Seq2SeqInputs s;
  s.encoder_hidden_states = stack({enc.select(0, 1), enc.select(0, 0)}, 0);
  s.attention_mask = stack({full.attention_mask.select(0, 1), full.attention_mask.select(0, 0)}, 0);
  const Tensor last = full.decoder_input_ids.narrow(1, T - 1, 1);
  s.decoder_input_ids = stack({last.select(0, 1), last.select(0, 0)}, 0);
  s.cache = &c2;
  const Tensor l = m.forward(s).logits;
  EXPECT_LE(max_abs(l.select(0, 0).unsqueeze(0), ref.narrow(0, 1, 1).narrow(1, T - 1, 1)), 1e-5);
  EXPECT_LE(max_abs(l.select(0, 1).unsqueeze(0), ref.narrow(0, 0, 1).narrow(1, T - 1, 1)), 1e-5);
  EXPECT_THROW(m.forward(s), ValueError);  // past the cache's capacity
  return c2;
}

// Grouped encoder rows (Seq2SeqInputs::encoder_row_group, what beam search uses): each of the
// golden's sources serving 3 decoder rows gives exactly the logits and attention probabilities
// of the sources repeated 3 times, over a cached prefix, a within-group reorder, one more step,
// and a reorder that leaves the groups (Seq2SeqCache::reorder maps the shared cross keys).
inline void expect_grouped_encoder_rows_equal_repeated(const EncoderDecoderModel& m,
                                                       const Seq2SeqInputs& full) {
  NoGradGuard ng;
  const int64_t g = 3, Bs = full.input_ids.size(0), B = Bs * g;
  const int64_t T = full.decoder_input_ids.size(1);
  ASSERT_GE(T, 3);
  const Tensor enc = m.encode(full.input_ids, full.attention_mask).last_hidden_state;
  std::vector<Tensor> er, mr, ids;
  for (int64_t r = 0; r < B; ++r) {
    er.push_back(enc.select(0, r / g));
    mr.push_back(full.attention_mask.select(0, r / g));
    ids.push_back(full.decoder_input_ids.select(0, r % Bs));  // rows of a group differ
  }
  const Tensor dec_ids = stack(ids, 0);
  Seq2SeqCache grouped = m.make_cache(B, T), repeated = m.make_cache(B, T);
  auto run = [&](Seq2SeqCache& cache, bool group, int64_t start, int64_t n) {
    Seq2SeqInputs in;
    in.encoder_hidden_states = group ? enc : stack(er, 0);
    in.attention_mask = group ? full.attention_mask : stack(mr, 0);
    in.encoder_row_group = group ? g : 1;
    in.decoder_input_ids = dec_ids.narrow(1, start, n).contiguous();
    in.cache = &cache;
    in.output_attentions = true;
    return m.forward(in);
  };
  auto expect_same = [&](const Seq2SeqOutput& a, const Seq2SeqOutput& b, const char* what) {
    EXPECT_EQ(a.logits.contiguous().to_vector<float>(), b.logits.contiguous().to_vector<float>())
        << what;
    ASSERT_EQ(a.cross_attentions.size(), b.cross_attentions.size());
    for (size_t l = 0; l < a.cross_attentions.size(); ++l)
      EXPECT_EQ(a.cross_attentions[l].contiguous().to_vector<float>(),
                b.cross_attentions[l].contiguous().to_vector<float>())
          << what << " layer " << l;
  };
  expect_same(run(grouped, true, 0, 2), run(repeated, false, 0, 2), "prefix");
  const std::vector<int64_t> within = {1, 1, 0, 3, 5, 4};  // rows stay in their group (g = 3)
  std::vector<int64_t> order(B);
  for (int64_t r = 0; r < B; ++r) order[r] = (r / 6) * 6 + within[r % 6];
  grouped.reorder(order);
  repeated.reorder(order);
  expect_same(run(grouped, true, 2, 1), run(repeated, false, 2, 1), "after a within-group reorder");
  // Leaving the groups: the grouped cross cache becomes one row per decoder row.
  Seq2SeqCache g2 = m.make_cache(B, T), r2 = m.make_cache(B, T);
  run(g2, true, 0, 2);
  run(r2, false, 0, 2);
  std::vector<int64_t> across(B);
  for (int64_t r = 0; r < B; ++r) across[r] = B - 1 - r;
  g2.reorder(across);
  r2.reorder(across);
  ASSERT_EQ(g2.cross[0].k.size(0), B);
  for (size_t l = 0; l < g2.cross.size(); ++l)
    EXPECT_EQ(g2.cross[l].k.contiguous().to_vector<float>(),
              r2.cross[l].k.contiguous().to_vector<float>());
  // Bad groupings are clear errors.
  Seq2SeqInputs bad;
  bad.encoder_hidden_states = enc;
  bad.decoder_input_ids = dec_ids.narrow(1, 0, 1).contiguous();
  bad.encoder_row_group = 2;  // 2 * Bs rows of encoder states would be needed
  EXPECT_THROW(m.forward(bad), ShapeError);
  bad.encoder_row_group = 4;  // does not divide B = 3 * Bs (Bs = 2)
  if (B % 4 != 0) EXPECT_THROW(m.forward(bad), ValueError);
}

// decoder_input_ids made from the labels; loss (relative 1e-5), logits and the golden's
// parameter gradients (relative 1e-3) after backward().
inline void expect_golden_loss_and_grads(EncoderDecoderModel& m, const json& g) {
  Seq2SeqInputs in = golden_inputs(g);
  in.decoder_input_ids = Tensor();
  Seq2SeqLabels labels;
  labels.labels = golden_tensor(g.at("labels"));
  const Seq2SeqOutput out = m.forward(in, labels);
  ASSERT_TRUE(out.loss.defined());
  const double want = g.at("loss").get<double>();
  EXPECT_LE(std::abs(out.loss.item() - want) / std::abs(want), 1e-5);
  EXPECT_LE(max_abs(out.logits, golden_tensor(g.at("logits"))), 1e-4);
  out.loss.backward();
  for (const auto& [name, gj] : g.at("grads").items()) {
    const Tensor grad = m.parameter(name).grad();
    ASSERT_TRUE(grad.defined()) << name;
    EXPECT_LE(rel_diff(grad, golden_tensor(gj)), 1e-3) << name;
  }
}

// Training mode: the seeded dropout loss is reproducible and differs from the eval golden's; the
// output (loss not yet backpropagated) is returned.
inline Seq2SeqOutput expect_training_dropout(EncoderDecoderModel& m, const json& g) {
  m.train();
  Seq2SeqInputs in = golden_inputs(g);
  in.decoder_input_ids = Tensor();
  Seq2SeqLabels labels;
  labels.labels = golden_tensor(g.at("labels"));
  manual_seed(7);
  Seq2SeqOutput a = m.forward(in, labels);
  manual_seed(7);
  EXPECT_EQ(a.loss.item(), m.forward(in, labels).loss.item());
  EXPECT_GT(std::abs(a.loss.item() - g.at("loss").get<double>()), 1e-4) << "dropout had no effect";
  return a;
}

// expect_training_dropout, then every parameter but `unused` gets a gradient.
inline void expect_training_mode(EncoderDecoderModel& m, const json& g, const std::string& unused) {
  const Seq2SeqOutput a = expect_training_dropout(m, g);
  a.loss.backward();
  for (const auto& [name, p] : m.named_parameters())
    if (name != unused) EXPECT_TRUE(p.grad().defined()) << name;
}

// A source or target longer than max_position_embeddings is a ValueError naming it.
inline void expect_positions_checked(const EncoderDecoderModel& m, int64_t max_positions) {
  NoGradGuard ng;
  const Tensor ids = Tensor::full({1, max_positions + 1}, 5.0, DType::i64);
  try {
    m.encode(ids);
    ADD_FAILURE() << "a source longer than max_position_embeddings was accepted";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("max_position_embeddings"), std::string::npos);
  }
  Seq2SeqInputs in;
  in.input_ids = Tensor::full({1, 3}, 5.0, DType::i64);
  in.decoder_input_ids = Tensor::full({1, max_positions + 1}, 5.0, DType::i64);
  EXPECT_THROW(m.forward(in), ValueError);
  EXPECT_THROW(m.make_cache(1, max_positions + 1), ValueError);
}

// The API carries a seq2seq greedy loop: encode once, start from decoder_start_token_id, one
// cached token per step (cross-attention K/V computed on the first); rows that reached eos are
// padded. Returns [B, L] row-major, as generate()'s sequences.
inline std::vector<int64_t> greedy_on_cache(const EncoderDecoderModel& m, const Tensor& input_ids,
                                            const Tensor& attention_mask, int64_t L) {
  NoGradGuard ng;
  const Seq2SeqSpec sp = m.spec();
  const int64_t B = input_ids.size(0);
  Seq2SeqInputs in;
  in.attention_mask = attention_mask;
  in.encoder_hidden_states = m.encode(input_ids, attention_mask).last_hidden_state;
  Seq2SeqCache cache = m.make_cache(B, L);
  in.cache = &cache;
  in.logits_to_keep = 1;
  std::vector<int64_t> seq(B * L, sp.pad_token_id), next(B, sp.decoder_start_token_id);
  std::vector<bool> done(B, false);
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t b = 0; b < B; ++b) seq[b * L + t] = next[b];
    if (t + 1 == L || std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    in.decoder_input_ids = Tensor::from_vector(next, {B, 1});
    const std::vector<int64_t> best = argmax(m.forward(in).logits, -1).to_vector<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      next[b] = done[b] ? sp.pad_token_id : best[b];
      for (int64_t e : sp.eos_token_ids) done[b] = done[b] || next[b] == e;
    }
  }
  return seq;
}

// generate_seq2seq on a golden case's "sources" under `cfg`: its "output_ids", and its "scores"
// (1e-4) unless null, as transformers' generate() returned them. Returns the result.
inline tasks::GenerationResult expect_generate_case(const EncoderDecoderModel& m, const json& c,
                                                    const tasks::GenerationConfig& cfg) {
  const auto src = c.at("sources").get<std::vector<std::vector<int64_t>>>();
  tasks::GenerationResult r = tasks::generate_seq2seq(m, src, cfg);
  const auto want = c.at("output_ids").get<std::vector<std::vector<int64_t>>>();
  EXPECT_EQ(r.sequences.size(), want.size());
  for (size_t i = 0; i < want.size() && i < r.sequences.size(); ++i) {
    EXPECT_EQ(r.sequences[i].output_ids, want[i]) << "sequence " << i;
    if (c.at("scores").is_null()) continue;
    EXPECT_TRUE(r.sequences[i].score.has_value()) << "sequence " << i;
    if (r.sequences[i].score)
      EXPECT_NEAR(*r.sequences[i].score, c.at("scores")[i].get<double>(), 1e-4);
  }
  return r;
}

}  // namespace lmf::models::test
