// Extractive question answering as transformers' QuestionAnsweringPipeline (fast tokenizer path):
// doc-stride windows, p_mask over everything but the context (CLS kept in the softmax), spans
// start <= end < start + max_answer_len scored by start_prob * end_prob, aligned to words.
#include <algorithm>
#include <cmath>
#include <limits>

#include "heads_util.h"
#include "lmforge/core/error.h"
#include "lmforge/tasks/heads.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tasks {

namespace {

struct Span {
  size_t s, e;
  double score;
};

// Softmax with every undesired position at -10000 (as HF), then the CLS position zeroed.
std::vector<double> masked_probs(const std::vector<float>& logits,
                                 const std::vector<uint8_t>& desired) {
  std::vector<float> x(logits.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = desired[i] ? logits[i] : -10000.0f;
  return softmax(x.data(), x.size());
}

}  // namespace

QuestionAnswering::QuestionAnswering(const std::string& model_dir, const models::LoadOptions& opt)
    : HeadPipeline(model_dir, "qa", {models::EncoderHead::question_answering}, opt) {}

std::vector<Answer> QuestionAnswering::operator()(std::string_view raw_question,
                                                  std::string_view raw_context,
                                                  const QuestionAnsweringOptions& opt) const {
  const std::string question = tok::sanitize_utf8(raw_question);
  const std::string context = tok::sanitize_utf8(raw_context);
  LMF_CHECK(!question.empty(), ValueError, "qa: the question is empty; give --question TEXT");
  LMF_CHECK(!context.empty(), ValueError, "qa: the context is empty; give --context TEXT");
  LMF_CHECK(opt.top_k >= 1, ValueError, "qa: top_k must be >= 1 (got {})", opt.top_k);
  LMF_CHECK(opt.max_answer_len >= 1, ValueError, "qa: max_answer_len must be >= 1 (got {})",
            opt.max_answer_len);
  const size_t max_seq_len =
      opt.max_seq_len.value_or(std::min<size_t>(special_.model_max_length, 384));
  LMF_CHECK(max_seq_len >= 1 && max_seq_len <= special_.max_positions, ValueError,
            "qa: max_seq_len {} must be between 1 and the model's {} positions", max_seq_len,
            special_.max_positions);
  const size_t doc_stride = opt.doc_stride.value_or(std::min<size_t>(max_seq_len / 2, 128));
  LMF_CHECK(doc_stride <= max_seq_len, ValueError,
            "qa: doc_stride ({}) is larger than max_seq_len ({})", doc_stride, max_seq_len);

  tok::TruncationParams trunc;
  trunc.max_length = max_seq_len;
  trunc.strategy = tok::TruncationStrategy::OnlySecond;
  trunc.stride = doc_stride;
  tok::Encoding first;
  try {
    first = encode(question, std::string_view(context), trunc);
  } catch (const ValueError& e) {
    fail<ValueError>(
        "qa: cannot split the context into windows of {} tokens with a stride of {} ({}); "
        "use a shorter question, a larger max_seq_len or a smaller doc_stride",
        max_seq_len, doc_stride, e.what());
  }
  std::vector<const tok::Encoding*> windows{&first};
  for (const auto& o : first.overflowing) windows.push_back(&o);
  windows_ = windows.size();

  const size_t pre_topk = opt.align_to_words ? opt.top_k * 2 + 10 : opt.top_k;
  double min_null = 1e6;
  std::vector<Answer> answers;
  std::vector<std::string> answers_lower;
  for (const tok::Encoding* w : windows) {
    const auto out = forward(*w);
    const size_t T = w->size();
    const auto seq = w->sequence_ids();
    std::vector<uint8_t> desired(T, 0);
    for (size_t i = 0; i < T; ++i) {
      const bool context_tok = seq[i] && *seq[i] == 1;
      const bool cls = special_.cls_id && w->ids[i] == *special_.cls_id;
      const bool attended = i >= w->attention_mask.size() || w->attention_mask[i];
      desired[i] = (context_tok || cls) && attended;
    }
    auto start = masked_probs(logits_row(out.start_logits), desired);
    auto end = masked_probs(logits_row(out.end_logits), desired);
    if (opt.handle_impossible_answer) min_null = std::min(min_null, start[0] * end[0]);
    start[0] = end[0] = 0.0;

    std::vector<Span> spans;
    for (size_t s = 1; s < T; ++s) {
      if (!desired[s] || start[s] <= 0) continue;
      for (size_t e = s; e < std::min(T, s + opt.max_answer_len); ++e)
        if (desired[e] && end[e] > 0) spans.push_back({s, e, start[s] * end[e]});
    }
    const size_t k = std::min(pre_topk, spans.size());
    std::partial_sort(
        spans.begin(), spans.begin() + static_cast<std::ptrdiff_t>(k), spans.end(),
        [](const Span& a, const Span& b) {
          return a.score != b.score ? a.score > b.score : a.s != b.s ? a.s < b.s : a.e < b.e;
        });
    spans.resize(k);

    for (const Span& sp : spans) {
      size_t b = w->offsets[sp.s].first, e = w->offsets[sp.e].second;
      if (opt.align_to_words && w->word_ids[sp.s] && w->word_ids[sp.e]) {
        // word_to_chars within this window: first and last context token of each word.
        const uint32_t ws = *w->word_ids[sp.s], we = *w->word_ids[sp.e];
        bool found_s = false;
        for (size_t i = 0; i < T; ++i) {
          if (!seq[i] || *seq[i] != 1 || !w->word_ids[i]) continue;
          if (*w->word_ids[i] == ws && !found_s) b = w->offsets[i].first, found_s = true;
          if (*w->word_ids[i] == we) e = w->offsets[i].second;
        }
      }
      std::string text = substr_code_points(context, b, e);
      std::string lower = lowercase(text);
      auto it = std::find(answers_lower.begin(), answers_lower.end(), lower);
      if (it != answers_lower.end()) {
        answers[static_cast<size_t>(it - answers_lower.begin())].score += sp.score;
      } else {
        answers.push_back({sp.score, b, e, std::move(text)});
        answers_lower.push_back(std::move(lower));
      }
    }
  }
  if (opt.handle_impossible_answer) answers.push_back({min_null, 0, 0, ""});
  std::stable_sort(answers.begin(), answers.end(),
                   [](const Answer& a, const Answer& b) { return a.score > b.score; });
  if (answers.size() > opt.top_k) answers.resize(opt.top_k);
  return answers;
}

}  // namespace lmf::tasks
