#include "lmforge/models/bert.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "lmforge/io/checkpoint.h"
#include "lmforge/io/json.h"
#include "lmforge/models/hf_loader.h"
#include "lmforge/models/registry.h"
#include "lmforge/nn/init.h"
#include "models/bert_json.h"

namespace lmf::models {

namespace {

using nlohmann::json;

// A named container with no parameters of its own ("attention", "cls.predictions", ...).
struct Container : nn::Module {};

bool is_integer(DType t) {
  return !is_floating(t) && t != DType::boolean;
}

}  // namespace

const char* family_name(EncoderFamily f) {
  switch (f) {
    case EncoderFamily::bert:
      return "bert";
    case EncoderFamily::roberta:
      return "roberta";
    case EncoderFamily::albert:
      return "albert";
    case EncoderFamily::electra:
      return "electra";
  }
  return "?";
}

Activation parse_activation(const std::string& name) {
  static const std::map<std::string, Activation> kActs = {
      {"gelu", Activation::gelu},           {"gelu_python", Activation::gelu},
      {"gelu_new", Activation::gelu_tanh},  {"gelu_pytorch_tanh", Activation::gelu_tanh},
      {"gelu_fast", Activation::gelu_tanh}, {"relu", Activation::relu},
      {"silu", Activation::silu},           {"swish", Activation::silu},
      {"tanh", Activation::tanh},           {"linear", Activation::none}};
  auto it = kActs.find(name);
  if (it != kActs.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [k, v] : kActs) names.push_back(k);
  fail<ValueError>("unsupported activation '{}'; supported: {}", name, fmt::join(names, ", "));
}

// ---- config -------------------------------------------------------------------------------------

BertConfig BertConfig::defaults(EncoderFamily f) {
  BertConfig c;
  c.family = f;
  switch (f) {
    case EncoderFamily::bert:
      break;
    case EncoderFamily::roberta:
      c.vocab_size = 50265;
      c.pad_token_id = 1;
      break;
    case EncoderFamily::albert:
      c.vocab_size = 30000;
      c.embedding_size = 128;
      c.hidden_size = 4096;
      c.num_attention_heads = 64;
      c.intermediate_size = 16384;
      c.hidden_act = Activation::gelu_tanh;
      c.hidden_act_name = "gelu_new";
      c.hidden_dropout_prob = 0.0;
      c.attention_probs_dropout_prob = 0.0;
      break;
    case EncoderFamily::electra:
      c.embedding_size = 128;
      c.hidden_size = 256;
      c.num_attention_heads = 4;
      c.intermediate_size = 1024;
      break;
  }
  return c;
}

namespace {

// Typed reads of config.json fields: absent or null keeps the default; a wrong type is a
// ValueError naming the file and the key.
struct JsonReader {
  const json& j;
  const std::string& origin;

  const json* find(const char* key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  [[noreturn]] void bad(const char* key, const char* want) const {
    fail<ValueError>("{}: '{}' must be {}, got {}", origin, key, want, j.at(key).dump());
  }
  void get(const char* key, int64_t& v) const {
    if (const json* x = find(key)) {
      if (!x->is_number_integer()) bad(key, "an integer");
      v = x->get<int64_t>();
    }
  }
  void get(const char* key, double& v) const {
    if (const json* x = find(key)) {
      if (!x->is_number()) bad(key, "a number");
      v = x->get<double>();
    }
  }
  void get(const char* key, bool& v) const {
    if (const json* x = find(key)) {
      if (!x->is_boolean()) bad(key, "true or false");
      v = x->get<bool>();
    }
  }
  void get(const char* key, std::string& v) const {
    if (const json* x = find(key)) {
      if (!x->is_string()) bad(key, "a string");
      v = x->get<std::string>();
    }
  }
};

EncoderFamily family_from_model_type(const std::string& mt, const std::string& origin) {
  for (EncoderFamily f :
       {EncoderFamily::bert, EncoderFamily::roberta, EncoderFamily::albert, EncoderFamily::electra})
    if (mt == family_name(f)) return f;
  fail<ValueError>(
      "{}: model_type '{}' is not an encoder of the BERT family; supported: bert, "
      "roberta, albert, electra",
      origin, mt);
}

BertConfig config_from_json(const json& j, const std::string& origin) {
  LMF_CHECK(j.is_object(), ValueError, "{}: expected a JSON object, got {}", origin, j.type_name());
  JsonReader r{j, origin};
  std::vector<std::string> archs;
  if (const json* a = r.find("architectures")) {
    if (!a->is_array()) r.bad("architectures", "a list of class names");
    for (const auto& x : *a) {
      if (!x.is_string()) r.bad("architectures", "a list of class names");
      archs.push_back(x.get<std::string>());
    }
  }
  std::string model_type;
  r.get("model_type", model_type);
  EncoderFamily fam;
  if (!model_type.empty()) {
    fam = family_from_model_type(model_type, origin);
  } else {
    auto known =
        std::find_if(supported_architectures().begin(), supported_architectures().end(),
                     [&](const Architecture& a) { return !archs.empty() && a.name == archs[0]; });
    LMF_CHECK(known != supported_architectures().end(), ValueError,
              "{}: no 'model_type' and no known 'architectures'; add \"model_type\": \"bert\" "
              "(or roberta, albert, electra)",
              origin);
    fam = known->family;
  }
  BertConfig c = BertConfig::defaults(fam);
  c.architectures = archs;
  r.get("vocab_size", c.vocab_size);
  r.get("hidden_size", c.hidden_size);
  r.get("num_hidden_layers", c.num_hidden_layers);
  r.get("num_attention_heads", c.num_attention_heads);
  r.get("intermediate_size", c.intermediate_size);
  r.get("hidden_act", c.hidden_act_name);
  try {
    c.hidden_act = parse_activation(c.hidden_act_name);
  } catch (const ValueError& e) {
    fail<ValueError>("{}: 'hidden_act': {}", origin, e.what());
  }
  r.get("hidden_dropout_prob", c.hidden_dropout_prob);
  r.get("attention_probs_dropout_prob", c.attention_probs_dropout_prob);
  r.get("max_position_embeddings", c.max_position_embeddings);
  r.get("type_vocab_size", c.type_vocab_size);
  r.get("initializer_range", c.initializer_range);
  r.get("layer_norm_eps", c.layer_norm_eps);
  r.get("pad_token_id", c.pad_token_id);
  r.get("position_embedding_type", c.position_embedding_type);
  LMF_CHECK(c.position_embedding_type == "absolute", ValueError,
            "{}: position_embedding_type '{}' is not supported (only \"absolute\")", origin,
            c.position_embedding_type);
  if (fam == EncoderFamily::albert || fam == EncoderFamily::electra)
    r.get("embedding_size", c.embedding_size);
  r.get("num_hidden_groups", c.num_hidden_groups);
  r.get("inner_group_num", c.inner_group_num);
  if (r.find("classifier_dropout")) {
    double d = 0;
    r.get("classifier_dropout", d);
    c.classifier_dropout = d;
  }
  r.get("classifier_dropout_prob", c.classifier_dropout_prob);
  r.get("problem_type", c.problem_type);
  r.get("tie_word_embeddings", c.tie_word_embeddings);
  r.get("summary_type", c.summary_type);
  r.get("summary_use_proj", c.summary_use_proj);
  r.get("summary_proj_to_labels", c.summary_proj_to_labels);
  r.get("summary_activation", c.summary_activation);
  r.get("summary_first_dropout", c.summary_first_dropout);
  r.get("summary_last_dropout", c.summary_last_dropout);
  if (const json* m = r.find("id2label")) {
    if (!m->is_object()) r.bad("id2label", "an object {\"0\": \"LABEL\", ...}");
    for (const auto& [k, v] : m->items()) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(k, &used);
        if (used != k.size()) id = -1;
      } catch (const std::exception&) {
      }
      LMF_CHECK(id >= 0 && v.is_string(), ValueError,
                "{}: id2label entry \"{}\": {} must map a class index to a name", origin, k,
                v.dump());
      c.id2label[id] = v.get<std::string>();
    }
  }
  if (const json* m = r.find("label2id")) {
    if (!m->is_object()) r.bad("label2id", "an object {\"LABEL\": 0, ...}");
    for (const auto& [k, v] : m->items()) {
      LMF_CHECK(v.is_number_integer(), ValueError,
                "{}: label2id entry \"{}\": {} must map a name to a class index", origin, k,
                v.dump());
      c.label2id[k] = v.get<int64_t>();
    }
  }
  if (!c.id2label.empty())
    c.num_labels = static_cast<int64_t>(c.id2label.size());
  else
    r.get("num_labels", c.num_labels);
  c.extra = detail::config_extra_keys(j, fam);
  try {
    c.validate();
  } catch (const ValueError& e) {
    fail<ValueError>("{}: {}", origin, e.what());
  }
  return c;
}

}  // namespace

