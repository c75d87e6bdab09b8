// Reward modelling (train/reward.h): preference pairs, RewardTrainer's tokenization and the
// Bradley-Terry objective over a decoder's one-output sequence-classification head.
#include "lmforge/train/reward.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/models/registry.h"
#include "lmforge/ops/ops.h"
#include "lmforge/tokenizers/chat_template.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/unicode.h"
#include "lmforge/train/hf_folder.h"

namespace lmf::train {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

bool blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n") == std::string::npos;
}

}  // namespace

bool is_chat_messages(const ojson& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const auto& m : v)
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      return false;
  return true;
}

std::string parse_preference_record(const ojson& j, PreferenceRecord& r) {
  if (!j.is_object()) return "not a JSON object";
  for (const char* k : {"chosen", "rejected"})
    if (!j.contains(k) || j[k].is_null()) return fmt::format("no \"{}\" field", k);
  const ojson &c = j["chosen"], &x = j["rejected"];
  const ojson p = j.contains("prompt") && !j["prompt"].is_null() ? j["prompt"] : ojson();
  r.explicit_prompt = !p.is_null();
  if (c.is_string() && x.is_string() && (p.is_null() || p.is_string())) {
    r.chosen = c.get<std::string>();
    r.rejected = x.get<std::string>();
    if (p.is_string()) r.prompt = p.get<std::string>();
    if (blank(r.chosen) || blank(r.rejected)) return "an empty chosen or rejected answer";
    if (r.chosen == r.rejected) return "chosen equals rejected (nothing to prefer)";
  } else if (is_chat_messages(c) && is_chat_messages(x) && (p.is_null() || is_chat_messages(p))) {
    r.conversational = true;
    r.chosen_messages = c;
    r.rejected_messages = x;
    r.prompt_messages = p.is_null() ? ojson::array() : p;
    if (c == x) return "chosen equals rejected (nothing to prefer)";
  } else {
    return "\"chosen\"/\"rejected\" (and \"prompt\") must all be strings or all lists of {role, "
           "content}";
  }
  if (j.contains("margin") && !j["margin"].is_null()) {
    if (!j["margin"].is_number()) return "\"margin\" must be a number";
    r.margin = j["margin"].get<double>();
  }
  return "";
}

PreferenceData read_preference_records(const std::string& path, bool strict) {
  LMF_CHECK(path.size() < 3 || path.compare(path.size() - 3, 3, ".gz") != 0, ValueError,
            "{}: compressed; decompress it first (gunzip -k {})", path, path);
  return read_usable_records<PreferenceData>(path, strict, "preference pair",
                                             parse_preference_record);
}

// ---- objective ----------------------------------------------------------------------------------

RewardObjective::RewardObjective(std::unique_ptr<models::DecoderModel> model,
                                 std::vector<RewardExample> train, std::vector<RewardExample> eval,
                                 int64_t pad_id, std::string tokenizer_dir,
                                 std::optional<double> center_rewards_coefficient,
                                 int64_t eval_batch_size)
    : model_(std::move(model)),
      train_(std::move(train)),
      eval_(std::move(eval)),
      pad_id_(pad_id),
      tokenizer_dir_(std::move(tokenizer_dir)),
      center_(center_rewards_coefficient),
      eval_batch_size_(std::max<int64_t>(1, eval_batch_size)) {
  LMF_CHECK(!train_.empty(), ValueError, "reward modelling: no training pairs");
}

RewardObjective::~RewardObjective() = default;

int64_t RewardObjective::example_length(int64_t i) const {
  const RewardExample& e = train_.at(i);
  return static_cast<int64_t>(e.chosen.size() + e.rejected.size());
}

NamedTensors RewardObjective::parameters() const {
  NamedTensors out;
  for (auto& [name, t] : model_->named_parameters())
    if (t.requires_grad()) out.emplace_back(name, t);
  return out;
}

void RewardObjective::set_training(bool on) {
  // TRL's disable_dropout (on by default for this trainer): training runs without dropout.
  model_->train(on && !disable_dropout);
}

