// ELECTRA pretraining objective: one step against PyTorch + transformers (goldens:
// scripts/reference/gen_electra_goldens.py), masking statistics, a short run that lowers the MLM
// and RTD losses, save/load round trips, and bad setups.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "lmforge/io/checkpoint.h"
#include "lmforge/optim/adamw.h"
#include "lmforge/train/electra.h"
#include "lmforge/train/pretrain.h"

namespace lmf::train {
namespace {

namespace fs = std::filesystem;

std::string fixtures() {
  return LMF_FIXTURES_DIR;
}

std::vector<double> values(const Tensor& t) {
  const auto v = t.to_vector<float>();
  return {v.begin(), v.end()};
}

// The tiny fixture's vocabulary: 0 [PAD], 1 [UNK], 2 [CLS], 3 [SEP], 4 [MASK], 5.. words.
ElectraTokens tiny_tokens() {
  ElectraTokens t;
  t.pad = 0;
  t.mask = 4;
  t.vocab_size = 64;
  t.special_ids = {0, 1, 2, 3, 4};
  return t;
}

// A synthetic corpus with structure to learn: [CLS] w1 .. wn [SEP] over words 5..63, each word
// drawn from a Zipf distribution or, half of the time, the successor of the previous word.
std::vector<std::vector<int32_t>> synthetic_corpus(int n, uint64_t seed, int min_len, int max_len) {
  Generator g(seed);
  std::vector<double> cdf;
  double total = 0;
  for (int r = 1; r <= 59; ++r) cdf.push_back(total += 1.0 / r);
  auto zipf = [&] {
    const double u = g.uniform() * total;
    return static_cast<int32_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
  };
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < n; ++i) {
    const int len = min_len + static_cast<int>(g.next_u64() % (max_len - min_len + 1));
    std::vector<int32_t> s = {2};
    int32_t w = zipf();
    for (int j = 0; j < len; ++j) {
      s.push_back(5 + w);
      w = g.uniform() < 0.5 ? (w + 1) % 59 : zipf();
    }
    s.push_back(3);
    out.push_back(s);
  }
  return out;
}

// The golden's fixed MLM-masked batch.
ElectraBatch golden_batch(const io::StateDict& g) {
  ElectraBatch b;
  b.original_ids = g.at("batch.original_ids");
  b.masked_ids = g.at("batch.masked_ids");
  b.mlm_labels = g.at("batch.mlm_labels");
  b.attention_mask = g.at("batch.attention_mask");
  b.token_type_ids = g.at("batch.token_type_ids");
  return b;
}

models::BertConfig tiny_config(int64_t hidden, int64_t layers, int64_t heads, int64_t inter) {
  models::BertConfig c = models::BertConfig::defaults(models::EncoderFamily::electra);
  c.vocab_size = 64;
  c.embedding_size = 16;
  c.hidden_size = hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.intermediate_size = inter;
  c.max_position_embeddings = 32;
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0;
  return c;
}

// The generator's MLM head runs only at the masked positions (sparse_mlm_logits): its rows must
// be the full ElectraForMaskedLM logits at those positions, in the order asked for. (The one-step
// golden cannot see a row mix-up: the tiny generator's logits are so flat that the Gumbel noise
// alone decides its samples.)
TEST(Electra, SparseGeneratorHeadEqualsFullLogitsRows) {
  const std::string dir = fixtures() + "/electra";
  auto obj = ElectraObjective::from_pretrained(dir + "/model", {}, {}, tiny_tokens());
  obj->set_training(false);
  auto& gen = obj->generator();
  const io::StateDict g = io::load_safetensors(dir + "/step.safetensors");
  models::EncoderInputs in;
  in.input_ids = g.at("batch.masked_ids");
  in.attention_mask = g.at("batch.attention_mask");
  in.token_type_ids = g.at("batch.token_type_ids");
  NoGradGuard no_grad;
  const Tensor full = gen.forward(in, {}).logits;  // [B, T, V]
  const int64_t v = full.size(-1), n = full.size(0) * full.size(1);
  const Tensor h = gen.encoder().forward(in).last_hidden_state;
  const std::vector<int64_t> rows = {n - 1, 1, n / 2, 0};
  const Tensor sparse = sparse_mlm_logits(gen, h.reshape({n, h.size(-1)}), rows);
  ASSERT_EQ(sparse.shape(), (Shape{4, v}));
  const auto f = full.contiguous().to_vector<float>();
  const auto sp = sparse.contiguous().to_vector<float>();
  double spread = 0;
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t j = 0; j < v; ++j) {
      const float want = f[static_cast<size_t>(rows[r] * v + j)];
      ASSERT_NEAR(sp[r * v + j], want, 1e-5 * (1 + std::abs(want))) << "row " << rows[r] << " id " << j;
      spread = std::max(spread, std::abs(double(want) - f[static_cast<size_t>(rows[0] * v + j)]));
    }
  EXPECT_GT(spread, 1e-4);  // the rows differ, so a mix-up would show
}

