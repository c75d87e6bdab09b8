// Encoder-decoder generation on the shared search loops (generate_search.h): a Stepper that
// encodes the padded sources once and decodes one cached token per step; attention extraction
// and the HTML heatmap writer.
#include "lmforge/tasks/seq2seq.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>

#include "generate_search.h"
#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/models/registry.h"
#include "lmforge/ops/ops.h"
#include "lmforge/tasks/heatmap_png.h"
#include "lmforge/tasks/markup.h"
#include "lmforge/tokenizers/marian.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tasks {

namespace {

// The last position's logits [rows, V] as a fresh f32 tensor (the model's own output when
// nothing else holds it: a decode step's logits are not copied).
Tensor last_logits(models::Seq2SeqOutput&& out, int64_t rows, int64_t vocab) {
  LMF_CHECK(out.logits.defined() && out.logits.dim() == 3 && out.logits.size(0) == rows &&
                out.logits.size(2) == vocab,
            ShapeError, "generate_seq2seq: the model returned logits {} for {} rows and vocab {}",
            out.logits.defined() ? out.logits.describe() : "none", rows, vocab);
  Tensor last = out.logits.select(1, out.logits.size(1) - 1).to(DType::f32).contiguous();
  out.logits = Tensor();
  if (last.handle_count() == 1 && last.storage().use_count() == 1) return last;
  return last.clone();
}

// Row i of the result is row rows[i] of `t`.
Tensor pick_rows(const Tensor& t, const std::vector<int64_t>& rows) {
  if (!t.defined()) return t;
  std::vector<Tensor> picked;
  for (int64_t r : rows) picked.push_back(t.select(0, r));
  return stack(picked, 0);
}

class Seq2SeqSteps : public detail::Stepper {
 public:
  Seq2SeqSteps(const models::EncoderDecoderModel& m, Tensor src, Tensor src_mask)
      : model_(m), spec_(m.spec()), src_(std::move(src)), src_mask_(std::move(src_mask)) {}
  void start(int64_t rows, int64_t capacity) override {
    rows_ = rows;
    // max_len counts the start token and the last token is never fed: max_len - 1 positions.
    const int64_t P = spec_.max_target_positions;
    cache_ = model_.make_cache(rows, P > 0 ? std::min(capacity, P) : capacity);
  }
  Tensor first(const detail::PromptRows& pr, int64_t L) override {
    // The encoder runs once over the B sources; its output and mask serve every copy of a row.
    // Each source's row serves its `per` decoder rows as it is (Seq2SeqInputs: grouped encoder
    // states): the cross-attention keys/values are computed and read once per source.
    const models::EncoderOutput enc = model_.encode_for_decoder(src_, src_mask_);
    in_.encoder_hidden_states = enc.last_hidden_state;
    in_.attention_mask = src_mask_;
    in_.encoder_row_group = rows_ / src_.size(0);
    in_.cache = &cache_;
    in_.logits_to_keep = 1;
    in_.decoder_input_ids = Tensor::from_vector(pr.ids, {rows_, L});
    return last_logits(model_.forward(in_), rows_, spec_.vocab_size);
  }
  Tensor step(const std::vector<int64_t>& next, const std::vector<int64_t>& /*mask*/,
              int64_t /*cur_len*/) override {
    in_.decoder_input_ids = Tensor::from_vector(next, {rows_, 1});
    return last_logits(model_.forward(in_), rows_, spec_.vocab_size);
  }
  // Beams only move within their source's rows: the encoder output and mask rows stay valid, and
  // so do the cross-attention keys/values (one per source); only the self-attention cache moves
  // then (Seq2SeqCache::reorder keeps the shared cross keys/values).
  void reorder(const std::vector<int64_t>& rows) override {
    const int64_t group = in_.encoder_row_group;
    const bool within = models::rows_stay_in_groups(rows, group, rows_);
    cache_.reorder(rows);
    if (within) return;
    // Otherwise every row gets its own copy of its source's encoder states and mask, as the
    // cache's cross keys/values did.
    std::vector<int64_t> src_rows(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) src_rows[i] = rows[i] / group;
    in_.encoder_hidden_states = pick_rows(in_.encoder_hidden_states, src_rows);
    in_.attention_mask = pick_rows(in_.attention_mask, src_rows);
    in_.encoder_row_group = 1;
    rows_ = static_cast<int64_t>(rows.size());
  }
  size_t cache_bytes() const override { return cache_.bytes(); }
  int64_t cache_capacity() const override { return cache_.self.capacity(); }