BertConfig BertConfig::from_json(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail<ValueError>("{}: not valid JSON ({})", origin, e.what());
  }
  return config_from_json(j, origin);
}

BertConfig BertConfig::from_file(const std::string& path) {
  return config_from_json(io::read_json_file(path), path);
}

double BertConfig::head_dropout() const {
  if (family == EncoderFamily::albert) return classifier_dropout_prob;
  return classifier_dropout.value_or(hidden_dropout_prob);
}

void BertConfig::validate() const {
  auto positive = [](int64_t v, const char* name) {
    LMF_CHECK(v > 0, ValueError, "BertConfig.{} must be positive, got {}", name, v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(intermediate_size, "intermediate_size");
  positive(max_position_embeddings, "max_position_embeddings");
  positive(type_vocab_size, "type_vocab_size");
  positive(num_labels, "num_labels");
  positive(num_hidden_groups, "num_hidden_groups");
  positive(inner_group_num, "inner_group_num");
  LMF_CHECK(embedding_size >= 0, ValueError, "BertConfig.embedding_size must be >= 0, got {}",
            embedding_size);
  LMF_CHECK(hidden_size % num_attention_heads == 0, ValueError,
            "BertConfig: hidden_size {} is not a multiple of num_attention_heads {}", hidden_size,
            num_attention_heads);
  LMF_CHECK(pad_token_id >= 0 && pad_token_id < vocab_size, ValueError,
            "BertConfig.pad_token_id {} must lie in [0, vocab_size {})", pad_token_id, vocab_size);
  LMF_CHECK(family != EncoderFamily::roberta || pad_token_id + 1 < max_position_embeddings,
            ValueError,
            "BertConfig: RoBERTa positions start at pad_token_id + 1 = {}, which needs "
            "max_position_embeddings > {}",
            pad_token_id + 1, pad_token_id + 1);
  LMF_CHECK(num_hidden_groups <= num_hidden_layers, ValueError,
            "BertConfig.num_hidden_groups {} exceeds num_hidden_layers {}", num_hidden_groups,
            num_hidden_layers);
  LMF_CHECK(summary_type == "first" || summary_type == "last" || summary_type == "mean", ValueError,
            "BertConfig.summary_type '{}' is not supported (first, last, mean)", summary_type);
  for (double p : {hidden_dropout_prob, attention_probs_dropout_prob, head_dropout(),
                   summary_first_dropout, summary_last_dropout})
    LMF_CHECK(p >= 0 && p < 1, ValueError, "BertConfig: dropout {} must lie in [0, 1)", p);
}

const Tensor& ModelOutput::pooler_output() const {
  LMF_CHECK(pooler.defined(), ValueError, "pooler_output is unavailable: {}",
            pooler_unavailable.empty() ? "the model has no pooler" : pooler_unavailable);
  return pooler;
}

// ---- embeddings ---------------------------------------------------------------------------------

BertEmbeddings::BertEmbeddings(const BertConfig& c) : cfg_(c) {
  const int64_t e = c.embed_dim();
  const bool roberta = c.family == EncoderFamily::roberta;
  word_ = register_module("word_embeddings",
                          std::make_shared<nn::Embedding>(c.vocab_size, e, c.pad_token_id));
  position_ = register_module(
      "position_embeddings",
      std::make_shared<nn::Embedding>(c.max_position_embeddings, e, roberta ? c.pad_token_id : -1));
  token_type_ = register_module("token_type_embeddings",
                                std::make_shared<nn::Embedding>(c.type_vocab_size, e));
  norm_ = register_module("LayerNorm", std::make_shared<nn::LayerNorm>(e, c.layer_norm_eps));
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.hidden_dropout_prob));
}

Tensor create_position_ids_from_input_ids(const Tensor& ids, int64_t padding_idx) {
  LMF_CHECK(ids.dim() == 2, ShapeError,
            "create_position_ids_from_input_ids: ids must be "
            "[batch, seq], got {}",
            ids.describe());
  const auto v = ids.to_vector<int64_t>();
  const int64_t b = ids.size(0), t = ids.size(1);
  std::vector<int64_t> pos(v.size());
  for (int64_t i = 0; i < b; ++i) {
    int64_t count = 0;
    for (int64_t j = 0; j < t; ++j) {
      const int64_t k = i * t + j;
      const bool token = v[k] != padding_idx;
      count += token;
      pos[k] = token ? count + padding_idx : padding_idx;
    }
  }
  return Tensor::from_vector(pos, {b, t});
}

