// Feature creation as transformers' run_glue / run_ner / run_qa scripts, and run_qa's answer
// post-processing.
#include <algorithm>
#include <numeric>

#include "lmforge/core/error.h"
#include "lmforge/tasks/heads.h"
#include "lmforge/tokenizers/unicode.h"
#include "lmforge/tokenizers/byte_level.h"
#include "lmforge/train/finetune.h"

namespace lmf::train {
namespace {

// Sets the tokenizer's truncation and padding for a scope and restores them afterwards.
class TokenizerSettings {
 public:
  TokenizerSettings(tok::Tokenizer& t, std::optional<tok::TruncationParams> trunc)
      : tok_(t), trunc_(t.truncation()), pad_(t.padding()) {
    tok_.set_truncation(std::move(trunc));
    tok_.set_padding(std::nullopt);
  }
  ~TokenizerSettings() {
    tok_.set_truncation(trunc_);
    tok_.set_padding(pad_);
  }
  TokenizerSettings(const TokenizerSettings&) = delete;
  TokenizerSettings& operator=(const TokenizerSettings&) = delete;

 private:
  tok::Tokenizer& tok_;
  std::optional<tok::TruncationParams> trunc_;
  std::optional<tok::PaddingParams> pad_;
};

void copy_ids(const tok::Encoding& e, Feature& f) {
  f.input_ids.assign(e.ids.begin(), e.ids.end());
  f.token_type_ids.assign(e.type_ids.begin(), e.type_ids.end());
}

std::string lstrip(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!tok::is_whitespace(tok::next_char(s, j))) break;
    i = j;
  }
  return s.substr(i);
}

// The CLS index as run_qa finds it: first [CLS] (else BOS) in the ids, else 0.
int64_t cls_index(const tok::Tokenizer& t, const std::vector<int32_t>& ids) {
  for (const char* name : {"[CLS]", "<s>", "<cls>"}) {
    const auto id = t.token_to_id(name);
    if (!id) continue;
    auto it = std::find(ids.begin(), ids.end(), static_cast<int32_t>(*id));
    if (it != ids.end()) return it - ids.begin();
  }
  return 0;
}

}  // namespace

