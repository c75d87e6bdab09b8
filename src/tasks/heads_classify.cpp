// Text classification as transformers' TextClassificationPipeline: one text or a pair, scores by
// the function HF picks from problem_type / num_labels (or the one asked for), labels sorted.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "heads_util.h"
#include "lmforge/core/error.h"
#include "lmforge/tasks/heads.h"

namespace lmf::tasks {

ScoreFunction parse_score_function(const std::string& name) {
  if (name == "softmax") return ScoreFunction::softmax;
  if (name == "sigmoid") return ScoreFunction::sigmoid;
  if (name == "none") return ScoreFunction::none;
  if (name == "default" || name == "auto") return ScoreFunction::automatic;
  fail<ValueError>("unknown score function '{}'; use softmax, sigmoid, none or default", name);
}

std::string score_function_name(ScoreFunction f) {
  switch (f) {
    case ScoreFunction::softmax:
      return "softmax";
    case ScoreFunction::sigmoid:
      return "sigmoid";
    case ScoreFunction::none:
      return "none";
    case ScoreFunction::automatic:
      break;
  }
  return "default";
}

TextClassification::TextClassification(const std::string& model_dir, const models::LoadOptions& opt)
    : HeadPipeline(model_dir, "classify", {models::EncoderHead::sequence_classification}, opt) {}

ScoreFunction TextClassification::default_function() const {
  const auto& c = model_->config();
  if (c.problem_type == "regression") return ScoreFunction::none;
  if (c.problem_type == "multi_label_classification" || c.num_labels == 1)
    return ScoreFunction::sigmoid;
  if (c.problem_type == "single_label_classification" || c.num_labels > 1)
    return ScoreFunction::softmax;
  return ScoreFunction::none;
}

std::string TextClassification::label(int64_t id) const {
  const auto& m = model_->config().id2label;
  auto it = m.find(id);
  return it != m.end() ? it->second : "LABEL_" + std::to_string(id);
}

std::vector<LabelScore> TextClassification::operator()(std::string_view text,
                                                       std::optional<std::string_view> pair,
                                                       const ClassificationOptions& opt) const {
  const auto out = forward(encode(text, pair, std::nullopt));
  const auto logits = logits_row(out.logits);
  const auto f = opt.function == ScoreFunction::automatic ? default_function() : opt.function;
  std::vector<double> scores(logits.begin(), logits.end());
  if (f == ScoreFunction::softmax) scores = softmax(logits.data(), logits.size());
  if (f == ScoreFunction::sigmoid)
    for (auto& s : scores) s = 1.0 / (1.0 + std::exp(-s));
  std::vector<LabelScore> res;
  for (size_t i = 0; i < scores.size(); ++i)
    res.push_back({label(static_cast<int64_t>(i)), scores[i]});
  std::stable_sort(res.begin(), res.end(),
                   [](const LabelScore& a, const LabelScore& b) { return a.score > b.score; });
  if (opt.top_k && *opt.top_k < res.size()) res.resize(*opt.top_k);
  return res;
}

}  // namespace lmf::tasks