Tensor BertEmbeddings::forward(const Tensor& ids, const Tensor& token_type_ids,
                               const Tensor& position_ids) const {
  const int64_t t = ids.size(1);
  const int64_t max_pos = position_->num_embeddings();
  Tensor positions = position_ids;
  if (!positions.defined()) {
    if (cfg_.family == EncoderFamily::roberta) {
      LMF_CHECK(t + cfg_.pad_token_id < max_pos, ShapeError,
                "RoBERTa: input of {} tokens is longer than the {} positions "
                "max_position_embeddings {} allows (positions start at pad_token_id + 1); "
                "truncate it",
                t, max_pos - cfg_.pad_token_id - 1, max_pos);
      positions = create_position_ids_from_input_ids(ids, cfg_.pad_token_id);
    } else {
      LMF_CHECK(t <= max_pos, ShapeError,
                "BERT: input of {} tokens is longer than max_position_embeddings {}; truncate it",
                t, max_pos);
      positions = Tensor::arange(t);
    }
  }
  Tensor types = token_type_ids.defined() ? token_type_ids : Tensor::zeros(ids.shape(), DType::i64);
  Tensor x = word_->forward(ids) + token_type_->forward(types);
  x = x + position_->forward(positions);
  return dropout_->forward(norm_->forward(x));
}

// ---- layer --------------------------------------------------------------------------------------

BertLayer::BertLayer(const BertConfig& c) : cfg_(c) {
  const int64_t h = c.hidden_size;
  auto ln = [&] { return std::make_shared<nn::LayerNorm>(h, c.layer_norm_eps); };
  auto attn_cfg =
      nn::AttentionConfig::bert(h, c.num_attention_heads, c.attention_probs_dropout_prob);
  if (c.family == EncoderFamily::albert) {
    attn_cfg.o_name = "dense";  // ALBERT keeps the output projection inside "attention"
    self_ = register_module("attention", std::make_shared<nn::MultiHeadAttention>(attn_cfg));
    attn_norm_ = self_->register_module("LayerNorm", ln());
    out_norm_ = register_module("full_layer_layer_norm", ln());
    inter_ = register_module("ffn", std::make_shared<nn::Linear>(h, c.intermediate_size));
    out_ = register_module("ffn_output", std::make_shared<nn::Linear>(c.intermediate_size, h));
  } else {
    auto attention = register_module("attention", std::make_shared<Container>());
    self_ = attention->register_module("self", std::make_shared<nn::MultiHeadAttention>(attn_cfg));
    auto attn_output = attention->register_module("output", std::make_shared<Container>());
    attn_out_ = attn_output->register_module("dense", std::make_shared<nn::Linear>(h, h));
    attn_norm_ = attn_output->register_module("LayerNorm", ln());
    auto intermediate = register_module("intermediate", std::make_shared<Container>());
    inter_ = intermediate->register_module("dense",
                                           std::make_shared<nn::Linear>(h, c.intermediate_size));
    auto output = register_module("output", std::make_shared<Container>());
    out_ = output->register_module("dense", std::make_shared<nn::Linear>(c.intermediate_size, h));
    out_norm_ = output->register_module("LayerNorm", ln());
  }
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.hidden_dropout_prob));
}

Tensor BertLayer::forward(const Tensor& x, const AttentionOptions& mask, Tensor* probs) const {
  nn::AttentionInputs in;
  in.options = mask;
  in.options.return_probs = probs != nullptr;
  AttentionResult r = self_->forward(x, in);  // [B, T, H] (heads merged)
  if (probs) *probs = r.probs;
  Tensor a = attn_out_ ? attn_out_->forward(r.out) : r.out;
  Tensor h = attn_norm_->forward(dropout_->forward(a), x);
  Tensor o = out_->forward(inter_->forward(h, cfg_.hidden_act));
  if (cfg_.family != EncoderFamily::albert) o = dropout_->forward(o);  // HF ALBERT has none here
  return out_norm_->forward(o, h);
}

// ---- model --------------------------------------------------------------------------------------

EncoderModel::EncoderModel(const BertConfig& c, EncoderHead head) : cfg_(c), head_(head) {
  c.validate();
}

void EncoderModel::tie(const std::string& target, const std::string& source) {
  tied_.emplace_back(target, source);
}

std::string EncoderModel::architecture() const {
  for (const auto& a : supported_architectures())
    if (a.family == cfg_.family && a.head == head_) return a.name;
  return "?";
}

BertModel::BertModel(const BertConfig& c, bool add_pooling_layer)
    : EncoderModel(c, EncoderHead::base) {
  const int64_t h = c.hidden_size, e = c.embed_dim();
  embeddings_ = register_module("embeddings", std::make_shared<BertEmbeddings>(c));
  if (c.family == EncoderFamily::electra && e != h)
    project_ = register_module("embeddings_project", std::make_shared<nn::Linear>(e, h));
  auto encoder = register_module("encoder", std::make_shared<Container>());
  if (c.family == EncoderFamily::albert) {
    project_ =
        encoder->register_module("embedding_hidden_mapping_in", std::make_shared<nn::Linear>(e, h));
    auto groups =
        encoder->register_module("albert_layer_groups", std::make_shared<nn::ModuleList>());
    for (int64_t g = 0; g < c.num_hidden_groups; ++g) {
      auto group = groups->push_back(std::make_shared<Container>());
      auto list = group->register_module("albert_layers", std::make_shared<nn::ModuleList>());
      for (int64_t i = 0; i < c.inner_group_num; ++i)
        layers_.push_back(list->push_back(std::make_shared<BertLayer>(c)));
    }
  } else {
    auto list = encoder->register_module("layer", std::make_shared<nn::ModuleList>());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      layers_.push_back(list->push_back(std::make_shared<BertLayer>(c)));
  }
  if (add_pooling_layer && c.family != EncoderFamily::electra) {
    if (c.family == EncoderFamily::albert) {
      pooler_ = register_module("pooler", std::make_shared<nn::Linear>(h, h));
    } else {
      auto pooler = register_module("pooler", std::make_shared<Container>());
      pooler_ = pooler->register_module("dense", std::make_shared<nn::Linear>(h, h));
    }
  }
  init_bert_weights(*this, c);
}

