// evaluate_translation: generate_seq2seq over the sources in batches, BLEU/chrF of the decoded
// translations against the references, eval_loss through the training objective.
#include "lmforge/train/translation_eval.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"
#include "lmforge/tasks/bleu.h"
#include "lmforge/tasks/seq2seq.h"
#include "lmforge/train/translation.h"

namespace lmf::train {

namespace {

// model_type of the folder's config.json ("" when unreadable: loading reports that later).
std::string model_type(const std::string& dir) {
  std::ifstream f(std::filesystem::path(dir) / "config.json");
  if (!f) return "";
  try {
    const nlohmann::json j = nlohmann::json::parse(f);
    return j.value("model_type", std::string());
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

TranslationEvalResult evaluate_translation(const TranslationEvalOptions& o) {
  LMF_CHECK(o.batch_size >= 1, ValueError, "evaluate: batch size {} must be at least 1",
            o.batch_size);
  TranslationData data = read_translation_data(o.data, o.source_lang, o.target_lang);
  if (o.max_examples >= 0 && static_cast<int64_t>(data.pairs.size()) > o.max_examples)
    data.pairs.resize(o.max_examples);
  LMF_CHECK(!data.pairs.empty(), ValueError,
            "evaluate: '{}' holds no pair with both a {} and a {} side to score", o.data,
            o.source_lang, o.target_lang);
  TranslationEvalResult out;
  const std::string type = model_type(o.model_dir);
  if (o.loss && (type == "marian" || type == "bart" || type == "t5")) {  // as finetune's
    TranslationOptions t;
    t.model_dir = o.model_dir;
    t.train_data = o.data;
    t.eval_data = o.data;
    t.source_lang = o.source_lang;
    t.target_lang = o.target_lang;
    t.source_prefix = o.source_prefix;
    t.max_train_examples = 1;
    t.max_eval_examples = o.max_examples;
    t.eval_batch_size = o.batch_size;
    out.metrics = make_translation_objective(t)->evaluate();
  }

  const tasks::Seq2SeqLM lm = tasks::load_seq2seq_lm(o.model_dir);
  tasks::GenerationConfig cfg = lm.generation;
  if (o.num_beams) cfg.num_beams = *o.num_beams;
  if (cfg.num_beams > 1) cfg.do_sample = false;
  cfg.num_return_sequences = 1;
  if (o.max_new_tokens) {
    cfg.max_new_tokens = *o.max_new_tokens;
  } else if (!cfg.max_new_tokens && !cfg.max_length) {
    const int64_t positions = lm.model->spec().max_target_positions;
    cfg.max_new_tokens = positions > 1 ? std::min<int64_t>(128, positions - 1) : 128;
  }
  tasks::GenerateOptions go;
  go.truncate_left = true;

  std::vector<std::vector<int64_t>> sources;
  for (const TranslationPair& p : data.pairs) {
    if (p.pretokenized) {
      LMF_CHECK(lm.tokenizer != nullptr, ValueError,
                "evaluate: {} gives token ids but '{}' has no Marian tokenizer to decode the "
                "references and translations with",
                p.where, o.model_dir);
      sources.push_back(p.source_ids);
      out.sources.push_back(tasks::decode_target_text(lm, p.source_ids));
      out.references.push_back(tasks::decode_target_text(lm, p.target_ids));
    } else {
      sources.push_back(tasks::encode_source_text(lm, o.source_prefix + p.source));
      out.sources.push_back(p.source);
      out.references.push_back(p.target);
    }
  }
  out.hypotheses.resize(sources.size());
  int64_t generated = 0;
  for (size_t b0 = 0; b0 < sources.size(); b0 += o.batch_size) {
    const size_t b1 = std::min(sources.size(), b0 + static_cast<size_t>(o.batch_size));
    const std::vector<std::vector<int64_t>> batch(sources.begin() + b0, sources.begin() + b1);
    const tasks::GenerationResult r = tasks::generate_seq2seq(*lm.model, batch, cfg, go);
    for (const auto& s : r.sequences) {
      std::string& h = out.hypotheses[b0 + s.prompt_index];
      h = tasks::decode_target_text(lm, s.output_ids);
      generated += static_cast<int64_t>(s.output_ids.size());
    }
  }
  const tasks::RefStreams refs{out.references};
  const tasks::BleuScore bleu = tasks::corpus_bleu(out.hypotheses, refs);
  const tasks::ChrfScore chrf = tasks::corpus_chrf(out.hypotheses, refs);
  out.metrics["eval_bleu"] = bleu.score;
  out.metrics["eval_chrf"] = chrf.score;
  out.metrics["eval_gen_len"] =
      static_cast<double>(generated) / static_cast<double>(out.hypotheses.size());
  out.metrics["eval_samples"] = static_cast<double>(out.hypotheses.size());
  out.metrics["eval_skipped_empty"] = static_cast<double>(data.skipped_empty);
  out.bleu_signature = tasks::format_score(bleu);
  out.chrf_signature = tasks::format_score(chrf);
  return out;
}

}  // namespace lmf::train
