// The GPT-2 family, top to bottom like modeling_gpt2.py: config, attention, block, model, heads,
// registration.
#include "lmforge/models/gpt2.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "lmforge/models/registry.h"
#include "models/decoder_util.h"

namespace lmf::models {

using nlohmann::json;

// ---- config -------------------------------------------------------------------------------------

namespace {
const std::vector<std::string> kGpt2Fields = {"model_type",
                                              "vocab_size",
                                              "n_positions",
                                              "n_embd",
                                              "n_layer",
                                              "n_head",
                                              "n_inner",
                                              "activation_function",
                                              "resid_pdrop",
                                              "embd_pdrop",
                                              "attn_pdrop",
                                              "layer_norm_epsilon",
                                              "initializer_range",
                                              "summary_type",
                                              "summary_use_proj",
                                              "summary_activation",
                                              "summary_proj_to_labels",
                                              "summary_first_dropout",
                                              "scale_attn_weights",
                                              "use_cache",
                                              "add_cross_attention",
                                              "scale_attn_by_inverse_layer_idx",
                                              "reorder_and_upcast_attn",
                                              "bos_token_id",
                                              "pad_token_id",
                                              "tie_word_embeddings"};
}  // namespace

GPT2Config GPT2Config::from_json(const std::string& text, const std::string& origin) {
  json j = detail::parse_config_object(text, origin);
  detail::ConfigReader r{j, origin};
  std::string mt = "gpt2";
  r.get("model_type", mt);
  LMF_CHECK(mt == "gpt2", ValueError, "{}: model_type '{}' is not gpt2", origin, mt);
  GPT2Config c;
  r.get("vocab_size", c.vocab_size);
  r.get("n_positions", c.n_positions);
  r.get("n_embd", c.n_embd);
  r.get("n_layer", c.n_layer);
  r.get("n_head", c.n_head);
  r.get("n_inner", c.n_inner);
  LMF_CHECK(c.vocab_size > 0 && c.n_positions > 0 && c.n_embd > 0 && c.n_layer > 0 &&
                c.n_head > 0 && c.n_embd % c.n_head == 0,
            ValueError,
            "{}: vocab_size, n_positions, n_embd, n_layer, n_head must be positive and n_embd a "
            "multiple of n_head (got n_embd {}, n_head {})",
            origin, c.n_embd, c.n_head);
  r.get_activation("activation_function", c.activation_function);
  r.get("resid_pdrop", c.resid_pdrop);
  r.get("embd_pdrop", c.embd_pdrop);
  r.get("attn_pdrop", c.attn_pdrop);
  r.get("layer_norm_epsilon", c.layer_norm_epsilon);
  r.get("initializer_range", c.initializer_range);
  r.get("summary_type", c.summary_type);
  r.get("summary_use_proj", c.summary_use_proj);
  if (auto it = j.find("summary_activation"); it != j.end())
    c.summary_activation =
        it->is_string() ? std::optional<std::string>(it->get<std::string>()) : std::nullopt;
  r.get("summary_proj_to_labels", c.summary_proj_to_labels);
  r.get("summary_first_dropout", c.summary_first_dropout);
  r.get("scale_attn_weights", c.scale_attn_weights);
  r.get("use_cache", c.use_cache);
  r.get("add_cross_attention", c.add_cross_attention);
  LMF_CHECK(!c.add_cross_attention, ValueError,
            "{}: add_cross_attention = true (GPT-2 as an encoder-decoder's decoder) is not "
            "supported",
            origin);
  r.get("scale_attn_by_inverse_layer_idx", c.scale_attn_by_inverse_layer_idx);
  r.get("reorder_and_upcast_attn", c.reorder_and_upcast_attn);
  r.get("bos_token_id", c.bos_token_id);
  r.get("pad_token_id", c.pad_token_id);
  r.get("tie_word_embeddings", c.tie_word_embeddings);
  if (const json* x = r.find("classifier_dropout")) {
    if (!x->is_number()) r.bad("classifier_dropout", "a number or null");
    c.classifier_dropout = x->get<double>();
  }
  detail::read_common_into(j, origin, kGpt2Fields, c);
  return c;
}

std::string GPT2Config::to_json(const std::string& architecture) const {
  json j;
  j["model_type"] = "gpt2";
  j["vocab_size"] = vocab_size;
  j["n_positions"] = n_positions;
  j["n_embd"] = n_embd;
  j["n_layer"] = n_layer;
  j["n_head"] = n_head;
  j["n_inner"] = detail::optional_json(n_inner);
  j["activation_function"] = activation_function;
  j["resid_pdrop"] = resid_pdrop;
  j["embd_pdrop"] = embd_pdrop;
  j["attn_pdrop"] = attn_pdrop;
  j["layer_norm_epsilon"] = layer_norm_epsilon;
  j["initializer_range"] = initializer_range;
  j["summary_type"] = summary_type;
  j["summary_use_proj"] = summary_use_proj;
  j["summary_activation"] = summary_activation ? json(*summary_activation) : json(nullptr);
  j["summary_proj_to_labels"] = summary_proj_to_labels;
  j["summary_first_dropout"] = summary_first_dropout;
  j["scale_attn_weights"] = scale_attn_weights;
  j["use_cache"] = use_cache;
  j["add_cross_attention"] = add_cross_attention;
  j["scale_attn_by_inverse_layer_idx"] = scale_attn_by_inverse_layer_idx;
  j["reorder_and_upcast_attn"] = reorder_and_upcast_attn;
  j["bos_token_id"] = detail::optional_json(bos_token_id);
  j["pad_token_id"] = detail::optional_json(pad_token_id);
  j["tie_word_embeddings"] = tie_word_embeddings;
  return detail::finish_config_json_of(std::move(j), *this, architecture);
}

// ---- attention and block ------------------------------------------------------------------------

GPT2Attention::GPT2Attention(const GPT2Config& c, int64_t layer_idx)
    : n_head_(c.n_head), head_dim_(c.head_dim()), attn_pdrop_(c.attn_pdrop) {
  scale_ = c.scale_attn_weights ? 1.0 / std::sqrt(static_cast<double>(head_dim_)) : 1.0;
  if (c.scale_attn_by_inverse_layer_idx) scale_ /= static_cast<double>(layer_idx + 1);
  c_attn_ = register_module("c_attn", std::make_shared<nn::Conv1D>(c.n_embd, 3 * c.n_embd));
  c_proj_ = register_module("c_proj", std::make_shared<nn::Conv1D>(c.n_embd, c.n_embd));
  resid_dropout_ = register_module("resid_dropout", std::make_shared<nn::Dropout>(c.resid_pdrop));
}

Tensor GPT2Attention::forward(const Tensor& x, const AttentionOptions& options,
                              nn::KVCache* cache) const {
  const int64_t B = x.size(0), T = x.size(1), E = n_head_ * head_dim_;
  const Tensor qkv = c_attn_->forward(x);  // [B, T, 3E]
  auto heads = [&](int64_t i) {
    return qkv.narrow(2, i * E, E).reshape({B, T, n_head_, head_dim_}).permute({0, 2, 1, 3});
  };
  AttentionOptions opt = options;
  opt.scale = scale_;
  opt.dropout_p = attn_pdrop_;
  opt.training = is_training();
  const AttentionResult r =
      cache ? nn::cached_self_attention(heads(0), heads(1), heads(2), *cache, opt)
            : scaled_dot_product_attention(heads(0), heads(1), heads(2), opt);
  const Tensor merged = r.out.permute({0, 2, 1, 3}).reshape({B, T, E});
  return resid_dropout_->forward(c_proj_->forward(merged));
}

GPT2Block::GPT2Block(const GPT2Config& c, int64_t layer_idx)
    : act_(parse_activation(c.activation_function)) {
  ln_1_ = register_module("ln_1", std::make_shared<nn::LayerNorm>(c.n_embd, c.layer_norm_epsilon));
  attn_ = register_module("attn", std::make_shared<GPT2Attention>(c, layer_idx));
  ln_2_ = register_module("ln_2", std::make_shared<nn::LayerNorm>(c.n_embd, c.layer_norm_epsilon));
  auto mlp = register_module("mlp", std::make_shared<nn::Module>());
  c_fc_ = mlp->register_module("c_fc", std::make_shared<nn::Conv1D>(c.n_embd, c.inner_dim()));
  mlp_c_proj_ =
      mlp->register_module("c_proj", std::make_shared<nn::Conv1D>(c.inner_dim(), c.n_embd));
  mlp_dropout_ = mlp->register_module("dropout", std::make_shared<nn::Dropout>(c.resid_pdrop));
}

Tensor GPT2Block::forward(const Tensor& x, const AttentionOptions& options,
                          nn::KVCache* cache) const {
  const Tensor h = x + attn_->forward(ln_1_->forward(x), options, cache);
  return h + mlp_dropout_->forward(mlp_c_proj_->forward(c_fc_->forward(ln_2_->forward(h), act_)));
}

// ---- model --------------------------------------------------------------------------------------

GPT2Model::GPT2Model(const GPT2Config& c) : cfg_(c) {
  wte_ = register_module("wte", std::make_shared<nn::Embedding>(c.vocab_size, c.n_embd));
  wpe_ = register_module("wpe", std::make_shared<nn::Embedding>(c.n_positions, c.n_embd));
  drop_ = register_module("drop", std::make_shared<nn::Dropout>(c.embd_pdrop));
  h_ = register_module("h", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < c.n_layer; ++i) h_->push_back(std::make_shared<GPT2Block>(c, i));
  ln_f_ = register_module("ln_f", std::make_shared<nn::LayerNorm>(c.n_embd, c.layer_norm_epsilon));
}

LoadSpec GPT2Model::load_spec() const {
  LoadSpec s;
  s.base_prefix = "transformer";
  s.keys_have_prefix = false;
  // Causal-mask buffers of old checkpoints (persistent before transformers 4.x), never weights.
  s.ignored_suffixes = {".attn.bias", ".attn.masked_bias"};
  return s;
}

DecoderSpec GPT2Model::spec() const {
  DecoderSpec s;
  s.vocab_size = cfg_.vocab_size;
  s.num_layers = cfg_.n_layer;
  s.n_kv_heads = cfg_.n_head;
  s.head_dim = cfg_.head_dim();
  s.max_positions = cfg_.n_positions;
  s.trained_positions = cfg_.n_positions;
  s.eos_token_ids = cfg_.eos_token_ids;
  s.bos_token_id = cfg_.bos_token_id.value_or(-1);
  s.pad_token_id = cfg_.pad_token_id.value_or(-1);
  return s;
}

DecoderOutput GPT2Model::forward(const DecoderInputs& in, const DecoderLabels&) const {
  const int64_t past = detail::check_decoder_inputs("GPT2Model", in);
  const int64_t T = in.input_ids.size(1);
  LMF_CHECK(past + T <= cfg_.n_positions, ValueError,
            "GPT2Model: {} positions ({} cached + {} new) exceed the model's context of "
            "n_positions = {} (shorten the prompt or the generation)",
            past + T, past, T, cfg_.n_positions);
  const Tensor pos = in.position_ids.defined()
                         ? in.position_ids
                         : detail::default_position_ids(in.attention_mask, past, T);
  for (int64_t p : pos.to_vector<int64_t>())
    LMF_CHECK(p >= 0 && p < cfg_.n_positions, ValueError,
              "GPT2Model: position id {} outside the learned positions [0, {})", p,
              cfg_.n_positions);
  const AttentionOptions opt =
      detail::decoder_attention_options(detail::key_padding_from(in.attention_mask), past, T, 0);
  DecoderOutput out;
  Tensor h = drop_->forward(wte_->forward(in.input_ids) + wpe_->forward(pos));
  if (in.output_hidden_states) out.hidden_states.push_back(h);
  for (size_t i = 0; i < h_->size(); ++i) {
    nn::KVCache layer_cache;
    if (in.cache) layer_cache = in.cache->layer(static_cast<int64_t>(i));
    h = h_->at<GPT2Block>(i)->forward(h, opt, in.cache ? &layer_cache : nullptr);
    if (in.output_hidden_states) out.hidden_states.push_back(h);
  }
  if (in.cache) in.cache->advance(T);
  out.last_hidden_state = ln_f_->forward(h);
  // transformers 5.x replaces the last layer's entry by the normed last hidden state.
  if (in.output_hidden_states) out.hidden_states.back() = out.last_hidden_state;
  return out;
}

// ---- heads --------------------------------------------------------------------------------------

GPT2HeadModel::GPT2HeadModel(const GPT2Config& c, GPT2Head head) : head_(head) {
  transformer_ = register_module("transformer", std::make_shared<GPT2Model>(c));
  switch (head) {
    case GPT2Head::lm:
      out_ =
          register_module("lm_head", std::make_shared<nn::Linear>(c.n_embd, c.vocab_size, false));
      tie_weights();
      break;
    case GPT2Head::sequence_classification:
      out_ = register_module("score", std::make_shared<nn::Linear>(c.n_embd, c.num_labels, false));
      break;
    case GPT2Head::token_classification:
      // classifier_dropout, else hidden_dropout (not a GPT-2 field), else 0.1, as HF.
      dropout_ = register_module("dropout",
                                 std::make_shared<nn::Dropout>(c.classifier_dropout.value_or(0.1)));
      out_ = register_module("classifier", std::make_shared<nn::Linear>(c.n_embd, c.num_labels));
      break;
  }
}

void GPT2HeadModel::tie_weights() {
  if (head_ == GPT2Head::lm && config().tie_word_embeddings)
    out_->weight() = transformer_->wte().weight();
}

std::string GPT2HeadModel::architecture() const {
  switch (head_) {
    case GPT2Head::lm:
      return "GPT2LMHeadModel";
    case GPT2Head::sequence_classification:
      return "GPT2ForSequenceClassification";
    case GPT2Head::token_classification:
      return "GPT2ForTokenClassification";
  }
  return "GPT2LMHeadModel";
}

LoadSpec GPT2HeadModel::load_spec() const {
  LoadSpec s = transformer_->load_spec();
  s.keys_have_prefix = true;
  if (head_ == GPT2Head::lm && config().tie_word_embeddings)
    s.tied = {{"lm_head.weight", "transformer.wte.weight"}};
  return s;
}

DecoderOutput GPT2HeadModel::forward(const DecoderInputs& in, const DecoderLabels& labels) const {
  DecoderOutput out = transformer_->forward(in);
  const Tensor& h = out.last_hidden_state;
  const GPT2Config& c = config();
  switch (head_) {
    case GPT2Head::lm: {
      const int64_t keep = in.logits_to_keep;
      out.logits =
          out_->forward(keep > 0 && keep < h.size(1) ? h.narrow(1, h.size(1) - keep, keep) : h);
      if (labels.labels.defined()) {
        LMF_CHECK(keep == 0, ValueError,
                  "GPT2LMHeadModel: labels need the logits of every position (logits_to_keep = 0)");
        out.loss = detail::causal_lm_loss(out.logits, labels.labels);
      }
      break;
    }
    case GPT2Head::sequence_classification:
      if (in.score_every_position) {
        LMF_CHECK(!labels.labels.defined(), ValueError,
                  "{}: labels need the pooled logits (score_every_position off)", architecture());
        out.logits = out_->forward(h);
        break;
      }
      out.logits =
          detail::pool_last_token(out_->forward(h), in.input_ids, c.pad_token_id, architecture());
      if (labels.labels.defined())
        out.loss = detail::sequence_classification_loss(out.logits, labels.labels, c.num_labels,
                                                        c.problem_type);
      break;
    case GPT2Head::token_classification:
      out.logits = out_->forward(dropout_->forward(h));
      if (labels.labels.defined())
        out.loss = cross_entropy(out.logits.reshape({-1, c.num_labels}),
                                 labels.labels.reshape({-1}).to(DType::i64));
      break;
  }
  return out;
}

// GPT2PreTrainedModel._init_weights: the attention and MLP output projections (c_proj) drawn with
// std initializer_range / sqrt(2 n_layer) (GPT-2 paper's residual scaling).
void GPT2Model::init_missing(const std::vector<std::string>& keys) {
  detail::init_missing_decoder_weights(
      *this, keys, cfg_.initializer_range,
      cfg_.initializer_range / std::sqrt(2.0 * static_cast<double>(cfg_.n_layer)));
}
void GPT2HeadModel::init_missing(const std::vector<std::string>& keys) {
  const GPT2Config& c = config();
  detail::init_missing_decoder_weights(
      *this, keys, c.initializer_range,
      c.initializer_range / std::sqrt(2.0 * static_cast<double>(c.n_layer)));
}

// ---- registration -------------------------------------------------------------------------------

std::unique_ptr<DecoderModel> make_gpt2_model(const GPT2Config& c, const std::string& arch) {
  if (arch == "GPT2Model") return std::make_unique<GPT2Model>(c);
  if (arch == "GPT2LMHeadModel") return std::make_unique<GPT2HeadModel>(c, GPT2Head::lm);
  if (arch == "GPT2ForSequenceClassification")
    return std::make_unique<GPT2HeadModel>(c, GPT2Head::sequence_classification);
  if (arch == "GPT2ForTokenClassification")
    return std::make_unique<GPT2HeadModel>(c, GPT2Head::token_classification);
  fail<ValueError>(
      "architecture '{}' is not one lmforge implements for model_type 'gpt2'; "
      "supported: GPT2Model, GPT2LMHeadModel, GPT2ForSequenceClassification, "
      "GPT2ForTokenClassification",
      arch);
}

void register_gpt2_family() {
  FamilyRegistration reg;
  reg.model_types = {"gpt2"};
  reg.architectures = {"GPT2Model", "GPT2LMHeadModel", "GPT2ForSequenceClassification",
                       "GPT2ForTokenClassification"};
  reg.default_architecture = "GPT2Model";
  reg.create = [](const std::string& text, const std::string& arch,
                  const std::string& origin) -> std::unique_ptr<PretrainedModel> {
    const GPT2Config c = GPT2Config::from_json(text, origin);
    // No override: the checkpoint's class, else the base model.
    return make_gpt2_model(c, !arch.empty()              ? arch
                              : !c.architectures.empty() ? c.architectures[0]
                                                         : "GPT2Model");
  };
  register_family(std::move(reg));
}

}  // namespace lmf::models