RewardObjective::Scores RewardObjective::score(const std::vector<RewardExample>& examples,
                                               std::span<const int64_t> indices) const {
  const int64_t B = static_cast<int64_t>(indices.size());
  LMF_CHECK(B > 0, ValueError, "an empty batch");
  int64_t T = 0;
  for (int64_t i : indices)
    T = std::max<int64_t>(T,
                          std::max(examples.at(i).chosen.size(), examples.at(i).rejected.size()));
  // DataCollatorForPreference: chosen rows, then rejected rows, right-padded.
  std::vector<int64_t> ids(2 * B * T, pad_id_), mask(2 * B * T, 0), margins(B, 0);
  Scores s;
  bool any_margin = false;
  for (int64_t r = 0; r < B; ++r) {
    const RewardExample& e = examples[indices[r]];
    for (int side = 0; side < 2; ++side) {
      const auto& v = side == 0 ? e.chosen : e.rejected;
      const int64_t row = side * B + r;
      for (size_t j = 0; j < v.size(); ++j) {
        ids[row * T + j] = v[j];
        mask[row * T + j] = 1;
      }
      s.tokens += static_cast<int64_t>(v.size());
    }
    any_margin = any_margin || e.margin.has_value();
  }
  models::DecoderInputs in;
  in.input_ids = Tensor::from_vector(ids, {2 * B, T});
  in.attention_mask = Tensor::from_vector(mask, {2 * B, T});
  const Tensor r = model_->forward(in).logits.reshape({2 * B});
  const Tensor rc = r.narrow(0, 0, B), rr = r.narrow(0, B, B);
  Tensor d = sub(rc, rr);
  if (any_margin) {
    std::vector<float> m(B, 0.0f);
    for (int64_t i = 0; i < B; ++i)
      m[i] = static_cast<float>(examples[indices[i]].margin.value_or(0));
    d = sub(d, Tensor::from_vector(m, {B}));
  }
  // -log sigmoid(d) = BCE with logits d and target 1, averaged over the pairs.
  s.loss = binary_cross_entropy_with_logits(d, Tensor::ones({B}));
  if (center_) s.loss = add(s.loss, mul(mean(mul(add(rc, rr), add(rc, rr))), *center_));
  const auto rv = r.detach().to_vector<float>();
  s.chosen.assign(rv.begin(), rv.begin() + B);
  s.rejected.assign(rv.begin() + B, rv.end());
  return s;
}

Objective::BatchLoss RewardObjective::loss(std::span<const int64_t> indices, Generator& rng) {
  (void)rng;
  const Scores s = score(train_, indices);
  BatchLoss out;
  out.loss = s.loss;
  out.tokens = s.tokens;
  double acc = 0, margin = 0;
  for (size_t i = 0; i < s.chosen.size(); ++i) {
    acc += s.chosen[i] > s.rejected[i];
    margin += s.chosen[i] - s.rejected[i];
  }
  out.parts["accuracy"] = acc / s.chosen.size();
  out.parts["margin"] = margin / s.chosen.size();
  return out;
}

Metrics RewardObjective::evaluate() {
  if (eval_.empty()) return {};
  NoGradGuard no_grad;
  set_training(false);
  double loss = 0, acc = 0, margin = 0, rc = 0, rr = 0;
  const int64_t n = static_cast<int64_t>(eval_.size());
  std::vector<int64_t> idx;
  for (int64_t start = 0; start < n; start += eval_batch_size_) {
    idx.clear();
    for (int64_t i = start; i < std::min(n, start + eval_batch_size_); ++i) idx.push_back(i);
    const Scores s = score(eval_, idx);
    loss += s.loss.item() * static_cast<double>(idx.size());
    for (size_t i = 0; i < s.chosen.size(); ++i) {
      acc += s.chosen[i] > s.rejected[i];
      margin += s.chosen[i] - s.rejected[i];
      rc += s.chosen[i];
      rr += s.rejected[i];
    }
  }
  const double N = static_cast<double>(n);
  return {{"eval_loss", loss / N},
          {"eval_accuracy", acc / N},
          {"eval_margin", margin / N},
          {"eval_reward_chosen", rc / N},
          {"eval_reward_rejected", rr / N}};
}

