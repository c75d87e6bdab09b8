// lmforge translate: encoder-decoder translation (Marian, BART folders) as transformers'
// generate() does for them, with the decoding flags of generate and an attention heatmap writer.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "lmforge/core/error.h"
#include "lmforge/tasks/seq2seq.h"
#include "sampling_flags.h"

namespace lmf::cli {

namespace {

struct TranslateCmd {
  std::string model;
  InputOptions in;
  SamplingFlags flags;
  bool json = false, truncate = false;
  int64_t batch_size = 16;
  std::string heatmap, source_ids;
  std::string target_lang, source_prefix;
};

// The text put before every source: --source-prefix, then --target-lang's ">>xx<< " token.
std::string source_prefix(const tasks::Seq2SeqLM& lm, const TranslateCmd& o) {
  return o.source_prefix + tasks::target_language_prefix(lm, o.target_lang);
}

// --attention-heatmap OUT.html|OUT.png for input i (0-based): OUT.html for the first, OUT-2.html,
// ...
std::string heatmap_path(const std::string& base, size_t i) {
  if (i == 0) return base;
  const std::filesystem::path p(base);
  return (p.parent_path() /
          (p.stem().string() + "-" + std::to_string(i + 1) + p.extension().string()))
      .string();
}

// The hidden --source-ids option: a JSON array of arrays of source token ids.
std::vector<std::vector<int64_t>> parse_source_ids(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail<ValueError>("--source-ids: not JSON ({}); give e.g. [[5, 17, 0], [33, 0]]", e.what());
  }
  LMF_CHECK(j.is_array() && !j.empty(), ValueError,
            "--source-ids: expected a non-empty JSON array of arrays of token ids");
  std::vector<std::vector<int64_t>> out;
  for (const auto& row : j) {
    LMF_CHECK(row.is_array(), ValueError,
              "--source-ids: each entry must be an array of ids, got {}", row.dump());
    std::vector<int64_t> ids;
    for (const auto& t : row) {
      LMF_CHECK(t.is_number_integer(), ValueError, "--source-ids: {} is not a token id", t.dump());
      ids.push_back(t.get<int64_t>());
    }
    out.push_back(std::move(ids));
  }
  return out;
}

bool blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n") == std::string::npos;
}

int run_translate(const TranslateCmd& o) {
  LMF_CHECK(o.batch_size >= 1, ValueError, "--batch-size {} must be at least 1", o.batch_size);
  tasks::Seq2SeqLM lm = tasks::load_seq2seq_lm(o.model);
  const tasks::GenerationConfig cfg = apply_flags(lm.generation, o.flags);
  LMF_CHECK(cfg.stop_strings.empty(), ValueError, "--stop is not supported by translate");
  // The inputs: texts through the tokenizer, or ids (--source-ids).
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> ids;
  if (!o.source_ids.empty()) {
    LMF_CHECK(o.in.args.empty() && o.in.file.empty(), ValueError,
              "--source-ids replaces the texts: give one or the other");
    ids = parse_source_ids(o.source_ids);
    texts.assign(ids.size(), "");
  } else {
    texts = read_inputs(o.in, "text");
    const std::string prefix = source_prefix(lm, o);
    for (size_t i = 0; i < texts.size(); ++i) {
      check_utf8(texts[i], fmt::format("input {}", i + 1));
      // An empty text has nothing to translate: it gives an empty translation.
      ids.push_back(blank(texts[i]) ? std::vector<int64_t>{}
                                    : tasks::encode_source_text(lm, prefix + texts[i]));
    }
  }
  SigintScope sigint;
  tasks::GenerateOptions go;
  go.cancel = &g_cancel;
  go.truncate_left = o.truncate;
  const int64_t n = static_cast<int64_t>(ids.size());
  for (int64_t b0 = 0; b0 < n; b0 += o.batch_size) {
    // The non-empty inputs of this batch go to the model together.
    std::vector<int64_t> which;
    std::vector<std::vector<int64_t>> batch;
    for (int64_t i = b0; i < std::min(n, b0 + o.batch_size); ++i)
      if (!ids[i].empty()) {
        which.push_back(i);
        batch.push_back(ids[i]);
      }
    tasks::GenerationResult r;
    if (!batch.empty()) r = tasks::generate_seq2seq(*lm.model, batch, cfg, go);
    std::vector<std::vector<const tasks::GeneratedSequence*>> per(o.batch_size);
    for (const auto& s : r.sequences) per[which[s.prompt_index] - b0].push_back(&s);
    for (int64_t i = b0; i < std::min(n, b0 + o.batch_size); ++i) {
      const auto& seqs = per[i - b0];
      if (seqs.empty()) {  // an empty input
        if (o.json)
          fmt::print("{}\n", nlohmann::json{{"index", i},
                                            {"source", texts[i]},
                                            {"source_ids", nlohmann::json::array()},
                                            {"output_ids", nlohmann::json::array()},
                                            {"text", ""},
                                            {"finish_reason", "empty"}}
                                 .dump());
        else
          fmt::print("\n");
        continue;
      }
      for (size_t k = 0; k < seqs.size(); ++k) {
        const tasks::GeneratedSequence& s = *seqs[k];
        const std::string text =
            lm.has_tokenizer() ? tasks::decode_target_text(lm, s.output_ids) : "";
        if (o.json) {
          nlohmann::json j{{"index", i},
                           {"source", texts[i]},
                           {"source_ids", s.prompt_ids},
                           {"output_ids", s.output_ids},
                           {"text", text},
                           {"finish_reason", s.finish_reason}};
          if (seqs.size() > 1) j["rank"] = k;
          if (s.score) j["score"] = *s.score;
          fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        } else if (lm.has_tokenizer()) {
          fmt::print("{}\n", text);
        } else {
          fmt::print("{}\n", nlohmann::json(s.output_ids).dump());
        }
      }
      if (!o.heatmap.empty()) {
        // Teacher-forced over the best translation: rows are the decoder inputs (start token
        // and the output but its last token), each predicting the next output token.
        const auto& best = seqs[0]->output_ids;
        std::vector<int64_t> dec = {
            cfg.decoder_start_token_id.value_or(lm.model->spec().decoder_start_token_id)};
        dec.insert(dec.end(), best.begin(), best.end() - (best.empty() ? 0 : 1));
        const tasks::Seq2SeqAttention a =
            tasks::seq2seq_attention(*lm.model, seqs[0]->prompt_ids, dec);
        const std::string path = heatmap_path(o.heatmap, static_cast<size_t>(i));
        tasks::write_attention_heatmap(path, a, tasks::token_labels(lm, seqs[0]->prompt_ids),
                                       tasks::token_labels(lm, dec),
                                       texts[i].empty() ? "attention" : texts[i]);
        fmt::print(stderr, "wrote {}\n", path);
      }
    }
    if (g_cancel.load()) return 130;
  }
  return 0;
}

}  // namespace

