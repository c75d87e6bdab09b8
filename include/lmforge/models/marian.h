// The Marian family (MarianModel, MarianMTModel): the original encoder-decoder Transformer as
// modeling_marian.py builds it: sinusoidal positions (sin half then cos half), embeddings scaled by
// sqrt(d_model) when scale_embedding, post-norm layers, cross-attention, a tied or untied LM head
// plus final_logits_bias. Parameter names are HF's state-dict keys.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/encoder_decoder.h"
#include "lmforge/models/seq2seq_layers.h"
#include "lmforge/nn/attention.h"
#include "lmforge/nn/layers.h"

namespace lmf::models {

// Field names and defaults as transformers' MarianConfig (5.25).
struct MarianConfig {
  int64_t vocab_size = 58101;
  std::optional<int64_t> decoder_vocab_size;  // none: vocab_size
  int64_t max_position_embeddings = 1024;
  int64_t encoder_layers = 12;
  int64_t encoder_ffn_dim = 4096;
  int64_t encoder_attention_heads = 16;
  int64_t decoder_layers = 12;
  int64_t decoder_ffn_dim = 4096;
  int64_t decoder_attention_heads = 16;
  double encoder_layerdrop = 0.0;
  double decoder_layerdrop = 0.0;
  bool use_cache = true;
  bool is_encoder_decoder = true;
  std::string activation_function = "gelu";
  int64_t d_model = 1024;
  double dropout = 0.1;
  double attention_dropout = 0.0;
  double activation_dropout = 0.0;
  double init_std = 0.02;
  int64_t decoder_start_token_id = 58100;
  bool scale_embedding = false;
  std::optional<int64_t> pad_token_id = 58100;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> forced_eos_token_ids = {0};  // "forced_eos_token_id": int, list or null
  bool forced_eos_is_list = false;
  bool share_encoder_decoder_embeddings = true;
  bool is_decoder = false;
  bool tie_word_embeddings = true;
  std::vector<std::string> architectures;
  int64_t num_labels = 2;
  std::map<int64_t, std::string> id2label;
  std::map<std::string, int64_t> label2id;
  std::string problem_type;
  std::vector<int64_t> eos_token_ids = {0};
  bool eos_is_list = false;
  bool eos_set = true;
  std::map<std::string, std::string> extra;  // other keys, raw JSON, written back

  int64_t target_vocab_size() const { return decoder_vocab_size.value_or(vocab_size); }
  static MarianConfig from_json(const std::string& text, const std::string& origin = "config.json");
  std::string to_json(const std::string& architecture) const;
};

// The frozen sinusoidal table [max_position_embeddings, d_model] of
// MarianSinusoidalPositionalEmbedding, not interleaved: column i < ceil(d/2) is
// sin(pos / 10000^(2i/d)), column ceil(d/2) + i is cos(pos / 10000^(2i/d)) (computed in double,
// stored f32). A buffer, never trained: transformers 5.25 saves it for MarianModel (persistent
// here) but not for MarianMTModel (non-persistent; old checkpoints' copies are dropped on load).
class MarianSinusoidalPositions : public nn::Module {
 public:
  MarianSinusoidalPositions(int64_t num_positions, int64_t dim, bool persistent);
  // Rows [start, start + n) as [n, dim].
  Tensor forward(int64_t start, int64_t n) const;
  int64_t num_positions() const { return num_; }

 private:
  int64_t num_;
  Tensor* table_;
};

// MarianEncoder / MarianDecoder: embed_tokens (shared or own), embed_positions, layers (the
// post-norm Seq2SeqLayer BART shares).
class MarianStack : public nn::Module {
 public:
  // persistent_positions: the sinusoidal table is a state-dict key (MarianModel).
  MarianStack(const MarianConfig& c, bool decoder, bool persistent_positions);
  nn::Embedding& embed_tokens() { return *embed_tokens_; }
  const nn::ModuleList& layers() const { return *layers_; }
  // Token embeddings * embed_scale + positions [start, start + T), dropout.
  Tensor embed(const Tensor& ids, int64_t start) const;

 private:
  double embed_scale_, dropout_;
  std::shared_ptr<nn::Embedding> embed_tokens_;
  std::shared_ptr<MarianSinusoidalPositions> embed_positions_;
  std::shared_ptr<nn::ModuleList> layers_;
};

// MarianModel: shared (when share_encoder_decoder_embeddings), encoder, decoder; keys without
// the "model." prefix. MarianMTModel: model + final_logits_bias [1, V] (a buffer) + lm_head.
class MarianModel : public EncoderDecoderModel {
 public:
  // with_lm_head: MarianMTModel's keys and head; false: MarianModel.
  MarianModel(const MarianConfig& c, bool with_lm_head);
  const MarianConfig& config() const { return cfg_; }
  std::string model_type() const override { return "marian"; }
  std::string architecture() const override { return lm_head_ ? "MarianMTModel" : "MarianModel"; }
  std::string config_json() const override { return cfg_.to_json(architecture()); }
  LoadSpec load_spec() const override;
  // The generic load, except that absent sinusoidal tables are not missing (they are computed),
  // as transformers' _keys_to_ignore_on_load_missing.
  LoadReport load(const nn::StateDict& state, const LoadOptions& opt = {},
                  const std::string& origin = "checkpoint") override;
  void init_missing(const std::vector<std::string>& keys) override;
  EncoderOutput encode_for_decoder(const Tensor& input_ids,
                                   const Tensor& attention_mask = Tensor()) const override;
  EncoderOutput encode(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                       bool output_attentions = false) const override;
  Seq2SeqOutput forward(const Seq2SeqInputs& in, const Seq2SeqLabels& labels = {}) const override;
  Seq2SeqSpec spec() const override;
  bool is_seq2seq_lm() const override { return lm_head_ != nullptr; }
  void tie_weights();  // re-shares the tied tensors as transformers' tie_weights

 private:
  std::string key(const std::string& k) const { return lm_head_ ? "model." + k : k; }

  MarianConfig cfg_;
  nn::Module* base_;  // "model" for MarianMTModel, this for MarianModel
  std::shared_ptr<nn::Embedding> shared_;
  std::shared_ptr<MarianStack> encoder_, decoder_;
  std::shared_ptr<nn::Linear> lm_head_;
  Tensor* final_logits_bias_ = nullptr;
};

// Builds MarianModel or MarianMTModel; ValueError naming the supported ones.
std::unique_ptr<EncoderDecoderModel> make_marian_model(const MarianConfig& c,
                                                       const std::string& arch);
void register_marian_family();

}  // namespace lmf::models