std::vector<std::string> BertModel::pooler_keys() const {
  if (!pooler_) return {};
  if (cfg_.family == EncoderFamily::albert) return {"pooler.weight", "pooler.bias"};
  return {"pooler.dense.weight", "pooler.dense.bias"};
}

void BertModel::init_pooler(uint64_t seed) {
  LMF_CHECK(pooler_ != nullptr, ValueError, "{} has no pooler to initialise", architecture());
  NoGradGuard no_grad;
  Generator gen(seed);
  nn::init::normal_(pooler_->weight(), 0.0, cfg_.initializer_range, &gen);
  nn::init::zeros_(pooler_->bias());
  pooler_unavailable_.clear();
}

namespace {
void check_inputs(const char* who, const EncoderInputs& in, int64_t rank) {
  const Tensor& ids = in.input_ids;
  LMF_CHECK(ids.defined() && ids.dim() == rank, ShapeError, "{}: input_ids must be {}, got {}", who,
            rank == 2 ? "[batch, seq]" : "[batch, choices, seq]",
            ids.defined() ? ids.describe() : "undefined");
  LMF_CHECK(is_integer(ids.dtype()), DTypeError, "{}: input_ids must be integer, got {}", who,
            ids.describe());
  auto same = [&](const Tensor& t, const char* name) {
    LMF_CHECK(!t.defined() || t.shape() == ids.shape(), ShapeError,
              "{}: {} {} does not match input_ids {}", who, name, t.describe(), ids.describe());
  };
  same(in.attention_mask, "attention_mask");
  same(in.token_type_ids, "token_type_ids");
  same(in.position_ids, "position_ids");
}
}  // namespace

ModelOutput BertModel::forward(const EncoderInputs& in, const EncoderLabels&) const {
  check_inputs(architecture().c_str(), in, 2);
  ModelOutput out;
  Tensor h = embeddings_->forward(in.input_ids, in.token_type_ids, in.position_ids);
  if (project_) h = project_->forward(h);
  AttentionOptions mask;
  mask.key_padding_mask = in.attention_mask;
  if (in.output_hidden_states) out.hidden_states.push_back(h);
  auto run = [&](const BertLayer& layer) {
    Tensor probs;
    h = layer.forward(h, mask, in.output_attentions ? &probs : nullptr);
    if (in.output_hidden_states) out.hidden_states.push_back(h);
    if (in.output_attentions) out.attentions.push_back(probs);
  };
  const int64_t n = cfg_.num_hidden_layers;
  if (cfg_.family == EncoderFamily::albert) {
    const double per_group = static_cast<double>(n) / static_cast<double>(cfg_.num_hidden_groups);
    for (int64_t i = 0; i < n; ++i) {
      const auto g = static_cast<int64_t>(static_cast<double>(i) / per_group);
      for (int64_t j = 0; j < cfg_.inner_group_num; ++j)
        run(*layers_[static_cast<size_t>(g * cfg_.inner_group_num + j)]);
    }
  } else {
    for (const auto& layer : layers_) run(*layer);
  }
  out.last_hidden_state = h;
  if (pooler_ && pooler_unavailable_.empty()) {
    out.pooler = pooler_->forward(h.select(1, 0).contiguous(), Activation::tanh);
  } else {
    out.pooler_unavailable =
        pooler_ ? pooler_unavailable_
                : fmt::format(
                      "this {} encoder has no pooler layer (HF builds it without one); "
                      "use the first token (--pooling cls) or mean pooling instead",
                      family_name(cfg_.family));
  }
  return out;
}

Tensor BertModel::forward(const Tensor& ids, const Tensor& attention_mask,
                          const Tensor& token_type_ids) const {
  EncoderInputs in;
  in.input_ids = ids;
  in.attention_mask = attention_mask;
  in.token_type_ids = token_type_ids;
  return forward(in).last_hidden_state;
}

// ---- heads --------------------------------------------------------------------------------------

namespace {
bool has_pooler_for(const BertConfig& c, EncoderHead head) {
  switch (head) {
    case EncoderHead::base:
    case EncoderHead::next_sentence:
    case EncoderHead::pretraining:
    case EncoderHead::multiple_choice:
      return true;
    case EncoderHead::sequence_classification:
      return c.family != EncoderFamily::roberta;
    default:
      return false;
  }
}

// Initialises every module of `m` except its child `skip` (the already initialised encoder).
void init_except(nn::Module& m, const std::string& skip, const BertConfig& c) {
  for (const auto& [name, child] : m.named_children())
    if (name != skip) init_bert_weights(*child, c);
}
}  // namespace

BertHeadModel::BertHeadModel(const BertConfig& c, EncoderHead head, bool add_pooling_layer)
    : EncoderModel(c, head) {
  prefix_ = family_name(c.family);
  base_ = register_module(prefix_, std::make_shared<BertModel>(c, add_pooling_layer));
}

ModelOutput BertHeadModel::run_base(const EncoderInputs& in) const {
  check_inputs(architecture().c_str(), in, 2);
  return base_->forward(in);
}

const Tensor& BertHeadModel::pooled(const ModelOutput& o) const {
  LMF_CHECK(o.pooler.defined(), ValueError, "{} needs the pooler: {}", architecture(),
            o.pooler_unavailable);
  return o.pooler;
}

Tensor MaskedLMHead::forward(const Tensor& h) const {
  return decoder->forward(norm->forward(dense->forward(h, act)));
}

