// ELECTRA replaced-token-detection pretraining (Clark et al. 2020): a small generator
// (ElectraForMaskedLM) fills MLM-masked tokens with samples from its softmax and a discriminator
// (ElectraForPreTraining) tells original from replaced tokens; the two share the embeddings and
// are trained together on loss = mlm_loss + 50 * rtd_loss.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lmforge/core/runtime.h"
#include "lmforge/models/bert.h"
#include "lmforge/train/trainer.h"

namespace lmf::tok {
class Tokenizer;
}

namespace lmf::train {

struct PretrainOptions;

// The ids masking needs: the padding and mask ids, and which ids are never chosen for masking.
struct ElectraTokens {
  int64_t pad = 0;
  int64_t mask = -1;
  int64_t vocab_size = 0;            // random replacements are drawn from [0, vocab_size)
  std::vector<int64_t> special_ids;  // never masked (pad is always excluded too)
  // [PAD]/<pad> and [MASK]/<mask> from the tokenizer (ValueError naming the missing one);
  // special_ids = the tokenizer's special ids.
  static ElectraTokens from_tokenizer(const tok::Tokenizer& t);
};

// What `lmforge pretrain --recipe electra` uses where the command line does not say otherwise
// (docs/TRAINING.md "ELECTRA that learns", issue 18). The masking is ELECTRA's reference code's
// (google-research/electra pretrain_helpers.mask: 85 % [MASK], 15 % unchanged, no random ids);
// the learning rate, warm-up and sampling temperature are the study's.
struct ElectraRecipeDefaults {
  static constexpr double learning_rate = 2e-4;
  static constexpr double warmup_ratio = 0.1;
  static constexpr double mask_replace_prob = 0.85;
  static constexpr double random_replace_prob = 0.0;
  static constexpr double temperature = 2.0;
};

struct ElectraOptions {
  double mlm_probability = 0.15;
  double mask_replace_prob = ElectraRecipeDefaults::mask_replace_prob;      // chosen -> [MASK]
  double random_replace_prob = ElectraRecipeDefaults::random_replace_prob;  // chosen -> random id;
                                                                            // the rest unchanged
  double rtd_weight = 50.0;          // the paper's lambda
  // The generator's samples come from softmax(logits / temperature) (ELECTRA's reference code
  // `temperature`, default 1); > 1 flattens them (more implausible replacements).
  double temperature = 1.0;
  uint64_t eval_seed = 1234;         // masking and sampling of evaluate() (the same every time)
  int64_t eval_batch_size = 16;
  std::string tokenizer_dir;  // when set, save_pretrained copies its tokenizer files
};

// One MLM-masked batch ([B, T] each): what the generator sees, and the truth.
struct ElectraBatch {
  Tensor original_ids;    // i64, padded with ElectraTokens::pad
  Tensor masked_ids;      // original_ids after masking
  Tensor mlm_labels;      // i64: original id at chosen positions, -100 elsewhere
  Tensor attention_mask;  // i64: 1 token, 0 padding
  Tensor token_type_ids;  // i64 zeros (single-segment instances)
};

class ElectraObjective : public Objective {
 public:
  // generator: ElectraForMaskedLM, discriminator: ElectraForPreTraining, of equal vocab_size,
  // embedding width (embedding_size), max_position_embeddings and type_vocab_size (ValueError
  // naming the field otherwise). The generator's embeddings are replaced by the discriminator's
  // (shared tensors). Instances are token-id sequences with their special tokens ([CLS] ...
  // [SEP]); ValueError for an empty one, one longer than max_position_embeddings, or an id
  // outside the vocabulary.
  ElectraObjective(std::unique_ptr<models::EncoderModel> generator,
                   std::unique_ptr<models::EncoderModel> discriminator,
                   std::vector<std::vector<int32_t>> train_instances,
                   std::vector<std::vector<int32_t>> eval_instances, ElectraTokens tokens,
                   ElectraOptions options = {});
  // From scratch: both models from their configs (architectures are set here), initialised as
  // HF does from `init_seed` (the default generator's state is restored afterwards).
  static std::unique_ptr<ElectraObjective> from_configs(
      const models::BertConfig& generator, const models::BertConfig& discriminator,
      std::vector<std::vector<int32_t>> train_instances,
      std::vector<std::vector<int32_t>> eval_instances, ElectraTokens tokens,
      ElectraOptions options = {}, uint64_t init_seed = 42);
  // Continued from a folder written by save_pretrained (discriminator in dir, generator in
  // dir/generator).
  static std::unique_ptr<ElectraObjective> from_pretrained(
      const std::string& dir, std::vector<std::vector<int32_t>> train_instances,
      std::vector<std::vector<int32_t>> eval_instances, ElectraTokens tokens,
      ElectraOptions options = {});

