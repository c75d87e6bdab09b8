// Cross-encoder scoring as sentence-transformers' CrossEncoder.predict: each pair encoded
// together, truncated longest-first to the model's length, batched with padding, and the logits
// passed through the model's activation (sigmoid for one label) or a softmax over the labels.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "heads_util.h"
#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/json.h"
#include "lmforge/tasks/heads.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tasks {

namespace {

// config.json's sentence_transformers.activation_fn (a torch class path) as a score function.
ScoreFunction read_config_activation(const std::string& model_dir) {
  const auto path = std::filesystem::path(model_dir) / "config.json";
  const auto cfg = io::read_json_file(path.string());
  if (!cfg.is_object()) return ScoreFunction::automatic;
  auto st = cfg.find("sentence_transformers");
  if (st == cfg.end() || !st->is_object()) return ScoreFunction::automatic;
  auto fn = st->find("activation_fn");
  if (fn == st->end() || !fn->is_string()) return ScoreFunction::automatic;
  const std::string name = fn->get<std::string>();
  const std::string cls =
      name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
  if (cls == "Sigmoid") return ScoreFunction::sigmoid;
  if (cls == "Identity") return ScoreFunction::none;
  fail<ValueError>(
      "cross-encoder: {} names the activation '{}', which lmforge does not know; give "
      "--activation sigmoid, softmax or none",
      path.string(), name);
}

}  // namespace

CrossEncoder::CrossEncoder(const std::string& model_dir, const models::LoadOptions& opt)
    : HeadPipeline(model_dir, "cross-encoder", {models::EncoderHead::sequence_classification},
                   opt) {
  config_activation_ = read_config_activation(model_dir);
}

size_t CrossEncoder::num_labels() const {
  return static_cast<size_t>(std::max<int64_t>(model_->config().num_labels, 1));
}

std::string CrossEncoder::label(int64_t id) const {
  const auto& m = model_->config().id2label;
  auto it = m.find(id);
  return it != m.end() ? it->second : "LABEL_" + std::to_string(id);
}

ScoreFunction CrossEncoder::default_activation() const {
  if (num_labels() > 1) return ScoreFunction::softmax;
  return config_activation_ == ScoreFunction::automatic ? ScoreFunction::sigmoid
                                                        : config_activation_;
}

std::vector<std::vector<double>> CrossEncoder::predict(
    const std::vector<std::pair<std::string, std::string>>& pairs,
    const CrossEncoderOptions& opt) const {
  LMF_CHECK(opt.batch_size >= 1, ValueError, "cross-encoder: batch_size must be >= 1");
  const size_t max_length = opt.max_length.value_or(special_.model_max_length);
  LMF_CHECK(max_length >= 3 && max_length <= special_.max_positions, ValueError,
            "cross-encoder: max_length {} must be between 3 and the model's {} positions",
            max_length, special_.max_positions);
  const auto f = opt.activation == ScoreFunction::automatic ? default_activation() : opt.activation;
  LMF_CHECK(!(f == ScoreFunction::softmax && num_labels() == 1), ValueError,
            "cross-encoder: a softmax over the one label of {} is always 1; use sigmoid or none",
            model_->architecture());
  tok::TruncationParams trunc;
  trunc.max_length = max_length;
  std::vector<tok::Encoding> encs;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const std::string a = tok::sanitize_utf8(pairs[i].first);
    const std::string b = tok::sanitize_utf8(pairs[i].second);
    LMF_CHECK(a.find_first_not_of(" \t\r\n") != std::string::npos &&
                  b.find_first_not_of(" \t\r\n") != std::string::npos,
              ValueError, "cross-encoder: pair {} has an empty text; give two non-empty texts",
              i + 1);
    encs.push_back(encode(a, std::string_view(b), trunc));
  }
  const size_t L = num_labels();
  const int64_t pad =
      special_.pad_id ? static_cast<int64_t>(*special_.pad_id) : model_->config().pad_token_id;
  std::vector<std::vector<double>> scores;
  for (size_t b0 = 0; b0 < encs.size(); b0 += opt.batch_size) {
    const size_t B = std::min(opt.batch_size, encs.size() - b0);
    size_t T = 0;
    for (size_t i = 0; i < B; ++i) T = std::max(T, encs[b0 + i].size());
    std::vector<int64_t> ids(B * T, pad), mask(B * T, 0), types(B * T, 0);
    for (size_t i = 0; i < B; ++i) {
      const auto& e = encs[b0 + i];
      for (size_t t = 0; t < e.size(); ++t) {
        ids[i * T + t] = e.ids[t];
        mask[i * T + t] = t < e.attention_mask.size() ? e.attention_mask[t] : 1;
        types[i * T + t] = t < e.type_ids.size() ? e.type_ids[t] : 0;
      }
    }
    const auto Bt = static_cast<int64_t>(B), Tt = static_cast<int64_t>(T);
    models::EncoderInputs in;
    in.input_ids = Tensor::from_vector(ids, {Bt, Tt});
    in.attention_mask = Tensor::from_vector(mask, {Bt, Tt});
    in.token_type_ids = Tensor::from_vector(types, {Bt, Tt});
    NoGradGuard no_grad;
    const auto logits = logits_row(model_->forward(in).logits);
    LMF_CHECK(logits.size() == B * L, ShapeError,
              "cross-encoder: expected {} logits per pair, the model gave {} for {} pairs", L,
              logits.size(), B);
    for (size_t i = 0; i < B; ++i) {
      const float* x = logits.data() + i * L;
      std::vector<double> s(x, x + L);
      if (f == ScoreFunction::softmax) s = softmax(x, L);
      if (f == ScoreFunction::sigmoid)
        for (auto& v : s) v = 1.0 / (1.0 + std::exp(-v));
      scores.push_back(std::move(s));
    }
  }
  return scores;
}

}  // namespace lmf::tasks