void RewardObjective::save_pretrained(const std::string& dir) const {
  models::save_pretrained(*model_, dir);
  copy_existing_files(
      tokenizer_dir_, dir,
      {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
       "merges.txt", "tokenizer.model", "chat_template.jinja", "added_tokens.json"});
  for (const auto& [name, content] : extra_files)
    models::write_file_atomically((fs::path(dir) / name).string(), content);
}

void RewardObjective::load_pretrained(const std::string& dir) {
  load_saved_weights(*model_, dir);
}

// ---- factory ------------------------------------------------------------------------------------

std::string sequence_classification_architecture(const std::string& config_text,
                                                 const std::string& origin) {
  const std::string t = config_model_type(config_text, origin);
  if (t == "gpt2") return "GPT2ForSequenceClassification";
  if (t == "llama") return "LlamaForSequenceClassification";
  if (t == "qwen2") return "Qwen2ForSequenceClassification";
  if (t == "mistral") return "MistralForSequenceClassification";
  fail<ValueError>(
      "{}: model_type '{}' is not a decoder lmforge trains as a reward model; supported: gpt2, "
      "llama, qwen2, mistral",
      origin, t);
}

std::unique_ptr<models::DecoderModel> load_score_model(const std::string& dir,
                                                       const std::string& tok_dir, uint64_t seed,
                                                       bool* new_head) {
  const tok::Tokenizer tokenizer = load_training_tokenizer(tok_dir);
  const TokenizerSpecials specials = read_tokenizer_specials(tok_dir);
  const ojson& special = specials.tokens;
  auto special_id = [&](const char* key) -> int64_t {
    if (!special.contains(key) || !special[key].is_string()) return -1;
    const auto id = tokenizer.token_to_id(special[key].get<std::string>());
    return id ? static_cast<int64_t>(*id) : -1;
  };
  // The folder as a one-output sequence classifier (a new, seeded score head when the folder is
  // a causal LM), with a pad id for pooling (the tokenizer's pad, else EOS, as TRL).
  const std::string config_file = (fs::path(dir) / "config.json").string();
  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(read_file_bytes(config_file));
  const std::string arch = sequence_classification_architecture(cfg.dump(), config_file);
  cfg["id2label"] = {{"0", "LABEL_0"}};
  cfg["label2id"] = {{"LABEL_0", 0}};
  if (!cfg.contains("pad_token_id") || cfg["pad_token_id"].is_null()) {
    int64_t pad = special_id("pad_token");
    if (pad < 0) pad = special_id("eos_token");
    LMF_CHECK(pad >= 0, ValueError,
              "{}: no pad_token_id, and the tokenizer has neither a pad nor an EOS token to pool "
              "the last token of padded rows with",
              config_file);
    cfg["pad_token_id"] = pad;
  }
  models::LoadOptions lo;
  lo.architecture = arch;
  models::LoadReport lr;
  const Generator::State outer = default_generator().state();
  manual_seed(seed);
  std::unique_ptr<models::PretrainedModel> pm =
      models::load_pretrained(cfg.dump(2), io::load_checkpoint_dir(dir), lo, &lr, dir);
  default_generator().set_state(outer);
  if (new_head) *new_head = !lr.missing_keys.empty();
  auto* dm = dynamic_cast<models::DecoderModel*>(pm.get());
  LMF_CHECK(dm != nullptr, ValueError, "{} is not a decoder", dir);
  pm.release();
  std::unique_ptr<models::DecoderModel> model(dm);
  for (const std::string& k : lr.missing_keys)
    LMF_CHECK(k.rfind("score.", 0) == 0, ValueError,
              "{}: the checkpoint lacks '{}' (only the score head may be new)", dir, k);
  return model;
}