namespace {
// Builds the family's MLM head on `owner` (see MaskedLMHead); returns BERT's "cls" container
// through `cls` so that BertForPreTraining can add seq_relationship next to the predictions.
MaskedLMHead build_lm_head(nn::Module& owner, BertModel& base, const BertConfig& c,
                           std::vector<std::pair<std::string, std::string>>& ties,
                           std::shared_ptr<nn::Module>* cls = nullptr) {
  const int64_t h = c.hidden_size, e = c.embed_dim(), v = c.vocab_size;
  const std::string word =
      std::string(family_name(c.family)) + ".embeddings.word_embeddings.weight";
  MaskedLMHead lm;
  std::string path;  // dotted path of the module holding decoder and bias
  std::shared_ptr<nn::Module> holder;
  auto ln = [&](int64_t d) { return std::make_shared<nn::LayerNorm>(d, c.layer_norm_eps); };
  switch (c.family) {
    case EncoderFamily::bert: {
      auto cls_m = owner.register_module("cls", std::make_shared<Container>());
      if (cls) *cls = cls_m;
      holder = cls_m->register_module("predictions", std::make_shared<Container>());
      auto transform = holder->register_module("transform", std::make_shared<Container>());
      lm.dense = transform->register_module("dense", std::make_shared<nn::Linear>(h, h));
      lm.norm = transform->register_module("LayerNorm", ln(h));
      lm.act = c.hidden_act;
      path = "cls.predictions.";
      break;
    }
    case EncoderFamily::roberta:
      holder = owner.register_module("lm_head", std::make_shared<Container>());
      lm.dense = holder->register_module("dense", std::make_shared<nn::Linear>(h, h));
      lm.norm = holder->register_module("layer_norm", ln(h));
      lm.act = Activation::gelu;
      path = "lm_head.";
      break;
    case EncoderFamily::albert:
      holder = owner.register_module("predictions", std::make_shared<Container>());
      lm.norm = holder->register_module("LayerNorm", ln(e));
      lm.dense = holder->register_module("dense", std::make_shared<nn::Linear>(h, e));
      lm.act = c.hidden_act;
      path = "predictions.";
      break;
    case EncoderFamily::electra: {
      auto gen = owner.register_module("generator_predictions", std::make_shared<Container>());
      lm.norm = gen->register_module("LayerNorm", ln(e));
      lm.dense = gen->register_module("dense", std::make_shared<nn::Linear>(h, e));
      lm.act = Activation::gelu;
      lm.decoder = owner.register_module("generator_lm_head", std::make_shared<nn::Linear>(e, v));
      if (c.tie_word_embeddings) {
        lm.decoder->weight() = base.embeddings().word_embeddings().weight();
        ties.emplace_back("generator_lm_head.weight", word);
      }
      return lm;
    }
  }
  lm.decoder = holder->register_module("decoder", std::make_shared<nn::Linear>(e, v));
  if (c.tie_word_embeddings) {
    holder->register_parameter("bias", lm.decoder->bias());  // decoder.bias is this tensor (HF)
    ties.emplace_back(path + "decoder.bias", path + "bias");
  } else {
    // Untied (HF): `bias` is a parameter of its own that the forward does not use; the logits
    // take decoder.bias.
    holder->register_parameter("bias", Tensor::zeros({v}));
  }
  if (c.tie_word_embeddings) {
    lm.decoder->weight() = base.embeddings().word_embeddings().weight();
    ties.emplace_back(path + "decoder.weight", word);
  }
  return lm;
}

Tensor mlm_loss(const Tensor& logits, const Tensor& labels) {
  return cross_entropy(logits.reshape({-1, logits.size(-1)}), labels.reshape({-1}), -100);
}
}  // namespace

BertForMaskedLM::BertForMaskedLM(const BertConfig& c)
    : BertHeadModel(c, EncoderHead::masked_lm, false) {
  lm_ = build_lm_head(*this, *base_, c, tied_);
  init_except(*this, prefix_, c);
}

ModelOutput BertForMaskedLM::forward(const EncoderInputs& in, const EncoderLabels& labels) const {
  ModelOutput o = run_base(in);
  o.logits = lm_.forward(o.last_hidden_state);
  if (labels.labels.defined()) o.loss = mlm_loss(o.logits, labels.labels);
  return o;
}

BertForNextSentencePrediction::BertForNextSentencePrediction(const BertConfig& c)
    : BertHeadModel(c, EncoderHead::next_sentence, true) {
  LMF_CHECK(c.family == EncoderFamily::bert, ValueError,
            "next-sentence prediction exists only for BERT, not {}", family_name(c.family));
  auto cls = register_module("cls", std::make_shared<Container>());
  seq_relationship_ =
      cls->register_module("seq_relationship", std::make_shared<nn::Linear>(c.hidden_size, 2));
  init_except(*this, prefix_, c);
}

ModelOutput BertForNextSentencePrediction::forward(const EncoderInputs& in,
                                                   const EncoderLabels& labels) const {
  ModelOutput o = run_base(in);
  o.logits = seq_relationship_->forward(pooled(o));
  if (labels.labels.defined())
    o.loss = cross_entropy(o.logits.reshape({-1, 2}), labels.labels.reshape({-1}));
  return o;
}

BertForPreTraining::BertForPreTraining(const BertConfig& c)
    : BertHeadModel(c, EncoderHead::pretraining, c.family != EncoderFamily::electra) {
  const int64_t h = c.hidden_size;
  switch (c.family) {
    case EncoderFamily::bert: {
      std::shared_ptr<nn::Module> cls;
      lm_ = build_lm_head(*this, *base_, c, tied_, &cls);
      seq_relationship_ =
          cls->register_module("seq_relationship", std::make_shared<nn::Linear>(h, 2));
      break;
    }
    case EncoderFamily::albert: {
      lm_ = build_lm_head(*this, *base_, c, tied_);
      auto sop = register_module("sop_classifier", std::make_shared<Container>());
      sop_dropout_ =
          sop->register_module("dropout", std::make_shared<nn::Dropout>(c.classifier_dropout_prob));
      seq_relationship_ =
          sop->register_module("classifier", std::make_shared<nn::Linear>(h, c.num_labels));
      break;
    }
    case EncoderFamily::electra: {
      auto disc = register_module("discriminator_predictions", std::make_shared<Container>());
      disc_dense_ = disc->register_module("dense", std::make_shared<nn::Linear>(h, h));
      disc_prediction_ =
          disc->register_module("dense_prediction", std::make_shared<nn::Linear>(h, 1));
      break;
    }
    case EncoderFamily::roberta:
      fail<ValueError>(
          "RoBERTa has no pre-training head class in transformers; use "
          "RobertaForMaskedLM");
  }
  init_except(*this, prefix_, c);
}

ModelOutput BertForPreTraining::forward(const EncoderInputs& in,
                                        const EncoderLabels& labels) const {
  ModelOutput o = run_base(in);
  const Tensor& h = o.last_hidden_state;
  if (disc_dense_) {  // ELECTRA discriminator: one logit per token
    o.logits = disc_prediction_->forward(disc_dense_->forward(h, cfg_.hidden_act)).squeeze(-1);
    if (labels.labels.defined()) {
      LMF_CHECK(labels.labels.shape() == o.logits.shape(), ShapeError,
                "{}: labels {} must be [batch, seq] like input_ids", architecture(),
                labels.labels.describe());
      Tensor per =
          binary_cross_entropy_with_logits(o.logits, labels.labels.to(DType::f32), Reduction::none);
      if (in.attention_mask.defined()) {
        Tensor active = in.attention_mask.to(DType::f32);
        o.loss = sum(per * active) / sum(active);
      } else {
        o.loss = mean(per);
      }
    }
    return o;
  }
  o.logits = lm_.forward(h);
  Tensor p = pooled(o);
  if (sop_dropout_) p = sop_dropout_->forward(p);
  o.seq_relationship_logits = seq_relationship_->forward(p);
  if (labels.labels.defined() && labels.next_sentence_label.defined())
    o.loss = mlm_loss(o.logits, labels.labels) +
             cross_entropy(o.seq_relationship_logits.reshape({-1, 2}),
                           labels.next_sentence_label.reshape({-1}));
  return o;
}