TEST(Electra, OneStepMatchesPyTorch) {
  const std::string dir = fixtures() + "/electra";
  const std::string path = dir + "/step.safetensors";
  io::StateDict g = io::load_safetensors(path);
  std::map<std::string, std::string> meta;
  {
    std::ifstream f(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    meta = io::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path)
               .metadata;
  }
  auto obj = ElectraObjective::from_pretrained(dir + "/model", {}, {}, tiny_tokens());
  obj->set_training(false);  // dropout off (the golden's probabilities are 0)

  const ElectraBatch b = golden_batch(g);
  Tensor corrupted, disc_labels;
  auto out = obj->loss_on(b, g.at("noise"), &corrupted, &disc_labels);

  // The Gumbel-max samples and the discriminator's labels are exactly torch's.
  const auto labels = b.mlm_labels.to_vector<int64_t>();
  const auto corr = corrupted.to_vector<int64_t>();
  const auto sampled = g.at("sampled").to_vector<int64_t>();
  size_t m = 0;
  for (size_t k = 0; k < labels.size(); ++k)
    if (labels[k] != -100) EXPECT_EQ(corr[k], sampled[m++]) << "sample at position " << k;
  EXPECT_EQ(m, sampled.size());
  EXPECT_EQ(disc_labels.to_vector<int64_t>(), g.at("disc_labels").to_vector<int64_t>());

  auto near = [](double a, double ref, const char* what) {
    EXPECT_NEAR(a, ref, 1e-4 * std::abs(ref)) << what;
  };
  near(out.loss.item(), g.at("loss").item(), "loss");
  near(out.parts.at("mlm_loss"), g.at("mlm_loss").item(), "mlm_loss");
  near(out.parts.at("rtd_loss"), g.at("rtd_loss").item(), "rtd_loss");
  EXPECT_NEAR(out.parts.at("rtd_accuracy"), g.at("rtd_accuracy").item(), 1e-6);
  // The RTD loss over the replaced and the original tokens apart (torch's BCE on each subset).
  near(out.parts.at("rtd_loss_replaced"), g.at("rtd_loss_replaced").item(), "rtd_loss_replaced");
  near(out.parts.at("rtd_loss_original"), g.at("rtd_loss_original").item(), "rtd_loss_original");
  {
    int64_t tokens = 0, replaced = 0;
    const auto att = b.attention_mask.to_vector<int64_t>(), dl = g.at("disc_labels").to_vector<int64_t>();
    for (size_t k = 0; k < att.size(); ++k) tokens += att[k], replaced += att[k] && dl[k];
    EXPECT_NEAR(out.parts.at("replaced_fraction"), static_cast<double>(replaced) / tokens, 1e-12);
  }

  out.loss.backward();
  // Same parameters under the same names (shared embeddings once, under the discriminator).
  const NamedTensors params = obj->parameters();
  std::set<std::string> ours, theirs;
  for (const auto& [n, p] : params) ours.insert(n);
  for (const auto& [k, t] : g)
    if (k.rfind("grad.", 0) == 0) theirs.insert(k.substr(5));
  ASSERT_EQ(ours, theirs);
  auto& gen = obj->generator();
  auto& disc = obj->discriminator();
  EXPECT_TRUE(gen.parameter("electra.embeddings.word_embeddings.weight")
                  .same(disc.parameter("electra.embeddings.word_embeddings.weight")));
  EXPECT_TRUE(gen.parameter("generator_lm_head.weight")
                  .same(disc.parameter("electra.embeddings.word_embeddings.weight")));

  // Gradients: |ours - torch| <= 1e-3 |torch| + 1e-6 max|grad| (floor for entries that are 0 in
  // exact arithmetic, e.g. attention key biases).
  double gmax = 0;
  for (const auto& [n, p] : params)
    gmax = std::max(gmax, [&] {
      double x = 0;
      for (double v : values(g.at("grad." + n))) x = std::max(x, std::abs(v));
      return x;
    }());
  const double floor = 1e-6 * gmax;
  std::map<std::string, std::vector<double>> grads, before;
  for (const auto& [n, p] : params) {
    ASSERT_TRUE(p.grad().defined()) << n;
    const auto a = values(p.grad()), r = values(g.at("grad." + n));
    int bad = 0;
    for (size_t i = 0; i < a.size(); ++i)
      if (std::abs(a[i] - r[i]) > 1e-3 * std::abs(r[i]) + floor && ++bad <= 3)
        ADD_FAILURE() << "grad " << n << "[" << i << "]: " << a[i] << " vs torch " << r[i];
    EXPECT_EQ(bad, 0) << n;
    grads[n] = a;
    before[n] = values(p);
  }

  std::set<std::string> decay_ref;
  {
    std::stringstream ss(meta.at("decay"));
    for (std::string n; std::getline(ss, n, ',');) decay_ref.insert(n);
  }
  auto groups = optim::decay_param_groups(params, 0.01);
  std::set<const TensorImpl*> decayed, decayed_ref;
  for (const auto& grp : groups)
    if (*grp.weight_decay > 0)
      for (const Tensor& p : grp.params) decayed.insert(p.impl());
  for (const auto& [n, p] : params)
    if (decay_ref.count(n)) decayed_ref.insert(p.impl());
  EXPECT_EQ(decayed, decayed_ref);
  optim::AdamWOptions opt;
  opt.lr = 1e-3;
  opt.weight_decay = 0.01;
  optim::AdamW adamw(std::move(groups), opt);
  adamw.step();

  // Updates s = (p_new - p_old) / lr against torch's (f16 in the golden): 1e-3 |s| + 1e-4, plus
  // the effect of the gradient tolerance d on -g / (|g| + eps); where torch's gradient is within
  // d of 0 the update is checked against the formula on our own gradient.
  constexpr double kEps = 1e-8;
  for (const auto& [n, p] : params) {
    const auto now = values(p), s_ref = values(g.at("step." + n)), gr = values(g.at("grad." + n));
    const double wd = decay_ref.count(n) ? 0.01 : 0.0;
    int bad = 0;
    for (size_t i = 0; i < now.size(); ++i) {
      const double s = (now[i] - before[n][i]) / 1e-3;
      const double d = 1e-3 * std::abs(gr[i]) + floor;
      double expect = s_ref[i], tol = 1e-3 * std::abs(s_ref[i]) + 1e-4;
      if (std::abs(gr[i]) <= d) {
        expect = -grads[n][i] / (std::abs(grads[n][i]) + kEps) - wd * before[n][i];
      } else {
        const double mm = std::abs(gr[i]) - d + kEps;
        tol += kEps * d / (mm * mm);
      }
      const double p_ref = before[n][i] + 1e-3 * expect;
      const bool ok = std::abs(s - expect) <= tol &&
                      std::abs(now[i] - p_ref) <= 1e-3 * std::abs(p_ref) + 1e-3 * tol;
      if (!ok && ++bad <= 3)
        ADD_FAILURE() << "update " << n << "[" << i << "]: " << s << " vs torch " << s_ref[i];
    }
    EXPECT_EQ(bad, 0) << n;
  }
}

