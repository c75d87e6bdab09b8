// Evaluation metrics with the reference libraries' exact semantics: scikit-learn (accuracy,
// precision/recall/F1 with zero_division=0), seqeval (entity-level scores, default mode), the
// official SQuAD v1.1/v2.0 scripts (EM/F1) and scipy (Pearson, Spearman with average ranks).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace lmf::train {

// Fraction of positions where y_true == y_pred (sklearn accuracy_score); 0 for empty input.
// ValueError when the lengths differ.
double accuracy(std::span<const int64_t> y_true, std::span<const int64_t> y_pred);

struct PrecisionRecallF1 {
  double precision = 0, recall = 0, f1 = 0;
};

enum class Average { macro, micro, weighted };

// sklearn precision_recall_fscore_support(average=...) with zero_division=0 over the labels that
// occur in y_true or y_pred (sorted). Macro: unweighted mean over labels; micro: from the summed
// counts; weighted: mean weighted by each label's support.
PrecisionRecallF1 precision_recall_f1(std::span<const int64_t> y_true,
                                      std::span<const int64_t> y_pred, Average average);
// Multi-label indicator matrices (rows of 0/1, one column per label, as sklearn's y of shape
// [n_samples, n_labels]); every column counts as a label.
PrecisionRecallF1 precision_recall_f1_multilabel(const std::vector<std::vector<int>>& y_true,
                                                 const std::vector<std::vector<int>>& y_pred,
                                                 Average average);

// seqeval.metrics.sequence_labeling.get_entities: (type, first, last) chunks of a tag sequence,
// tolerant of IOB1/IOB2/IOE/BIOES as seqeval's default (non-strict) mode.
using Entity = std::tuple<std::string, int64_t, int64_t>;
std::vector<Entity> get_entities(const std::vector<std::string>& tags);

struct SeqevalScores {
  double precision = 0, recall = 0, f1 = 0;  // entity-level, micro over types ("overall_*")
  double accuracy = 0;                       // token-level accuracy over all tags
};
// seqeval precision_score / recall_score / f1_score / accuracy_score on sentences of tags
// (sentences are joined with an "O" between them as seqeval does). ValueError when the
// sentence counts or lengths differ.
SeqevalScores seqeval_scores(const std::vector<std::vector<std::string>>& y_true,
                             const std::vector<std::vector<std::string>>& y_pred);

// The official SQuAD normalisation: lower case, drop ASCII punctuation, drop the words a/an/the,
// collapse whitespace.
std::string squad_normalize_answer(const std::string& s);
// One prediction against one gold answer. v2 semantics (version_2 = true): when either
// normalises to no tokens, F1 is 1 if both do, else 0 (v1.1 gives 0).
double squad_exact(const std::string& prediction, const std::string& gold);
double squad_f1(const std::string& prediction, const std::string& gold, bool version_2 = false);

struct SquadScores {
  double exact_match = 0, f1 = 0;  // percentages (0..100), as HF's squad metric
};
// Mean over questions of the max over each question's gold answers. An empty gold list means
// unanswerable (v2: the gold answer is ""). ValueError when the counts differ.
SquadScores squad_scores(const std::vector<std::string>& predictions,
                         const std::vector<std::vector<std::string>>& golds,
                         bool version_2 = false);

// scipy.stats.pearsonr / spearmanr statistic (ties get average ranks). NaN when a side is
// constant (as scipy). ValueError when the lengths differ or fewer than 2 values.
double pearson(std::span<const double> x, std::span<const double> y);
double spearman(std::span<const double> x, std::span<const double> y);
// Average (fractional) ranks starting at 1, as scipy.stats.rankdata(method="average").
std::vector<double> rank_average(std::span<const double> x);

}  // namespace lmf::train