BertForSequenceClassification::BertForSequenceClassification(const BertConfig& c)
    : BertHeadModel(c, EncoderHead::sequence_classification,
                    has_pooler_for(c, EncoderHead::sequence_classification)) {
  const int64_t h = c.hidden_size;
  if (c.family == EncoderFamily::roberta || c.family == EncoderFamily::electra) {
    auto head = register_module("classifier", std::make_shared<Container>());
    dense_ = head->register_module("dense", std::make_shared<nn::Linear>(h, h));
    dropout_ = head->register_module("dropout", std::make_shared<nn::Dropout>(c.head_dropout()));
    classifier_ = head->register_module("out_proj", std::make_shared<nn::Linear>(h, c.num_labels));
  } else {
    dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.head_dropout()));
    classifier_ = register_module("classifier", std::make_shared<nn::Linear>(h, c.num_labels));
  }
  init_except(*this, prefix_, c);
}

namespace {
// HF's loss choice for sequence classification (problem_type, else num_labels and label dtype).
Tensor sequence_classification_loss(const BertConfig& c, const Tensor& logits,
                                    const Tensor& labels) {
  std::string pt = c.problem_type;
  if (pt.empty())
    pt = c.num_labels == 1            ? "regression"
         : is_integer(labels.dtype()) ? "single_label_classification"
                                      : "multi_label_classification";
  if (pt == "regression") {
    if (c.num_labels == 1)
      return mse_loss(logits.reshape({-1}), labels.to(DType::f32).reshape({-1}));
    return mse_loss(logits, labels.to(DType::f32));
  }
  if (pt == "single_label_classification") {
    LMF_CHECK(is_integer(labels.dtype()), DTypeError,
              "single-label classification needs integer class labels, got {}", labels.describe());
    return cross_entropy(logits.reshape({-1, c.num_labels}), labels.reshape({-1}));
  }
  LMF_CHECK(pt == "multi_label_classification", ValueError,
            "problem_type '{}' is not one of regression, single_label_classification, "
            "multi_label_classification",
            pt);
  LMF_CHECK(labels.shape() == logits.shape(), ShapeError,
            "multi-label classification needs labels {} shaped like the logits {}",
            labels.describe(), logits.describe());
  return binary_cross_entropy_with_logits(logits, labels.to(DType::f32));
}
}  // namespace

ModelOutput BertForSequenceClassification::forward(const EncoderInputs& in,
                                                   const EncoderLabels& labels) const {
  ModelOutput o = run_base(in);
  if (dense_) {  // RoBERTa (tanh) / ELECTRA (gelu) classification head on the first token
    const Activation act =
        cfg_.family == EncoderFamily::roberta ? Activation::tanh : Activation::gelu;
    Tensor x = dropout_->forward(o.last_hidden_state.select(1, 0).contiguous());
    x = dropout_->forward(dense_->forward(x, act));
    o.logits = classifier_->forward(x);
  } else {
    o.logits = classifier_->forward(dropout_->forward(pooled(o)));
  }
  if (labels.labels.defined()) o.loss = sequence_classification_loss(cfg_, o.logits, labels.labels);
  return o;
}

BertForTokenClassification::BertForTokenClassification(const BertConfig& c)
    : BertHeadModel(c, EncoderHead::token_classification, false) {
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.head_dropout()));
  classifier_ =
      register_module("classifier", std::make_shared<nn::Linear>(c.hidden_size, c.num_labels));
  init_except(*this, prefix_, c);
}

ModelOutput BertForTokenClassification::forward(const EncoderInputs& in,
                                                const EncoderLabels& labels) const {
  ModelOutput o = run_base(in);
  o.logits = classifier_->forward(dropout_->forward(o.last_hidden_state));
  if (labels.labels.defined()) o.loss = loss(o.logits, labels.labels);
  return o;
}

Tensor BertForTokenClassification::forward(const Tensor& ids, const Tensor& attention_mask,
                                           const Tensor& token_type_ids) const {
  EncoderInputs in;
  in.input_ids = ids;
  in.attention_mask = attention_mask;
  in.token_type_ids = token_type_ids;
  return forward(in).logits;
}

Tensor BertForTokenClassification::loss(const Tensor& logits, const Tensor& labels) const {
  const int64_t c = logits.size(-1);
  return cross_entropy(logits.reshape({-1, c}), labels.reshape({-1}), -100);
}

BertForQuestionAnswering::BertForQuestionAnswering(const BertConfig& c)
    : BertHeadModel(c, EncoderHead::question_answering, false) {
  LMF_CHECK(c.num_labels == 2, ValueError,
            "question answering needs num_labels 2 (start and end logits), got {}", c.num_labels);
  qa_outputs_ = register_module("qa_outputs", std::make_shared<nn::Linear>(c.hidden_size, 2));
  init_except(*this, prefix_, c);
}

ModelOutput BertForQuestionAnswering::forward(const EncoderInputs& in,
                                              const EncoderLabels& labels) const {
  ModelOutput o = run_base(in);
  Tensor logits = qa_outputs_->forward(o.last_hidden_state);  // [B, T, 2]
  o.start_logits = logits.select(-1, 0).contiguous();
  o.end_logits = logits.select(-1, 1).contiguous();
  if (labels.start_positions.defined() && labels.end_positions.defined()) {
    const int64_t t = o.start_logits.size(1);
    auto clamp = [&](const Tensor& p) {  // HF: positions outside the sequence are ignored
      auto v = p.to_vector<int64_t>();
      for (auto& x : v) x = std::clamp<int64_t>(x, 0, t);
      return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
    };
    Tensor s = cross_entropy(o.start_logits, clamp(labels.start_positions), t);
    Tensor e = cross_entropy(o.end_logits, clamp(labels.end_positions), t);
    o.loss = (s + e) * 0.5;
  }
  return o;
}

