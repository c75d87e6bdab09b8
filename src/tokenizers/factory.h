// Builds pipeline stages from tokenizer.json objects, dispatching on their "type" string.
// Extension point for the BPE / Unigram / byte-level half of the tokenizers layer: the *_ext
// hooks below are DEFINED ONCE, today as stubs in ext_stubs.cpp returning nullptr/false; the
// BPE/Unigram work replaces that file with real definitions (one file per component is fine,
// as long as each hook is defined exactly once). A hook returns nullptr for a type it does not
// know; the factory then throws ValueError("unsupported ... type 'X'").
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "lmforge/tokenizers/model.h"
#include "lmforge/tokenizers/pipeline.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tok {

using json = nlohmann::json;

// The factory: a JSON object with "type" (null json -> nullptr). Sequences recurse.
std::unique_ptr<Normalizer> normalizer_from_json(const json& j);
std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const json& j);
std::unique_ptr<Model> model_from_json(const json& j);
std::unique_ptr<PostProcessor> post_processor_from_json(const json& j);
std::unique_ptr<Decoder> decoder_from_json(const json& j);

// Hooks for the types this half does not implement: models "BPE", "Unigram"; pre-tokenizers
// "ByteLevel", "Metaspace"; normalizer "ByteLevel"; post-processor "ByteLevel"; decoders
// "ByteLevel", "Metaspace", "BPEDecoder". `type` is j["type"] (for a model without "type",
// the caller infers it: "merges" -> BPE, a list "vocab" -> Unigram, else WordPiece).
std::unique_ptr<Model> make_model_ext(std::string_view type, const json& j);
std::unique_ptr<Normalizer> make_normalizer_ext(std::string_view type, const json& j);
std::unique_ptr<PreTokenizer> make_pre_tokenizer_ext(std::string_view type, const json& j);
std::unique_ptr<PostProcessor> make_post_processor_ext(std::string_view type, const json& j);
std::unique_ptr<Decoder> make_decoder_ext(std::string_view type, const json& j);

// Legacy folders without tokenizer.json that this half does not handle (vocab.json +
// merges.txt, SentencePiece *.model): fill `tok` and return true, or return false when the
// folder has none of those files. tokenizer_config / special_tokens_map are the parsed JSON
// files (empty objects when absent).
bool load_legacy_ext(const std::filesystem::path& dir, const json& tokenizer_config,
                     const json& special_tokens_map, Tokenizer& tok);

// Helpers shared by both halves -------------------------------------------------------------

// JSON accessors that throw ValueError naming the key ("tokenizer.json: model.vocab: ...").
const json& get_key(const json& j, std::string_view key, std::string_view where);
std::string get_string(const json& j, std::string_view key, std::string_view where);
bool get_bool(const json& j, std::string_view key, bool dflt);
// Every occurrence of `from` in `s` replaced by `to` (left to right, non-overlapping).
void replace_all(std::string& s, std::string_view from, std::string_view to);
// The HF pattern object {"String": s} or {"Regex": r}: the matches in `text`.
class PatternSpec {
 public:
  PatternSpec(const json& j, std::string_view where);
  ~PatternSpec();
  PatternSpec(PatternSpec&&) noexcept;
  std::vector<Match> find_matches(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
SplitBehavior split_behavior_from_json(const json& j, std::string_view where);

// Byte-level offset trimming shared by RobertaProcessing and the ByteLevel post-processor
// (HF process_offsets): moves each token's offsets past leading/trailing 'Ġ' (U+0120) chars
// of its token string; with add_prefix_space, the first token keeps its leading space.
void trim_byte_level_offsets(Encoding& e, bool add_prefix_space);

}  // namespace lmf::tok

namespace lmf::tok {
// Builders used by the legacy loaders (BERT vocab.txt, and by the other half for RoBERTa).
std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool handle_chinese_chars,
                                                 std::optional<bool> strip_accents, bool lowercase);
std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer();
std::unique_ptr<PostProcessor> make_bert_processing(std::pair<std::string, uint32_t> cls,
                                                    std::pair<std::string, uint32_t> sep);
std::unique_ptr<PostProcessor> make_roberta_processing(std::pair<std::string, uint32_t> cls,
                                                       std::pair<std::string, uint32_t> sep,
                                                       bool trim_offsets, bool add_prefix_space);
std::unique_ptr<Decoder> make_wordpiece_decoder(std::string prefix, bool cleanup);
// Special tokens named in tokenizer_config.json / special_tokens_map.json (unk, sep, pad, cls,
// mask, bos, eos, additional_special_tokens), strings or {"content": ...} objects.
std::vector<AddedToken> special_tokens_from_config(const json& tokenizer_config,
                                                   const json& special_tokens_map);
}  // namespace lmf::tok
