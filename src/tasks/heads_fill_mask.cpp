// Fill-mask as transformers' FillMaskPipeline: softmax over the vocabulary at each mask position,
// top-k tokens, and the input decoded with the prediction in place of that mask.
#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "heads_util.h"
#include "lmforge/core/error.h"
#include "lmforge/tasks/heads.h"

namespace lmf::tasks {

using models::EncoderFamily;
using models::EncoderHead;

FillMask::FillMask(const std::string& model_dir, const models::LoadOptions& opt)
    : HeadPipeline(model_dir, "fill-mask", {EncoderHead::masked_lm, EncoderHead::pretraining},
                   opt) {
  LMF_CHECK(
      model_->head() == EncoderHead::masked_lm || model_->config().family != EncoderFamily::electra,
      ValueError,
      "fill-mask: {} is ELECTRA's discriminator (replaced-token detection), not a masked "
      "language model; use the generator (ElectraForMaskedLM)",
      model_->architecture());
  LMF_CHECK(special_.mask_id.has_value(), ValueError,
            "fill-mask: the mask token '{}' is not in the tokenizer of '{}'; set mask_token in "
            "tokenizer_config.json",
            special_.mask_token, model_dir);
}

ResolvedTargets FillMask::resolve_targets(const std::vector<std::string>& targets) const {
  ResolvedTargets r;
  for (const auto& target : targets) {
    if (auto id = tokenizer_.token_to_id(target)) {
      r.ids.push_back(*id);
      continue;
    }
    tok::Encoding enc;
    {
      std::lock_guard<std::mutex> lock(encode_mutex_);
      enc = tokenizer_.encode(target, false);
    }
    if (enc.ids.empty()) {
      r.warnings.push_back(fmt::format(
          "the target \"{}\" is not in the vocabulary and gives no token; ignoring it", target));
      continue;
    }
    r.ids.push_back(enc.ids.front());
    r.warnings.push_back(fmt::format(
        "the target \"{}\" is not in the vocabulary; using its first token \"{}\" instead", target,
        tokenizer_.id_to_token(enc.ids.front()).value_or(enc.tokens.front())));
  }
  std::sort(r.ids.begin(), r.ids.end());
  r.ids.erase(std::unique(r.ids.begin(), r.ids.end()), r.ids.end());
  LMF_CHECK(!r.ids.empty(), ValueError,
            "fill-mask: none of the {} target(s) gives a token of the vocabulary; give words "
            "the tokenizer knows (e.g. --targets paris,london)",
            targets.size());
  return r;
}

std::vector<std::vector<FillMaskPrediction>> FillMask::operator()(
    std::string_view text, const FillMaskOptions& opt) const {
  LMF_CHECK(opt.top_k >= 1, ValueError, "fill-mask: top_k must be >= 1 (got {})", opt.top_k);
  const auto enc = encode(text, std::nullopt, std::nullopt);
  std::vector<size_t> masks;
  for (size_t i = 0; i < enc.ids.size(); ++i)
    if (enc.ids[i] == *special_.mask_id) masks.push_back(i);
  LMF_CHECK(!masks.empty(), ValueError,
            "fill-mask: no mask token ({}) found in the input \"{}\"; write {} where the word to "
            "predict goes",
            special_.mask_token, text, special_.mask_token);
  const auto out = forward(enc);
  const auto logits = logits_row(out.logits);
  const size_t V = static_cast<size_t>(out.logits.size(-1));
  // Candidates: the whole vocabulary, or the target ids.
  std::vector<size_t> candidates;
  if (!opt.targets.empty()) {
    for (uint32_t id : resolve_targets(opt.targets).ids) {
      LMF_CHECK(id < V, ValueError,
                "fill-mask: target token id {} is outside the model's {} output logits", id, V);
      candidates.push_back(id);
    }
  } else {
    candidates.resize(V);
    std::iota(candidates.begin(), candidates.end(), size_t{0});
  }
  const size_t k = std::min(opt.top_k, candidates.size());
  const bool single = masks.size() == 1;

  std::vector<std::vector<FillMaskPrediction>> rows;
  std::vector<size_t> order;
  for (size_t m : masks) {
    const auto probs = softmax(logits.data() + m * V, V);
    order = candidates;
    std::partial_sort(
        order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
        [&](size_t a, size_t b) { return probs[a] != probs[b] ? probs[a] > probs[b] : a < b; });
    std::vector<FillMaskPrediction> row;
    for (size_t r = 0; r < k; ++r) {
      const uint32_t p = static_cast<uint32_t>(order[r]);
      std::vector<uint32_t> ids;
      for (size_t i = 0; i < enc.ids.size(); ++i) {
        const uint32_t id = i == m ? p : enc.ids[i];
        if (special_.pad_id && id == *special_.pad_id) continue;
        ids.push_back(id);
      }
      FillMaskPrediction pred;
      pred.score = probs[p];
      pred.token = p;
      const uint32_t one[1] = {p};
      pred.token_str = tokenizer_.decode(one, false);
      pred.sequence = tokenizer_.decode(ids, single);
      row.push_back(std::move(pred));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace lmf::tasks