// ELECTRA's `temperature`: samples come from softmax(logits / T). At T = 1000 the logits
// (|x| < 20 here) move a score by < 0.02, so wherever the Gumbel noise's two best values are
// further apart than 0.05 the sample is the noise's own argmax; at T = 0.001 the noise (within
// [-3.1, 20.8]) moves a score by < 0.024, so wherever the generator's two best logits are further
// apart than 0.05 the sample is the generator's argmax. The two must differ somewhere.
TEST(Electra, TemperatureScalesTheGeneratorLogits) {
  const std::string dir = fixtures() + "/electra";
  io::StateDict g = io::load_safetensors(dir + "/step.safetensors");
  const ElectraBatch b = golden_batch(g);
  const Tensor noise = g.at("noise");
  const int64_t v = noise.size(1);
  const auto u = noise.to_vector<float>();
  // best index and margin to the second best of a row
  auto best2 = [](std::vector<double> x) {
    auto it = std::max_element(x.begin(), x.end());
    const auto arg = static_cast<int64_t>(it - x.begin());
    const double top = *it;
    *it = -1e300;
    return std::make_pair(arg, top - *std::max_element(x.begin(), x.end()));
  };
  auto samples_at = [&](double t) {
    ElectraOptions eo;
    eo.temperature = t;
    auto obj = ElectraObjective::from_pretrained(dir + "/model", {}, {}, tiny_tokens(), eo);
    obj->set_training(false);
    Tensor corrupted;
    obj->loss_on(b, noise, &corrupted);
    return std::make_pair(corrupted.to_vector<int64_t>(), std::move(obj));
  };
  auto [hot, obj_hot] = samples_at(1000.0);
  auto [cold, obj_cold] = samples_at(0.001);
  models::EncoderInputs in;
  in.input_ids = b.masked_ids;
  in.attention_mask = b.attention_mask;
  in.token_type_ids = b.token_type_ids;
  NoGradGuard ng;
  const auto logits = obj_cold->generator().forward(in).logits.contiguous().to_vector<float>();
  const auto labels = b.mlm_labels.to_vector<int64_t>();
  int checked_hot = 0, checked_cold = 0, differ = 0;
  for (size_t k = 0, r = 0; k < labels.size(); ++k) {
    if (labels[k] == -100) continue;
    std::vector<double> gum(static_cast<size_t>(v)), lg(static_cast<size_t>(v));
    for (int64_t j = 0; j < v; ++j) {
      gum[j] = -std::log(-std::log(static_cast<double>(u[r * v + j]) + 1e-9) + 1e-9);
      lg[j] = logits[k * v + j];
    }
    const auto [g_arg, g_margin] = best2(gum);
    const auto [l_arg, l_margin] = best2(lg);
    if (g_margin > 0.05) {
      EXPECT_EQ(hot[k], g_arg) << "T=1000 sample " << r;
      ++checked_hot;
    }
    if (l_margin > 0.05) {
      EXPECT_EQ(cold[k], l_arg) << "T=0.001 sample " << r;
      ++checked_cold;
    }
    differ += hot[k] != cold[k];
    ++r;
  }
  EXPECT_GT(checked_hot, 0);
  EXPECT_GT(checked_cold, 0);
  EXPECT_GT(differ, 0);
  ElectraOptions bad;
  bad.temperature = 0.0;
  EXPECT_THROW(ElectraObjective::from_pretrained(dir + "/model", {}, {}, tiny_tokens(), bad),
               ValueError);
}