 private:
  const models::EncoderDecoderModel& model_;
  models::Seq2SeqSpec spec_;
  Tensor src_, src_mask_;
  int64_t rows_ = 0;
  models::Seq2SeqCache cache_;
  models::Seq2SeqInputs in_;
};

}  // namespace

std::string target_language_prefix(const Seq2SeqLM& lm, const std::string& lang) {
  if (lang.empty()) return "";
  LMF_CHECK(lm.tokenizer != nullptr, ValueError,
            "--target-lang picks the >>{}<< token of a multilingual Marian folder, but '{}' has "
            "no Marian tokenizer (source.spm, target.spm, vocab.json); for T5 use --source-prefix",
            lang, lm.source);
  const std::vector<std::string>& codes = lm.tokenizer->supported_language_codes();
  LMF_CHECK(!codes.empty(), ValueError,
            "'{}' translates into one language only: its vocabulary has no >>xx<< target-language "
            "tokens; drop --target-lang {}",
            lm.source, lang);
  const std::string token = ">>" + lang + "<<";
  if (std::find(codes.begin(), codes.end(), token) == codes.end()) {
    std::vector<std::string> shown;
    for (const std::string& c : codes) {
      if (shown.size() == 30) break;
      shown.push_back(c.size() > 4 ? c.substr(2, c.size() - 4) : c);
    }
    fail<ValueError>("--target-lang {}: '{}' has no {} token; its {} target languages are {}{}",
                     lang, lm.source, token, codes.size(), fmt::join(shown, ", "),
                     codes.size() > shown.size() ? ", ..." : "");
  }
  return token + " ";
}

Seq2SeqLM load_seq2seq_lm(const std::string& dir) {
  Seq2SeqLM lm;
  lm.model = models::load_pretrained_as<models::EncoderDecoderModel>(
      dir,
      "an encoder-decoder (MarianMTModel, BartForConditionalGeneration, "
      "T5ForConditionalGeneration, ...)");
  LMF_CHECK(lm.model->is_seq2seq_lm(), ValueError,
            "{} holds a {} without a language-model head; translation needs a "
            "*ForConditionalGeneration / MarianMTModel checkpoint (T5ForConditionalGeneration, "
            "not T5Model / T5EncoderModel)",
            dir, lm.model->architecture());
  lm.model->eval();
  lm.model->prepare_inference();
  lm.generation = GenerationConfig::from_pretrained(dir);
  lm.source = dir;
  const std::filesystem::path d(dir);
  if (std::filesystem::exists(d / "source.spm") && std::filesystem::exists(d / "target.spm") &&
      std::filesystem::exists(d / "vocab.json"))
    lm.tokenizer =
        std::make_shared<const tok::MarianTokenizer>(tok::MarianTokenizer::from_folder(dir));
  else if (std::filesystem::exists(d / "tokenizer.json") ||
           (std::filesystem::exists(d / "vocab.json") &&
            std::filesystem::exists(d / "merges.txt")) ||
           std::filesystem::exists(d / "spiece.model"))
    lm.text_tokenizer = std::make_shared<const tok::Tokenizer>(tok::Tokenizer::from_pretrained(d));
  return lm;
}

namespace {
void need_tokenizer(const Seq2SeqLM& lm) {
  LMF_CHECK(lm.has_tokenizer(), ValueError,
            "{}: this folder has no tokenizer (Marian's source.spm/target.spm/vocab.json, "
            "tokenizer.json, vocab.json + merges.txt or spiece.model); give token ids instead or "
            "add the tokenizer files",
            lm.source);
}
}  // namespace

std::vector<int64_t> encode_source_text(const Seq2SeqLM& lm, const std::string& text) {
  need_tokenizer(lm);
  if (lm.tokenizer) return lm.tokenizer->encode_source(text);
  const std::vector<uint32_t> ids = lm.text_tokenizer->encode(text).ids;
  return {ids.begin(), ids.end()};
}

