// Sequence-to-sequence generation with encoder-decoder models (Marian, BART, ...) as transformers'
// generate() does for them, on the decoder-only loop's config, processors and searches; and the
// attention weights of one source/target pair with a self-contained HTML heatmap writer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/models/encoder_decoder.h"
#include "lmforge/tasks/generate.h"

namespace lmf::tok {
class MarianTokenizer;
class Tokenizer;
}  // namespace lmf::tok

namespace lmf::tasks {

// An encoder-decoder folder ready to generate: the model (eval mode, prepared for inference) and
// its generation defaults (generation_config.json, else config.json as transformers reads them).
struct Seq2SeqLM {
  std::unique_ptr<models::EncoderDecoderModel> model;
  GenerationConfig generation;
  std::string source;  // the folder
  // Marian's tokenizer when the folder has source.spm, target.spm and vocab.json; else null.
  std::shared_ptr<const tok::MarianTokenizer> tokenizer;
  // Otherwise the folder's own tokenizer when it has one: tokenizer.json, BART's byte-level BPE
  // vocab.json + merges.txt, or a SentencePiece model such as T5's spiece.model; else null.
  std::shared_ptr<const tok::Tokenizer> text_tokenizer;
  bool has_tokenizer() const { return tokenizer != nullptr || text_tokenizer != nullptr; }
};
// ValueError when the folder holds no encoder-decoder with an LM head (naming what it holds);
// IoError for missing or corrupt files.
Seq2SeqLM load_seq2seq_lm(const std::string& dir);

// A multilingual Marian folder's target-language token for `lang` followed by a space
// (">>fr<< "), to put before a source text as Opus-MT's multi-target models expect; "" for an
// empty `lang`. ValueError naming the folder's codes when it has no such token, and when the
// folder has no Marian tokenizer or no language tokens at all.
std::string target_language_prefix(const Seq2SeqLM& lm, const std::string& lang);

// Text <-> ids with the folder's tokenizer: the source as tokenizer(text) (with its special
// tokens: Marian's and T5's </s>, BART's <s> ... </s>), a translation as tokenizer.decode(ids,
// skip_special_tokens=True). ValueError "this folder has no tokenizer" when there is none.
std::vector<int64_t> encode_source_text(const Seq2SeqLM& lm, const std::string& text);
std::string decode_target_text(const Seq2SeqLM& lm, const std::vector<int64_t>& ids);
// Token strings for heatmap labels (the vocabulary's pieces; "#<id>" without a tokenizer or for
// an id it does not know).
std::vector<std::string> token_labels(const Seq2SeqLM& lm, const std::vector<int64_t>& ids);

// Translates each source (token ids, unpadded; right-padded into one batch with an attention
// mask) as transformers' generate() does for an encoder-decoder: the encoder runs once, the
// decoder starts from cfg.decoder_start_token_id (unset: the model's), cross-attention keys and
// values are computed on the first step and cached, then one cached token per step. max_length
// counts the start token (unset: 20 new tokens, at most the model's target positions);
// max_new_tokens wins when set. Greedy, sampling and beam search with the same processors as
// generate() plus bad_words_ids and forced BOS/EOS. output_ids exclude the start token;
// prompt_ids are the source ids. A source longer than the encoder's positions is a ValueError
// unless opt.truncate_left (then its first positions - 1 tokens and its last token are kept).
GenerationResult generate_seq2seq(const models::EncoderDecoderModel& model,
                                  const std::vector<std::vector<int64_t>>& source_ids,
                                  const GenerationConfig& cfg, const GenerateOptions& opt = {});

// Attention probabilities of one source/target pair, per layer [heads, queries, keys] (f32):
// encoder self-attention over the source, decoder (causal) self-attention over decoder_input_ids,
// cross-attention from the decoder positions to the source.
struct Seq2SeqAttention {
  std::vector<int64_t> source_ids, decoder_input_ids;
  std::vector<Tensor> encoder, decoder, cross;
};

// One teacher-forced forward with output_attentions: decoder_input_ids is [decoder_start] +
// the target (e.g. a generation's output_ids without its last token).
Seq2SeqAttention seq2seq_attention(const models::EncoderDecoderModel& model,
                                   const std::vector<int64_t>& source_ids,
                                   const std::vector<int64_t>& decoder_input_ids);

// A self-contained HTML page (inline SVG, no JavaScript or downloads): for each of encoder self-,
// decoder self- and cross-attention, one panel per layer and head, rows and columns labelled with
// the tokens, each cell's probability in its tooltip. The values are also embedded as JSON
// (<script type="application/json" id="attention-data">) for tools. ValueError when the label
// counts do not match the attention shapes.
std::string attention_heatmap_html(const Seq2SeqAttention& att,
                                   const std::vector<std::string>& source_tokens,
                                   const std::vector<std::string>& target_tokens,
                                   const std::string& title = "attention");
// Writes attention_heatmap_html to `path`, or attention_heatmap_png (heatmap_png.h) when `path`
// ends in .png (IoError when it cannot be written).
void write_attention_heatmap(const std::string& path, const Seq2SeqAttention& att,
                             const std::vector<std::string>& source_tokens,
                             const std::vector<std::string>& target_tokens,
                             const std::string& title = "attention");

}  // namespace lmf::tasks