std::unique_ptr<ElectraObjective> tiny_objective(std::vector<std::vector<int32_t>> train,
                                                 std::vector<std::vector<int32_t>> eval,
                                                 uint64_t seed = 3, ElectraOptions eo = {}) {
  return ElectraObjective::from_configs(tiny_config(16, 1, 2, 32), tiny_config(32, 2, 4, 64),
                                        std::move(train), std::move(eval), tiny_tokens(), eo, seed);
}

TEST(Electra, MaskingFollowsTheCollator) {
  ElectraOptions hf;  // DataCollatorForLanguageModeling's 80 / 10 / 10
  hf.mask_replace_prob = 0.8;
  hf.random_replace_prob = 0.1;
  auto obj = tiny_objective(synthetic_corpus(64, 1, 20, 30), {}, 3, hf);
  Generator rng(5);
  int64_t eligible = 0, chosen = 0, masked = 0, kept = 0, specials_chosen = 0;
  for (int rep = 0; rep < 20; ++rep) {
    std::vector<int64_t> idx(64);
    for (int i = 0; i < 64; ++i) idx[i] = i;
    ElectraBatch b = obj->make_batch(idx, rng);
    const auto ids = b.original_ids.to_vector<int64_t>(), in = b.masked_ids.to_vector<int64_t>(),
               lab = b.mlm_labels.to_vector<int64_t>(), att = b.attention_mask.to_vector<int64_t>();
    for (size_t k = 0; k < ids.size(); ++k) {
      const bool special = ids[k] < 5;
      eligible += att[k] && !special;
      if (lab[k] == -100) {
        EXPECT_EQ(in[k], ids[k]);
        continue;
      }
      EXPECT_EQ(lab[k], ids[k]);
      specials_chosen += special || !att[k];
      ++chosen;
      masked += in[k] == 4;
      kept += in[k] == ids[k];
    }
  }
  EXPECT_EQ(specials_chosen, 0);
  EXPECT_NEAR(static_cast<double>(chosen) / eligible, 0.15, 0.01);
  EXPECT_NEAR(static_cast<double>(masked) / chosen, 0.8, 0.03);
  EXPECT_NEAR(static_cast<double>(kept) / chosen, 0.1 + 0.1 / 64, 0.03);
}