void register_translate_command(CLI::App& app, Commands& out) {
  auto o = std::make_shared<TranslateCmd>();
  auto* sub = app.add_subcommand(
      "translate",
      "Translate texts with an encoder-decoder model (a Marian folder: MarianMTModel weights,\n"
      "config.json, generation_config.json, source.spm/target.spm/vocab.json; a BART folder:\n"
      "BartForConditionalGeneration weights with tokenizer.json or vocab.json + merges.txt; or a\n"
      "T5 folder with tokenizer.json or spiece.model: give T5's task prefix in the text, e.g.\n"
      "\"translate English to German: ...\"), as\n"
      "transformers' generate() does for it: the sources are tokenized with their special\n"
      "tokens (</s>; BART: <s> ... </s>), padded into\n"
      "batches and encoded once; the decoder starts from decoder_start_token_id, caches the\n"
      "cross-attention keys/values once and its self-attention per step. The folder's\n"
      "generation_config.json gives the defaults (Opus-MT: 4 beams, pad suppressed through\n"
      "bad_words_ids, forced </s> at max_length); the flags override them.\n"
      "Prints one translation per line (every returned sequence with --num-return-sequences).\n"
      "An empty argument or a blank line of --file / standard input gives an empty\n"
      "translation, so the output stays line-aligned with the input (for lmforge bleu).\n"
      "Examples:\n"
      "  lmforge translate --model opus-mt-en-fr \"A man is riding a bike.\"\n"
      "  lmforge translate --model DIR --num-beams 4 --file test.en > hyp.fr\n"
      "  lmforge translate --model DIR --json --attention-heatmap att.html \"Two dogs play.\"");
  sub->add_option("--model", o->model, "the model folder")->required();
  sub->add_option("texts", o->in.args, "texts to translate (else --file or standard input)");
  add_input_options(sub, o->in);
  o->in.keep_blank_lines = true;
  sub->add_flag("--json", o->json,
                "one JSON object per translation: index, source, source_ids, output_ids (the "
                "generated ids without the decoder start token), text, finish_reason, and with "
                "beams score and rank");
  sub->add_option(
      "--attention-heatmap", o->heatmap,
      "write encoder self-, decoder self- and cross-attention of each translation "
      "(per layer and head, labelled with the tokens) to this file (the 2nd input to "
      "OUT-2.html, ...): OUT.html is self-contained (inline SVG, no JavaScript or downloads); "
      "OUT.png is an image, a grid of panels per attention kind, layer and head with axes "
      "labelled by token index and a legend listing the tokens");
  sub->add_flag("--truncate", o->truncate,
                "cut a source longer than the model's positions (keeping its </s>) instead of "
                "failing (T5's relative positions have no limit: nothing is cut)");
  sub->add_option("--target-lang", o->target_lang,
                  "multilingual Marian folders (e.g. opus-mt-en-ROMANCE): the target language, "
                  "put before every source as its >>CODE<< token, as those models expect; an "
                  "unknown code is an error listing the folder's");
  sub->add_option("--source-prefix", o->source_prefix,
                  "text put before every source (T5: \"translate English to French: \")");
  sub->add_option("--batch-size", o->batch_size, "sources translated together (default 16)");
  sub->add_option("--source-ids", o->source_ids,
                  "JSON array of source id arrays instead of texts (for tests)")
      ->group("");
  add_sampling_flags(sub, o->flags);
  sub->footer(std::string(kSamplingHelp) +
              "\nFor translation the processors also include bad_words_ids and forced BOS/EOS "
              "tokens, and max_length counts the decoder start token, as in transformers.\n"
              "\nExit status: 0 done, 2 bad input or model (one-line error), 130 interrupted "
              "(Ctrl-C).\n");
  out.push_back({sub, [o] { return run_translate(*o); }});
}

}  // namespace lmf::cli
