#include "lmforge/train/toy_demo.h"

#include <algorithm>
#include <chrono>

#include "lmforge/core/runtime.h"
#include "lmforge/models/bert.h"
#include "lmforge/optim/adamw.h"
#include "lmforge/optim/grad_clip.h"
#include "lmforge/optim/lr_scheduler.h"

namespace lmf::train {

namespace {

struct Batch {
  Tensor ids, labels;
};

// Random symbol sequences and their per-position targets (the same sequence, or reversed).
Batch make_batch(Generator& gen, int64_t batch, int64_t len, int64_t vocab, bool reverse) {
  std::vector<int64_t> ids(batch * len), labels(batch * len);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < len; ++i) ids[b * len + i] = static_cast<int64_t>(gen.next_u64() % vocab);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < len; ++i)
      labels[b * len + i] = ids[b * len + (reverse ? len - 1 - i : i)];
  return {Tensor::from_vector(ids, {batch, len}), Tensor::from_vector(labels, {batch, len})};
}

void validate(const ToyDemoOptions& o) {
  LMF_CHECK(o.task == "reverse" || o.task == "copy", ValueError,
            "demo: unknown task '{}'; use 'reverse' or 'copy'", o.task);
  LMF_CHECK(o.steps > 0 && o.batch > 0 && o.seq_len > 0 && o.vocab > 1, ValueError,
            "demo: steps, batch and seq_len must be positive and vocab > 1");
  LMF_CHECK(o.hidden > 0 && o.heads > 0 && o.hidden % o.heads == 0, ValueError,
            "demo: --hidden {} must be a positive multiple of --heads {}", o.hidden, o.heads);
  LMF_CHECK(o.lr > 0, ValueError, "demo: learning rate must be positive, got {}", o.lr);
}

}  // namespace

ToyDemoResult run_toy_demo(const ToyDemoOptions& opt,
                           const std::function<void(const ToyDemoStep&)>& on_step) {
  validate(opt);
  const bool reverse = opt.task == "reverse";
  manual_seed(opt.seed);  // parameter init and dropout
  Generator data_gen(opt.seed ^ 0xda7a);

  models::BertConfig cfg;
  cfg.vocab_size = opt.vocab + 1;  // the extra id is the (unused) padding token
  cfg.pad_token_id = opt.vocab;
  cfg.hidden_size = opt.hidden;
  cfg.num_hidden_layers = opt.layers;
  cfg.num_attention_heads = opt.heads;
  cfg.intermediate_size = 4 * opt.hidden;
  cfg.max_position_embeddings = opt.seq_len;
  cfg.type_vocab_size = 1;
  cfg.hidden_dropout_prob = 0.0;
  cfg.attention_probs_dropout_prob = 0.0;
  cfg.num_labels = opt.vocab;
  models::BertForTokenClassification model(cfg);
  model.train();

  optim::AdamWOptions aopt;
  aopt.lr = opt.lr;
  aopt.weight_decay = opt.weight_decay;
  optim::AdamW adam(optim::decay_param_groups(model.named_parameters(), opt.weight_decay), aopt);
  auto sched = optim::get_linear_schedule_with_warmup(adam, opt.warmup, opt.steps);

  ToyDemoResult res;
  res.parameters = model.num_parameters();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= opt.steps; ++step) {
    const auto ts = std::chrono::steady_clock::now();
    Batch b = make_batch(data_gen, opt.batch, opt.seq_len, opt.vocab, reverse);
    Tensor loss = model.loss(model.forward(b.ids), b.labels);
    loss.backward();
    optim::clip_grad_norm_(model.parameters(), 1.0);
    const double lr = adam.param_groups()[0].lr.value();
    adam.step();
    sched.step();
    adam.zero_grad();
    const double l = loss.item();
    res.losses.push_back(l);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    if (on_step) on_step({step, l, lr, static_cast<double>(opt.batch * opt.seq_len) / dt});
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Held-out evaluation on fresh sequences.
  NoGradGuard no_grad;
  model.eval();
  Generator eval_gen(opt.seed ^ 0xe7a1);
  constexpr int64_t kEval = 512;
  Batch e = make_batch(eval_gen, kEval, opt.seq_len, opt.vocab, reverse);
  Tensor logits = model.forward(e.ids);
  res.eval_loss = model.loss(logits, e.labels).item();
  const auto lv = logits.contiguous().to_vector<float>();
  const auto labels = e.labels.to_vector<int64_t>();
  const auto ids = e.ids.to_vector<int64_t>();
  int64_t right = 0, seq_right = 0;
  for (int64_t s = 0; s < kEval; ++s) {
    bool all = true;
    std::vector<int64_t> pred(opt.seq_len);
    for (int64_t i = 0; i < opt.seq_len; ++i) {
      const float* row = lv.data() + (s * opt.seq_len + i) * opt.vocab;
      pred[i] = std::max_element(row, row + opt.vocab) - row;
      const bool ok = pred[i] == labels[s * opt.seq_len + i];
      right += ok;
      all = all && ok;
    }
    seq_right += all;
    if (s < 3)
      res.examples.push_back({std::vector<int64_t>(ids.begin() + s * opt.seq_len,
                                                   ids.begin() + (s + 1) * opt.seq_len),
                              pred});
  }
  res.eval_token_accuracy = static_cast<double>(right) / static_cast<double>(kEval * opt.seq_len);
  res.eval_sequence_accuracy = static_cast<double>(seq_right) / kEval;
  return res;
}

}  // namespace lmf::train