std::string decode_target_text(const Seq2SeqLM& lm, const std::vector<int64_t>& ids) {
  need_tokenizer(lm);
  if (lm.tokenizer) return lm.tokenizer->decode(ids, true);
  std::vector<uint32_t> u;
  for (int64_t id : ids) {
    LMF_CHECK(id >= 0 && id <= static_cast<int64_t>(UINT32_MAX), ValueError,
              "decode: token id {} is not a vocabulary id", id);
    u.push_back(static_cast<uint32_t>(id));
  }
  return lm.text_tokenizer->decode(u, true);
}

std::vector<std::string> token_labels(const Seq2SeqLM& lm, const std::vector<int64_t>& ids) {
  std::vector<std::string> out;
  for (int64_t id : ids) {
    std::optional<std::string> t;
    if (lm.tokenizer) t = lm.tokenizer->id_to_token(id);
    if (lm.text_tokenizer && id >= 0 && id <= static_cast<int64_t>(UINT32_MAX))
      t = lm.text_tokenizer->id_to_token(static_cast<uint32_t>(id));
    out.push_back(t ? *t : "#" + std::to_string(id));
  }
  return out;
}

GenerationResult generate_seq2seq(const models::EncoderDecoderModel& model,
                                  const std::vector<std::vector<int64_t>>& source_ids,
                                  const GenerationConfig& cfg_in, const GenerateOptions& opt) {
  const GenerationConfig cfg = detail::checked_config(cfg_in);
  LMF_CHECK(model.is_seq2seq_lm(), ValueError,
            "generate_seq2seq: {} has no language-model head; load a *ForConditionalGeneration / "
            "*MTModel checkpoint",
            model.architecture());
  LMF_CHECK(!source_ids.empty(), ValueError, "generate_seq2seq: no sources given");
  LMF_CHECK(cfg.stop_strings.empty() || opt.tokenizer, ValueError,
            "generate_seq2seq: stop_strings need a tokenizer (GenerateOptions::tokenizer)");
  LMF_CHECK(!opt.on_text || (opt.tokenizer && cfg.num_beams == 1), ValueError,
            "generate_seq2seq: streaming needs a tokenizer and num_beams 1");
  const models::Seq2SeqSpec spec = model.spec();
  const int64_t start =
      cfg.decoder_start_token_id ? *cfg.decoder_start_token_id : spec.decoder_start_token_id;
  LMF_CHECK(start >= 0 && start < spec.vocab_size, ValueError,
            "generate_seq2seq: decoder_start_token_id {} is not in the target vocabulary [0, {}); "
            "set decoder_start_token_id in generation_config.json",
            start, spec.vocab_size);

  // Sources: checked, truncated on request, right-padded with a mask.
  const int64_t PS = spec.max_source_positions;
  std::vector<std::vector<int64_t>> src;
  int64_t S = 0;
  for (size_t i = 0; i < source_ids.size(); ++i) {
    std::vector<int64_t> s = source_ids[i];
    LMF_CHECK(!s.empty(), ValueError,
              "generate_seq2seq: source {} is empty (a tokenized source holds at least </s>)", i);
    for (int64_t t : s)
      LMF_CHECK(t >= 0 && t < spec.source_vocab_size, ValueError,
                "generate_seq2seq: source {} has token id {} outside the vocabulary [0, {})", i, t,
                spec.source_vocab_size);
    if (PS > 0 && static_cast<int64_t>(s.size()) > PS) {
      LMF_CHECK(opt.truncate_left, ValueError,
                "generate_seq2seq: source {} has {} tokens but the encoder takes at most {} "
                "positions; shorten it or truncate it (--truncate)",
                i, s.size(), PS);
      const int64_t last = s.back();
      s.resize(PS - 1);
      s.push_back(last);
    }
    S = std::max<int64_t>(S, static_cast<int64_t>(s.size()));
    src.push_back(std::move(s));
  }
  const int64_t B = static_cast<int64_t>(src.size());
  const int64_t src_pad = spec.pad_token_id >= 0 ? spec.pad_token_id : 0;
  std::vector<int64_t> flat, mask;
  bool padded = false;
  for (const auto& s : src) {
    for (int64_t i = 0; i < S; ++i) {
      const bool in = i < static_cast<int64_t>(s.size());
      flat.push_back(in ? s[i] : src_pad);
      mask.push_back(in ? 1 : 0);
      padded = padded || !in;
    }
  }

  detail::Setup s;
  s.B = B;
  s.L = 1;
  s.V = spec.vocab_size;
  s.prompts.assign(B, std::vector<int64_t>{start});
  s.pad_len.assign(B, 0);
  s.pad = cfg.pad_token_id
              ? *cfg.pad_token_id
              : (!cfg.eos_token_id.empty() ? cfg.eos_token_id[0]
                                           : (spec.pad_token_id >= 0 ? spec.pad_token_id : 0));
  // transformers' _prepare_generated_length with a one-token decoder prompt: max_new_tokens + 1,
  // else max_length, else 20 + 1 capped by the model's positions.
  const int64_t P = spec.max_target_positions;
  if (cfg.max_new_tokens)
    s.max_len = 1 + *cfg.max_new_tokens;
  else if (cfg.max_length)
    s.max_len = *cfg.max_length;
  else
    s.max_len = P > 0 ? std::min<int64_t>(21, P) : 21;
  s.max_len = std::max<int64_t>(s.max_len, 2);
  if (P > 0) s.max_len = std::min(s.max_len, P + 1);  // P decoder positions fed at most

  NoGradGuard no_grad;
  Seq2SeqSteps steps(model, Tensor::from_vector(flat, {B, S}),
                     padded ? Tensor::from_vector(mask, {B, S}) : Tensor());
  GenerationResult res = cfg.num_beams > 1 ? detail::beam_search(steps, cfg, opt, s)
                                           : detail::sample_search(steps, cfg, opt, s);
  for (auto& g : res.sequences) g.prompt_ids = src[g.prompt_index];
  res.stats.prompt_tokens = B * S;
  return res;
}