// ELECTRA's own masking (google-research/electra pretrain_helpers.mask), ElectraOptions' default:
// 85 % [MASK], 15 % unchanged, no random replacement.
TEST(Electra, MaskingWithoutRandomReplacement) {
  ElectraOptions eo;
  EXPECT_EQ(eo.mask_replace_prob, 0.85);
  EXPECT_EQ(eo.random_replace_prob, 0.0);
  auto obj = tiny_objective(synthetic_corpus(64, 1, 20, 30), {}, 3, eo);
  Generator rng(5);
  int64_t chosen = 0, masked = 0, kept = 0;
  for (int rep = 0; rep < 20; ++rep) {
    std::vector<int64_t> idx(64);
    for (int i = 0; i < 64; ++i) idx[i] = i;
    ElectraBatch b = obj->make_batch(idx, rng);
    const auto ids = b.original_ids.to_vector<int64_t>(), in = b.masked_ids.to_vector<int64_t>(),
               lab = b.mlm_labels.to_vector<int64_t>();
    for (size_t k = 0; k < ids.size(); ++k) {
      if (lab[k] == -100) continue;
      ++chosen;
      masked += in[k] == 4;
      kept += in[k] == ids[k];
    }
  }
  EXPECT_EQ(masked + kept, chosen);  // nothing else: no random ids
  EXPECT_NEAR(static_cast<double>(masked) / chosen, 0.85, 0.03);
}

// With `lmforge pretrain --recipe electra`'s defaults (ElectraOptions' masking, the recipe's
// sampling temperature): at temperature 1 the tiny generator learns the corpus's Zipf frequencies
// within these 40 steps and its samples become as hard to spot as docs/TRAINING.md's runs show
// (held-out AUC 0.52 -> 0.39 here).
TEST(Electra, ShortRunLowersMlmAndRtdLoss) {
  ElectraOptions eo;
  eo.temperature = ElectraRecipeDefaults::temperature;
  auto obj = tiny_objective(synthetic_corpus(256, 7, 8, 20), synthetic_corpus(32, 8, 8, 20), 3, eo);
  const Metrics before = obj->evaluate();
  ASSERT_TRUE(before.count("eval_rtd_auc"));
  auto params = obj->parameters();
  optim::AdamWOptions o;
  o.lr = 1e-2;
  optim::AdamW adamw(optim::decay_param_groups(params, 0.01), o);
  Generator rng(11);
  double mlm_first = 0, mlm_last = 0, rtd_first = 0, rtd_last = 0;
  const int steps = 40;
  for (int step = 0; step < steps; ++step) {
    std::vector<int64_t> idx;
    for (int i = 0; i < 16; ++i) idx.push_back(static_cast<int64_t>(rng.next_u64() % 256));
    auto bl = obj->loss(idx, rng);
    ASSERT_TRUE(std::isfinite(bl.loss.item()));
    bl.loss.backward();
    adamw.step();
    adamw.zero_grad();
    if (step < 5) {
      mlm_first += bl.parts["mlm_loss"] / 5;
      rtd_first += bl.parts["rtd_loss"] / 5;
    }
    if (step >= steps - 5) {
      mlm_last += bl.parts["mlm_loss"] / 5;
      rtd_last += bl.parts["rtd_loss"] / 5;
    }
  }
  const Metrics after = obj->evaluate();
  EXPECT_LT(mlm_last, mlm_first * 0.9);
  EXPECT_LT(rtd_last, rtd_first * 0.8);
  EXPECT_LT(after.at("eval_mlm_loss"), before.at("eval_mlm_loss"));
  EXPECT_LT(after.at("eval_rtd_loss"), before.at("eval_rtd_loss"));
  EXPECT_GT(after.at("eval_rtd_auc"), before.at("eval_rtd_auc"));
  // The held-out RTD loss is the token-weighted mean of its replaced and original parts.
  for (const Metrics* m : {&before, &after}) {
    const double f = m->at("eval_replaced_fraction");
    EXPECT_GT(f, 0.0);
    EXPECT_LT(f, 0.5);
    EXPECT_NEAR(f * m->at("eval_rtd_loss_replaced") + (1 - f) * m->at("eval_rtd_loss_original"),
                m->at("eval_rtd_loss"), 1e-5 * m->at("eval_rtd_loss"));
  }
  RecordProperty("train", fmt::format("mlm {:.3f}->{:.3f} rtd {:.3f}->{:.3f}", mlm_first, mlm_last,
                                      rtd_first, rtd_last));
  std::printf(
      "ELECTRA 40 steps: mlm %.3f -> %.3f, rtd %.4f -> %.4f; eval mlm %.3f -> %.3f, rtd "
      "%.4f -> %.4f, auc %.3f -> %.3f\n",
      mlm_first, mlm_last, rtd_first, rtd_last, before.at("eval_mlm_loss"),
      after.at("eval_mlm_loss"), before.at("eval_rtd_loss"), after.at("eval_rtd_loss"),
      before.at("eval_rtd_auc"), after.at("eval_rtd_auc"));
}