  // "discriminator.<key>" then the generator's own "generator.<key>" (shared tensors once, under
  // the discriminator's name).
  NamedTensors parameters() const override;
  void set_training(bool on) override;
  int64_t num_examples() const override { return static_cast<int64_t>(train_.size()); }
  int64_t example_length(int64_t i) const override;
  // Pads the instances, masks them (rng), samples the generator's replacements (rng), returns
  // mlm_loss + rtd_weight * rtd_loss with parts {mlm_loss, rtd_loss, rtd_accuracy}.
  BatchLoss loss(std::span<const int64_t> indices, Generator& rng) override;
  // eval_loss, eval_mlm_loss, eval_rtd_loss, eval_rtd_accuracy, eval_rtd_auc over the held-out
  // instances (token-weighted means), masked and sampled from eval_seed.
  Metrics evaluate() override;
  // The discriminator (ElectraForPreTraining) to dir, the generator to dir/generator, and the
  // tokenizer files of options.tokenizer_dir into both.
  void save_pretrained(const std::string& dir) const override;
  // Copies the weights of such a folder into the existing tensors (sharing kept). IoError /
  // ValueError when a folder or key is missing.
  void load_pretrained(const std::string& dir) override;

  // The batch of these instances, padded and masked with `rng` (HF's collator: each non-special
  // token chosen with mlm_probability, then [MASK] / random / unchanged with mask_replace_prob and
  // random_replace_prob; at least one token per batch is chosen).
  ElectraBatch make_batch(std::span<const int64_t> indices, Generator& rng,
                          bool eval = false) const;
  // The loss of a given masked batch. `noise` [M, vocab] holds uniform [0, 1) numbers for the M
  // positions with mlm_labels != -100 in row-major order: the replacement at a position is
  // argmax(generator logits + g), g = -log(-log(u + 1e-9) + 1e-9) (Gumbel-max, no gradient).
  // `corrupted` (optional) receives the discriminator's input, `disc_labels` its 0/1 labels.
  BatchLoss loss_on(const ElectraBatch& batch, const Tensor& noise, Tensor* corrupted = nullptr,
                    Tensor* disc_labels = nullptr);

  models::EncoderModel& generator() { return *gen_; }
  models::EncoderModel& discriminator() { return *disc_; }
  const ElectraTokens& tokens() const { return tokens_; }

 private:
  struct Pieces;  // losses, logits and labels of one batch
  Pieces run(const ElectraBatch& batch, const Tensor& noise, bool with_grad);
  void share_embeddings();

  std::unique_ptr<models::EncoderModel> gen_, disc_;
  std::vector<std::vector<int32_t>> train_, eval_;
  ElectraTokens tokens_;
  ElectraOptions opt_;
  std::vector<uint8_t> never_mask_;  // by id
};

// `lmforge pretrain --recipe electra`: instances packed like RoBERTa's full sentences ([CLS] ...
// [SEP]) from o's corpus and tokenizer, masked as o says (mask_replace_prob / random_replace_prob
// < 0: ElectraRecipeDefaults'), generator samples at `temperature`, a discriminator from o.model_dir (continued) or
// o.config_path (an ELECTRA config, from scratch) and, from scratch, a generator
// `generator_divisor` times narrower (hidden size, heads, FFN) sharing its embeddings. ValueError
// for another family's config or a divisor that leaves the generator's hidden size not divisible by
// its heads.
std::unique_ptr<Objective> make_electra_objective(const PretrainOptions& o,
                                                  int64_t generator_divisor = 4,
                                                  double rtd_weight = 50.0,
                                                  double temperature = 1.0);

}  // namespace lmf::train