Seq2SeqAttention seq2seq_attention(const models::EncoderDecoderModel& model,
                                   const std::vector<int64_t>& source_ids,
                                   const std::vector<int64_t>& decoder_input_ids) {
  const models::Seq2SeqSpec spec = model.spec();
  LMF_CHECK(!source_ids.empty() && !decoder_input_ids.empty(), ValueError,
            "seq2seq_attention: the source and the decoder input need at least one token each");
  LMF_CHECK(spec.max_source_positions <= 0 ||
                static_cast<int64_t>(source_ids.size()) <= spec.max_source_positions,
            ValueError, "seq2seq_attention: the source has {} tokens, the encoder takes {}",
            source_ids.size(), spec.max_source_positions);
  LMF_CHECK(spec.max_target_positions <= 0 ||
                static_cast<int64_t>(decoder_input_ids.size()) <= spec.max_target_positions,
            ValueError, "seq2seq_attention: the target has {} tokens, the decoder takes {}",
            decoder_input_ids.size(), spec.max_target_positions);
  NoGradGuard no_grad;
  models::Seq2SeqInputs in;
  const int64_t S = static_cast<int64_t>(source_ids.size());
  const int64_t T = static_cast<int64_t>(decoder_input_ids.size());
  in.input_ids = Tensor::from_vector(source_ids, {1, S});
  in.decoder_input_ids = Tensor::from_vector(decoder_input_ids, {1, T});
  in.output_attentions = true;
  const models::Seq2SeqOutput out = model.forward(in);
  Seq2SeqAttention a;
  a.source_ids = source_ids;
  a.decoder_input_ids = decoder_input_ids;
  auto take = [](const std::vector<Tensor>& v, std::vector<Tensor>& dst) {
    for (const Tensor& t : v) dst.push_back(t.select(0, 0).to(DType::f32).contiguous().clone());
  };
  take(out.encoder_attentions, a.encoder);
  take(out.decoder_attentions, a.decoder);
  take(out.cross_attentions, a.cross);
  return a;
}

namespace {

// One SVG heatmap of p [Tq, Tk]: row labels on the left, column labels rotated above.
std::string panel_svg(const float* p, const std::vector<std::string>& rows,
                      const std::vector<std::string>& cols, const std::string& caption) {
  const int cell = 18, left = 110, top = 100;
  const int nq = static_cast<int>(rows.size()), nk = static_cast<int>(cols.size());
  std::string o = fmt::format(
      "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"{}\" height=\"{}\" font-size=\"11\" font-family=\"monospace\">\n",
      xml_escape(caption), left + nk * cell + 4, top + nq * cell + 4);
  for (int k = 0; k < nk; ++k)
    o += fmt::format("<text transform=\"translate({},{}) rotate(-60)\">{}</text>\n",
                     left + k * cell + cell / 2 + 4, top - 4, xml_escape(cols[k]));
  for (int q = 0; q < nq; ++q) {
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", left - 4,
                     top + q * cell + cell - 5, xml_escape(rows[q]));
    for (int k = 0; k < nk; ++k) {
      const float v = p[q * nk + k];
      const int shade = 255 - static_cast<int>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255));
      o += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"rgb({},{},255)\">"
          "<title>{} \u2192 {}: {:.4f}</title></rect>\n",
          left + k * cell, top + q * cell, cell - 1, cell - 1, shade, shade, xml_escape(rows[q]),
          xml_escape(cols[k]), v);
    }
  }
  return o + "</svg></figure>\n";
}

}  // namespace