std::vector<Feature> classification_features(tok::Tokenizer& tokenizer, const TextData& data,
                                             const LabelSpace& labels, int64_t max_length) {
  LMF_CHECK(max_length > 0, ValueError, "max_length must be positive, got {}", max_length);
  tok::TruncationParams tp;
  tp.max_length = static_cast<size_t>(max_length);
  TokenizerSettings scope(tokenizer, tp);
  std::vector<Feature> out;
  out.reserve(data.rows.size());
  for (const auto& r : data.rows) {
    Feature f;
    copy_ids(data.has_pair ? tokenizer.encode(r.text, r.text_pair) : tokenizer.encode(r.text), f);
    if (!r.labels.empty()) {
      switch (labels.kind) {
        case LabelKind::regression:
          f.targets = {std::stof(r.labels[0])};
          break;
        case LabelKind::multi_label:
          f.targets.assign(labels.names.size(), 0.0f);
          for (const auto& l : r.labels) f.targets[labels.id(l, r.where)] = 1.0f;
          break;
        default:
          f.label = labels.id(r.labels[0], r.where);
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<Feature> token_classification_features(tok::Tokenizer& tokenizer, const TokenData& data,
                                                   const std::map<std::string, int64_t>& label2id,
                                                   int64_t max_length) {
  TokenizerSettings scope(tokenizer, std::nullopt);
  const tok::PostProcessor* pp = tokenizer.post_processor();
  const size_t added = pp ? pp->added_tokens(false) : 0;
  LMF_CHECK(max_length > static_cast<int64_t>(added), ValueError,
            "max_length {} leaves no room next to the {} special tokens", max_length, added);
  // run_ner loads byte-level BPE tokenizers (RoBERTa, GPT-2) with add_prefix_space=True, so each
  // pre-split word is encoded as if a space preceded it ("ĠParis", as inside a sentence).
  const auto* byte_level = dynamic_cast<const tok::ByteLevelPreTokenizer*>(tokenizer.pre_tokenizer());
  const bool prefix_words = byte_level && !byte_level->add_prefix_space();
  std::vector<Feature> out;
  out.reserve(data.words.size());
  for (size_t s = 0; s < data.words.size(); ++s) {
    // is_split_into_words: each word runs through normalizer, pre-tokenizer and model on its
    // own; every token of word i has word id i (HF's pre-tokenized input).
    std::vector<tok::Encoding> parts;
    for (size_t w = 0; w < data.words[s].size(); ++w) {
      const std::string& word = data.words[s][w];
      tok::Encoding e = tokenizer.encode(prefix_words && !word.starts_with(' ') ? " " + word : word, false);
      for (auto& id : e.word_ids) id = static_cast<uint32_t>(w);
      parts.push_back(std::move(e));
    }
    tok::Encoding enc = tok::Encoding::merge(std::move(parts), false);
    enc.truncate(static_cast<size_t>(max_length) - added, 0, tok::Direction::Right);
    enc.overflowing.clear();
    if (pp) enc = pp->process(std::move(enc), std::nullopt, true);
    Feature f;
    copy_ids(enc, f);
    std::optional<uint32_t> prev;
    for (const auto& w : enc.word_ids) {
      if (!w) {
        f.token_labels.push_back(-100);
      } else if (w != prev) {
        const std::string& tag = data.tags[s][*w];
        auto it = label2id.find(tag);
        LMF_CHECK(it != label2id.end(), ValueError,
                  "{}: unknown tag '{}' (not among the model's {} labels)", data.where[s], tag,
                  label2id.size());
        f.token_labels.push_back(static_cast<int32_t>(it->second));
      } else {
        f.token_labels.push_back(-100);
      }
      prev = w;
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<Feature> qa_features(tok::Tokenizer& tokenizer, const std::vector<QaExample>& examples,
                                 int64_t max_length, int64_t doc_stride) {
  LMF_CHECK(max_length > 0 && doc_stride >= 0, ValueError,
            "bad QA window: max_length {} doc_stride {}", max_length, doc_stride);
  tok::TruncationParams tp;
  tp.max_length = static_cast<size_t>(max_length);
  tp.strategy = tok::TruncationStrategy::OnlySecond;
  tp.stride = static_cast<size_t>(doc_stride);
  TokenizerSettings scope(tokenizer, tp);
  std::vector<Feature> out;
  for (size_t ex = 0; ex < examples.size(); ++ex) {
    const QaExample& e = examples[ex];
    tok::Encoding first = tokenizer.encode(lstrip(e.question), e.context);
    std::vector<tok::Encoding> windows;
    std::vector<tok::Encoding> overflow = std::move(first.overflowing);
    first.overflowing.clear();
    windows.push_back(std::move(first));
    for (auto& o : overflow) windows.push_back(std::move(o));
    for (const auto& w : windows) {
      Feature f;
      copy_ids(w, f);
      f.example_index = static_cast<int64_t>(ex);
      const auto seq = w.sequence_ids();
      const int64_t n = static_cast<int64_t>(w.size());
      f.offsets.resize(w.size(), {-1, -1});
      for (int64_t i = 0; i < n; ++i)
        if (seq[i] == 1u)
          f.offsets[i] = {static_cast<int32_t>(w.offsets[i].first),
                          static_cast<int32_t>(w.offsets[i].second)};
      const int64_t cls = cls_index(tokenizer, f.input_ids);
      f.start_position = f.end_position = cls;
      if (e.answer_starts.empty()) {
        out.push_back(std::move(f));
        continue;
      }
      const int64_t start_char = e.answer_starts[0];
      const int64_t end_char =
          start_char + static_cast<int64_t>(tok::utf8_char_count(e.answer_texts[0]));
      int64_t ts = 0;
      while (ts < n && seq[ts] != 1u) ++ts;
      int64_t te = n - 1;
      while (te >= 0 && seq[te] != 1u) --te;
      const auto off = [&](int64_t i) { return w.offsets[i]; };
      const bool inside = ts < n && te >= 0 && static_cast<int64_t>(off(ts).first) <= start_char &&
                          static_cast<int64_t>(off(te).second) >= end_char;
      if (inside) {
        while (ts < n && static_cast<int64_t>(off(ts).first) <= start_char) ++ts;
        f.start_position = ts - 1;
        while (static_cast<int64_t>(off(te).second) >= end_char) --te;
        f.end_position = te + 1;
      }
      out.push_back(std::move(f));
    }
  }
  return out;
}

std::vector<Feature> multiple_choice_features(tok::Tokenizer& tokenizer,
                                              const std::vector<ChoiceRow>& rows,
                                              int64_t max_length) {
  LMF_CHECK(max_length > 0, ValueError, "max_length must be positive, got {}", max_length);
  tok::TruncationParams tp;
  tp.max_length = static_cast<size_t>(max_length);
  TokenizerSettings scope(tokenizer, tp);
  std::vector<Feature> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    Feature f;
    f.label = r.label >= 0 ? r.label : -100;
    for (const auto& e : r.endings) {
      Feature c;
      copy_ids(tokenizer.encode(r.context, r.question.empty() ? e : r.question + " " + e), c);
      f.choices.push_back(std::move(c));
    }
    out.push_back(std::move(f));
  }
  return out;
}

namespace {

// np.argsort(x)[-1 : -n - 1 : -1]: the n largest, largest first (equal values: later first).
std::vector<int64_t> top_indices(const std::vector<float>& x, int64_t n) {
  std::vector<int64_t> idx(x.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return x[a] != x[b] ? x[a] > x[b] : a > b; });
  if (static_cast<int64_t>(idx.size()) > n) idx.resize(n);
  return idx;
}

struct Candidate {
  int32_t begin = 0, end = 0;
  double score = 0, start_logit = 0, end_logit = 0;
  std::string text;
};

}  // namespace

std::vector<std::string> postprocess_qa_predictions(
    const std::vector<QaExample>& examples, const std::vector<Feature>& features,
    const std::vector<std::vector<float>>& start_logits,
    const std::vector<std::vector<float>>& end_logits, const QaPostprocessOptions& opt) {
  LMF_CHECK(start_logits.size() == features.size() && end_logits.size() == features.size(),
            ValueError, "postprocess_qa_predictions: {} features but {} / {} logit rows",
            features.size(), start_logits.size(), end_logits.size());
  std::vector<std::vector<size_t>> per_example(examples.size());
  for (size_t i = 0; i < features.size(); ++i) {
    const int64_t ex = features[i].example_index;
    LMF_CHECK(ex >= 0 && ex < static_cast<int64_t>(examples.size()), IndexError,
              "feature {} belongs to example {} of {}", i, ex, examples.size());
    per_example[ex].push_back(i);
  }
  std::vector<std::string> out;
  out.reserve(examples.size());
  for (size_t ex = 0; ex < examples.size(); ++ex) {
    std::optional<Candidate> null_pred;
    std::vector<Candidate> prelim;
    for (size_t fi : per_example[ex]) {
      const auto& sl = start_logits[fi];
      const auto& el = end_logits[fi];
      const auto& offsets = features[fi].offsets;
      const double null_score = static_cast<double>(sl[0]) + el[0];
      if (!null_pred || null_pred->score > null_score)
        null_pred = Candidate{0, 0, null_score, sl[0], el[0], ""};
      const int64_t n_off = static_cast<int64_t>(offsets.size());
      for (int64_t s : top_indices(sl, opt.n_best_size)) {
        for (int64_t e : top_indices(el, opt.n_best_size)) {
          if (s >= n_off || e >= n_off || offsets[s].first < 0 || offsets[e].first < 0) continue;
          if (e < s || e - s + 1 > opt.max_answer_length) continue;
          prelim.push_back(Candidate{offsets[s].first, offsets[e].second,
                                     static_cast<double>(sl[s]) + el[e], sl[s], el[e], ""});
        }
      }
    }
    if (opt.version_2_with_negative && null_pred) prelim.push_back(*null_pred);
    std::stable_sort(prelim.begin(), prelim.end(),
                     [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
    if (static_cast<int64_t>(prelim.size()) > opt.n_best_size) prelim.resize(opt.n_best_size);
    if (opt.version_2_with_negative && null_pred &&
        std::none_of(prelim.begin(), prelim.end(),
                     [](const Candidate& c) { return c.begin == 0 && c.end == 0; }))
      prelim.push_back(*null_pred);
    for (auto& c : prelim) c.text = tasks::substr_code_points(examples[ex].context, c.begin, c.end);
    if (prelim.empty() || (prelim.size() == 1 && prelim[0].text.empty()))
      prelim.insert(prelim.begin(), Candidate{0, 0, 0, 0, 0, "empty"});
    if (!opt.version_2_with_negative) {
      out.push_back(prelim[0].text);
      continue;
    }
    size_t i = 0;
    while (i + 1 < prelim.size() && prelim[i].text.empty()) ++i;
    const Candidate& best = prelim[i];
    const double diff = null_pred->score - best.start_logit - best.end_logit;
    out.push_back(diff > opt.null_score_diff_threshold ? "" : best.text);
  }
  return out;
}

}  // namespace lmf::train