BertForMultipleChoice::BertForMultipleChoice(const BertConfig& c)
    : BertHeadModel(c, EncoderHead::multiple_choice, c.family != EncoderFamily::electra) {
  const int64_t h = c.hidden_size;
  if (c.family == EncoderFamily::electra) {
    auto summary = register_module("sequence_summary", std::make_shared<Container>());
    if (c.summary_use_proj) {
      const int64_t out = c.summary_proj_to_labels ? c.num_labels : h;
      summary_ = summary->register_module("summary", std::make_shared<nn::Linear>(h, out));
    }
    if (!c.summary_activation.empty()) parse_activation(c.summary_activation);  // validate
  } else {
    const double p = c.family == EncoderFamily::roberta ? c.hidden_dropout_prob : c.head_dropout();
    dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(p));
  }
  const int64_t in = summary_ ? summary_->out_features() : h;
  classifier_ = register_module("classifier", std::make_shared<nn::Linear>(in, 1));
  init_except(*this, prefix_, c);
}

ModelOutput BertForMultipleChoice::forward(const EncoderInputs& in,
                                           const EncoderLabels& labels) const {
  check_inputs(architecture().c_str(), in, 3);
  const int64_t b = in.input_ids.size(0), choices = in.input_ids.size(1);
  auto flat = [](const Tensor& t) { return t.defined() ? t.reshape({-1, t.size(-1)}) : t; };
  EncoderInputs f = in;
  f.input_ids = flat(in.input_ids);
  f.attention_mask = flat(in.attention_mask);
  f.token_type_ids = flat(in.token_type_ids);
  f.position_ids = flat(in.position_ids);
  ModelOutput o = run_base(f);
  Tensor x;
  if (dropout_) {
    x = dropout_->forward(pooled(o));
  } else {  // ELECTRA sequence summary
    const Tensor& h = o.last_hidden_state;
    x = cfg_.summary_type == "first"  ? h.select(1, 0).contiguous()
        : cfg_.summary_type == "last" ? h.select(1, h.size(1) - 1).contiguous()
                                      : mean(h, {1});
    x = dropout(x, cfg_.summary_first_dropout, is_training());
    const Activation act = cfg_.summary_activation.empty()
                               ? Activation::none
                               : parse_activation(cfg_.summary_activation);
    x = summary_ ? summary_->forward(x, act) : activation(x, act);
    x = dropout(x, cfg_.summary_last_dropout, is_training());
  }
  o.logits = classifier_->forward(x).reshape({b, choices});
  if (labels.labels.defined()) o.loss = cross_entropy(o.logits, labels.labels.reshape({-1}));
  return o;
}

namespace {
// Set while create_model(model_dir) builds a model whose weights the checkpoint will replace, so
// that 100M random draws are not made only to be thrown away (9 s for BERT-base).
thread_local bool g_skip_init = false;
struct SkipInitScope {
  SkipInitScope() { g_skip_init = true; }
  ~SkipInitScope() { g_skip_init = false; }
  nn::init::NoInitGuard no_draws;  // nor the layers' own constructor draws
};

// HF's _init_weights for one parameter the checkpoint did not provide, decided by its name.
void init_missing_parameter(nn::Module& m, const std::string& key, const BertConfig& c) {
  Tensor& t = m.parameter(key);
  const auto ends_with = [&](std::string_view suffix) {
    return key.size() >= suffix.size() &&
           key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("bias")) {
    nn::init::zeros_(t);
  } else if (key.find("LayerNorm") != std::string::npos) {
    nn::init::ones_(t);
  } else {
    nn::init::normal_(t, 0.0, c.initializer_range);
    if (ends_with("word_embeddings.weight") && c.pad_token_id >= 0 && c.pad_token_id < t.size(0))
      t.select(0, c.pad_token_id).zero_();
  }
}
}  // namespace

void init_bert_weights(nn::Module& m, const BertConfig& c) {
  if (g_skip_init) return;
  NoGradGuard no_grad;
  m.apply([&](nn::Module& mod) {
    if (auto* lin = dynamic_cast<nn::Linear*>(&mod)) {
      nn::init::normal_(lin->weight(), 0.0, c.initializer_range);
      if (lin->bias().defined()) nn::init::zeros_(lin->bias());
    } else if (auto* emb = dynamic_cast<nn::Embedding*>(&mod)) {
      nn::init::normal_(emb->weight(), 0.0, c.initializer_range);
      if (emb->padding_idx() >= 0) emb->weight().select(0, emb->padding_idx()).zero_();
    } else if (auto* ln = dynamic_cast<nn::LayerNorm*>(&mod)) {
      if (ln->weight().defined()) nn::init::ones_(ln->weight());
      if (ln->bias().defined()) nn::init::zeros_(ln->bias());
    }
  });
}

// ---- loading ------------------------------------------------------------------------------------

LoadSpec EncoderModel::load_spec() const {
  LoadSpec spec;
  spec.base_prefix = family_name(cfg_.family);
  spec.keys_have_prefix = !prefix_.empty();
  spec.tied = tied_;
  spec.rename = [](const std::string& k) {
    const size_t dot = k.rfind('.');
    const std::string last = k.substr(dot == std::string::npos ? 0 : dot + 1);
    const std::string head = dot == std::string::npos ? "" : k.substr(0, dot + 1);
    if (last == "gamma") return head + "weight";
    if (last == "beta") return head + "bias";
    return k;
  };
  // HF's non-persistent buffers, present in old checkpoints: never parameters.
  spec.ignored_suffixes = {"embeddings.position_ids", "embeddings.token_type_ids"};
  return spec;
}

LoadReport EncoderModel::load(const nn::StateDict& state, const LoadOptions& opt,
                              const std::string& origin) {
  LoadReport rep = load_hf_state_dict(*this, state, load_spec(), opt, architecture(), origin);
  BertModel& base = encoder();
  if (base.has_pooler()) {
    std::vector<std::string> absent;
    for (const auto& k : base.pooler_keys()) {
      const std::string full = prefix_.empty() ? k : prefix_ + "." + k;
      if (std::find(rep.missing_keys.begin(), rep.missing_keys.end(), full) !=
          rep.missing_keys.end())
        absent.push_back(full);
    }
    rep.pooler_missing = !absent.empty();
    if (!rep.pooler_missing) {
      base.set_pooler_unavailable("");
    } else if (opt.pooler_init_seed) {
      base.init_pooler(*opt.pooler_init_seed);
      rep.pooler_initialized = true;
    } else {
      base.set_pooler_unavailable(fmt::format(
          "{} has no pooler weights ({}): it was saved by a model without a pooler (e.g. "
          "BertForMaskedLM), and a randomly initialised pooler would give a different "
          "pooler_output on every load. Use the first token (--pooling cls) or mean pooling "
          "(--pooling mean), or initialise the pooler from a seed so that every load gives the "
          "same pooler_output: --pooler-init-seed N (e.g. --pooler-init-seed 42; C++: "
          "LoadOptions::pooler_init_seed)",
          origin, fmt::join(absent, ", ")));
    }
  }
  return rep;
}