std::unique_ptr<RewardObjective> make_reward_objective(const RewardOptions& o,
                                                       RewardReport* report) {
  LMF_CHECK(!o.model_dir.empty(), ValueError, "reward needs --model DIR (a decoder folder)");
  LMF_CHECK(!o.train_file.empty(), ValueError, "reward needs --train FILE");
  LMF_CHECK(o.eval_file.empty() || o.eval_split == 0, ValueError,
            "give --eval FILE or --eval-split, not both");
  LMF_CHECK(o.max_length >= 2, ValueError, "--max-length must be at least 2");
  RewardReport rep;
  const std::string tok_dir = o.tokenizer_dir.empty() ? o.model_dir : o.tokenizer_dir;
  const tok::Tokenizer tokenizer = load_training_tokenizer(tok_dir);
  const TokenizerSpecials specials = read_tokenizer_specials(tok_dir);
  const ojson& special = specials.tokens;
  const std::string& eos = specials.eos;
  std::unique_ptr<models::DecoderModel> model =
      load_score_model(o.model_dir, tok_dir, o.seed, &rep.new_head);

  const std::optional<std::string> chat_template =
      task_chat_template(tok_dir, o.chat_template_file);
  auto tokenize = [&](const PreferenceRecord& r, std::vector<int32_t>& out_c,
                      std::vector<int32_t>& out_r) {
    if (r.conversational) {
      LMF_CHECK(chat_template.has_value(), ValueError,
                "{}: conversational pairs need a chat template; give --chat-template FILE",
                r.where);
      for (int side = 0; side < 2; ++side) {
        ojson m = r.prompt_messages;
        for (const auto& x : side == 0 ? r.chosen_messages : r.rejected_messages) m.push_back(x);
        (side == 0 ? out_c : out_r) = encode_ids(
            tokenizer, tok::apply_chat_template(*chat_template, m, false, special), false);
      }
      return;
    }
    for (int side = 0; side < 2; ++side) {
      (side == 0 ? out_c : out_r) = encode_ids(
          tokenizer, with_eos(r.prompt + (side == 0 ? r.chosen : r.rejected), eos), true);
    }
  };

  auto split = read_train_eval<PreferenceData>(
      [&](const std::string& f) { return read_preference_records(f, o.strict_data); }, o.train_file,
      o.eval_file, o.eval_split, o.seed, o.max_train_examples, o.max_eval_examples);
  rep.skipped = std::move(split.skipped);
  std::vector<PreferenceRecord>& train_records = split.train;
  std::vector<PreferenceRecord>& eval_records = split.eval;
  const int64_t vocab = model->spec().vocab_size;
  auto examples_of = [&](const std::vector<PreferenceRecord>& records) {
    std::vector<RewardExample> out;
    for (const PreferenceRecord& r : records) {
      RewardExample e;
      tokenize(r, e.chosen, e.rejected);
      e.margin = r.margin;
      if (static_cast<int64_t>(e.chosen.size()) > o.max_length ||
          static_cast<int64_t>(e.rejected.size()) > o.max_length) {
        ++rep.filtered;  // RewardTrainer drops such pairs
        continue;
      }
      for (const auto* side : {&e.chosen, &e.rejected}) check_ids_in_vocab(*side, vocab, r.where);
      out.push_back(std::move(e));
    }
    return out;
  };
  std::vector<RewardExample> train_ex = examples_of(train_records);
  std::vector<RewardExample> eval_ex = examples_of(eval_records);
  LMF_CHECK(!train_ex.empty(), ValueError,
            "{}: no training pair left (malformed, or longer than --max-length {})", o.train_file,
            o.max_length);
  rep.train_examples = static_cast<int64_t>(train_ex.size());
  rep.eval_examples = static_cast<int64_t>(eval_ex.size());
  const int64_t pad = model->spec().pad_token_id;
  auto obj = std::make_unique<RewardObjective>(std::move(model), std::move(train_ex),
                                               std::move(eval_ex), pad, tok_dir,
                                               o.center_rewards_coefficient, o.eval_batch_size);
  if (!o.chat_template_file.empty())
    obj->extra_files.emplace_back("chat_template.jinja", *chat_template);
  if (report) *report = std::move(rep);
  return obj;
}

}  // namespace lmf::train