TEST(Electra, SaveAndLoadPretrainedAreExact) {
  const auto eval = synthetic_corpus(8, 9, 5, 12);
  auto a = tiny_objective(synthetic_corpus(8, 2, 5, 12), eval, 21);
  const fs::path dir = fs::temp_directory_path() / ("lmf_electra_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  a->save_pretrained(dir.string());
  for (const char* f :
       {"config.json", "model.safetensors", "generator/config.json", "generator/model.safetensors"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  const Metrics ma = a->evaluate();

  auto b = ElectraObjective::from_pretrained(dir.string(), {}, eval, tiny_tokens());
  EXPECT_EQ(b->evaluate(), ma);
  auto c = tiny_objective(synthetic_corpus(8, 2, 5, 12), eval, 99);  // other weights
  EXPECT_NE(c->evaluate(), ma);
  const Tensor held = c->parameters().front().second;
  c->load_pretrained(dir.string());
  EXPECT_EQ(c->evaluate(), ma);
  EXPECT_TRUE(held.same(c->parameters().front().second));  // loaded in place
  EXPECT_TRUE(c->generator()
                  .parameter("electra.embeddings.word_embeddings.weight")
                  .same(c->discriminator().parameter("electra.embeddings.word_embeddings.weight")));
  fs::remove_all(dir);
}

TEST(Electra, RejectsMismatchedModelsAndBadInstances) {
  auto make = [](models::BertConfig gen, std::vector<std::vector<int32_t>> train) {
    return ElectraObjective::from_configs(gen, tiny_config(32, 1, 4, 64), std::move(train), {},
                                          tiny_tokens());
  };
  auto gen = tiny_config(16, 1, 2, 32);
  gen.embedding_size = 8;
  EXPECT_THROW(make(gen, {{2, 9, 3}}), ValueError);
  EXPECT_THROW(make(tiny_config(16, 1, 2, 32), {std::vector<int32_t>(40, 9)}), ValueError);
  EXPECT_THROW(make(tiny_config(16, 1, 2, 32), {{2, 3}}), ValueError);      // only specials
  EXPECT_THROW(make(tiny_config(16, 1, 2, 32), {{2, 70, 3}}), ValueError);  // outside vocab
  EXPECT_THROW(make(tiny_config(16, 1, 2, 32), {{}}), ValueError);
  EXPECT_NO_THROW(make(tiny_config(16, 1, 2, 32), {{2, 9, 3}}));
}

}  // namespace
}  // namespace lmf::train