std::string attention_heatmap_html(const Seq2SeqAttention& att,
                                   const std::vector<std::string>& source_tokens,
                                   const std::vector<std::string>& target_tokens,
                                   const std::string& title) {
  struct Kind {
    const char* key;
    const char* name;
    const std::vector<Tensor>* maps;
    const std::vector<std::string>* rows;
    const std::vector<std::string>* cols;
  };
  const Kind kinds[] = {
      {"encoder", "Encoder self-attention", &att.encoder, &source_tokens, &source_tokens},
      {"decoder", "Decoder self-attention", &att.decoder, &target_tokens, &target_tokens},
      {"cross", "Cross-attention (decoder \u2192 source)", &att.cross, &target_tokens,
       &source_tokens}};
  nlohmann::json data = {{"source_tokens", source_tokens}, {"target_tokens", target_tokens}};
  std::string body;
  for (const Kind& k : kinds) {
    body += fmt::format("<h2>{}</h2>\n", k.name);
    data[k.key] = nlohmann::json::array();
    for (size_t l = 0; l < k.maps->size(); ++l) {
      const Tensor& t = (*k.maps)[l];
      LMF_CHECK(t.dim() == 3 && t.size(1) == static_cast<int64_t>(k.rows->size()) &&
                    t.size(2) == static_cast<int64_t>(k.cols->size()),
                ValueError,
                "attention_heatmap_html: {} layer {} attention is {} but there are {} row and {} "
                "column labels",
                k.key, l, t.describe(), k.rows->size(), k.cols->size());
      const Tensor c = t.to(DType::f32).contiguous();
      const float* p = c.data<float>();
      const int64_t H = t.size(0), n = t.size(1) * t.size(2);
      body += fmt::format("<h3>layer {}</h3>\n<div class=\"row\">\n", l);
      nlohmann::json layer = nlohmann::json::array();
      for (int64_t h = 0; h < H; ++h) {
        body += panel_svg(p + h * n, *k.rows, *k.cols, fmt::format("layer {} head {}", l, h));
        layer.push_back(std::vector<float>(p + h * n, p + (h + 1) * n));
      }
      body += "</div>\n";
      data[k.key].push_back(layer);
    }
  }
  std::string json_text = data.dump();
  // Keep "</" out of the script element.
  for (size_t i = 0; (i = json_text.find("</", i)) != std::string::npos; i += 3)
    json_text.replace(i, 2, "<\\/");
  return fmt::format(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title>\n"
      "<style>body{{font-family:sans-serif}} .row{{display:flex;flex-wrap:wrap;gap:12px}} "
      "figure{{margin:0}} figcaption{{font-size:12px}}</style></head>\n<body>\n<h1>{0}</h1>\n"
      "<p>Darker cells: more attention. Hover a cell for its probability. Rows: queries; "
      "columns: keys.</p>\n{1}<script type=\"application/json\" id=\"attention-data\">{2}"
      "</script>\n</body></html>\n",
      xml_escape(title), body, json_text);
}

void write_attention_heatmap(const std::string& path, const Seq2SeqAttention& att,
                             const std::vector<std::string>& source_tokens,
                             const std::vector<std::string>& target_tokens,
                             const std::string& title) {
  // .png: the image (heatmap_png.h); anything else: the HTML page.
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string content =
      ext == ".png" ? attention_heatmap_png(att, source_tokens, target_tokens, title)
                    : attention_heatmap_html(att, source_tokens, target_tokens, title);
  std::ofstream f(path, std::ios::binary);
  LMF_CHECK(f.good(), IoError, "cannot write the attention heatmap to {}", path);
  f << content;
  LMF_CHECK(f.good(), IoError, "writing the attention heatmap to {} failed", path);
}

}  // namespace lmf::tasks