// ---- registry -----------------------------------------------------------------------------------

const std::vector<Architecture>& supported_architectures() {
  using F = EncoderFamily;
  using H = EncoderHead;
  static const std::vector<Architecture> kArchs = {
      {"BertModel", F::bert, H::base},
      {"BertForMaskedLM", F::bert, H::masked_lm},
      {"BertForNextSentencePrediction", F::bert, H::next_sentence},
      {"BertForPreTraining", F::bert, H::pretraining},
      {"BertForSequenceClassification", F::bert, H::sequence_classification},
      {"BertForTokenClassification", F::bert, H::token_classification},
      {"BertForQuestionAnswering", F::bert, H::question_answering},
      {"BertForMultipleChoice", F::bert, H::multiple_choice},
      {"RobertaModel", F::roberta, H::base},
      {"RobertaForMaskedLM", F::roberta, H::masked_lm},
      {"RobertaForSequenceClassification", F::roberta, H::sequence_classification},
      {"RobertaForTokenClassification", F::roberta, H::token_classification},
      {"RobertaForQuestionAnswering", F::roberta, H::question_answering},
      {"RobertaForMultipleChoice", F::roberta, H::multiple_choice},
      {"AlbertModel", F::albert, H::base},
      {"AlbertForMaskedLM", F::albert, H::masked_lm},
      {"AlbertForPreTraining", F::albert, H::pretraining},
      {"AlbertForSequenceClassification", F::albert, H::sequence_classification},
      {"AlbertForTokenClassification", F::albert, H::token_classification},
      {"AlbertForQuestionAnswering", F::albert, H::question_answering},
      {"AlbertForMultipleChoice", F::albert, H::multiple_choice},
      {"ElectraModel", F::electra, H::base},
      {"ElectraForMaskedLM", F::electra, H::masked_lm},
      {"ElectraForPreTraining", F::electra, H::pretraining},
      {"ElectraForSequenceClassification", F::electra, H::sequence_classification},
      {"ElectraForTokenClassification", F::electra, H::token_classification},
      {"ElectraForQuestionAnswering", F::electra, H::question_answering},
      {"ElectraForMultipleChoice", F::electra, H::multiple_choice},
  };
  return kArchs;
}

std::unique_ptr<EncoderModel> create_model(const BertConfig& c, const std::string& architecture) {
  std::string name = architecture;
  if (name.empty()) name = c.architectures.empty() ? "" : c.architectures.front();
  const Architecture* arch = nullptr;
  for (const auto& a : supported_architectures()) {
    if (name.empty() ? (a.family == c.family && a.head == EncoderHead::base) : a.name == name) {
      arch = &a;
      break;
    }
  }
  if (arch == nullptr) {
    std::vector<std::string> names;
    for (const auto& a : supported_architectures()) names.push_back(a.name);
    fail<ValueError>("unknown architecture '{}'; supported: {}", name, fmt::join(names, ", "));
  }
  LMF_CHECK(arch->family == c.family, ValueError,
            "architecture {} belongs to {} but the config's model_type is {}", arch->name,
            family_name(arch->family), family_name(c.family));
  std::unique_ptr<EncoderModel> m;
  switch (arch->head) {
    case EncoderHead::base:
      m = std::make_unique<BertModel>(c);
      break;
    case EncoderHead::masked_lm:
      m = std::make_unique<BertForMaskedLM>(c);
      break;
    case EncoderHead::next_sentence:
      m = std::make_unique<BertForNextSentencePrediction>(c);
      break;
    case EncoderHead::pretraining:
      m = std::make_unique<BertForPreTraining>(c);
      break;
    case EncoderHead::sequence_classification:
      m = std::make_unique<BertForSequenceClassification>(c);
      break;
    case EncoderHead::token_classification:
      m = std::make_unique<BertForTokenClassification>(c);
      break;
    case EncoderHead::question_answering:
      m = std::make_unique<BertForQuestionAnswering>(c);
      break;
    case EncoderHead::multiple_choice:
      m = std::make_unique<BertForMultipleChoice>(c);
      break;
  }
  m->eval();
  return m;
}

std::unique_ptr<EncoderModel> create_model(const std::string& model_dir, const LoadOptions& opt,
                                           LoadReport* report) {
  BertConfig c = BertConfig::from_file(model_dir + "/config.json");
  std::unique_ptr<EncoderModel> m;
  {
    SkipInitScope skip;  // the checkpoint replaces these weights; missing ones are set below
    m = create_model(c, opt.architecture);
  }
  LoadReport rep = m->load(io::load_checkpoint_dir(model_dir), opt, model_dir);
  {
    NoGradGuard no_grad;
    const auto pooler = m->encoder().pooler_keys();
    for (const auto& key : rep.missing_keys) {
      const bool seeded_pooler =
          rep.pooler_initialized &&
          std::any_of(pooler.begin(), pooler.end(), [&](const std::string& k) {
            return key.size() >= k.size() && key.compare(key.size() - k.size(), k.size(), k) == 0;
          });
      if (!seeded_pooler) init_missing_parameter(*m, key, c);
    }
  }
  if (report) *report = std::move(rep);
  return m;
}

void register_bert_family() {
  FamilyRegistration reg;
  reg.model_types = {"bert", "roberta", "albert", "electra"};
  for (const auto& a : supported_architectures()) reg.architectures.push_back(a.name);
  reg.default_architecture = "";  // the family's base model, decided from model_type
  reg.create = [](const std::string& text, const std::string& arch, const std::string& origin) {
    std::unique_ptr<PretrainedModel> m = create_model(BertConfig::from_json(text, origin), arch);
    return m;
  };
  reg.load_dir = [](const std::string& dir, const LoadOptions& opt, LoadReport* report) {
    std::unique_ptr<PretrainedModel> m = create_model(dir, opt, report);
    return m;
  };
  register_family(std::move(reg));
}

}  // namespace lmf::models
