// Shared parts of the head pipelines: loading a model folder with its tokenizer and special tokens,
// encoding, one forward pass, and the next-sentence pipeline.
#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "heads_util.h"
#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/json.h"
#include "lmforge/models/registry.h"
#include "lmforge/tasks/heads.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tasks {

namespace fs = std::filesystem;
using models::EncoderFamily;
using models::EncoderHead;

namespace {

// A special-token entry: a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_entry(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

nlohmann::json read_optional(const fs::path& p) {
  if (!fs::exists(p)) return nlohmann::json::object();
  auto j = io::read_json_file(p.string());
  return j.is_object() ? j : nlohmann::json::object();
}

SpecialTokens read_special_tokens(const fs::path& dir, const models::BertConfig& cfg,
                                  const tok::Tokenizer& tk) {
  const bool roberta = cfg.family == EncoderFamily::roberta;
  const bool albert = cfg.family == EncoderFamily::albert;
  SpecialTokens s;
  s.mask_token = roberta ? "<mask>" : "[MASK]";
  s.cls_token = roberta ? "<s>" : "[CLS]";
  s.pad_token = roberta || albert ? "<pad>" : "[PAD]";
  s.unk_token = roberta || albert ? "<unk>" : "[UNK]";
  const auto tc = read_optional(dir / "tokenizer_config.json");
  const auto sm = read_optional(dir / "special_tokens_map.json");
  auto pick = [&](const char* key, std::string& out) {
    if (auto v = token_entry(tc, key))
      out = *v;
    else if (auto v2 = token_entry(sm, key))
      out = *v2;
  };
  pick("mask_token", s.mask_token);
  pick("cls_token", s.cls_token);
  pick("pad_token", s.pad_token);
  pick("unk_token", s.unk_token);
  s.mask_id = tk.token_to_id(s.mask_token);
  s.cls_id = tk.token_to_id(s.cls_token);
  s.pad_id = tk.token_to_id(s.pad_token);
  s.unk_id = tk.token_to_id(s.unk_token);
  // RoBERTa's positions start after padding_idx, so it holds two fewer tokens than its table.
  int64_t positions = cfg.max_position_embeddings;
  if (roberta) positions -= cfg.pad_token_id + 1;
  s.max_positions = static_cast<size_t>(std::max<int64_t>(positions, 1));
  s.model_max_length = s.max_positions;
  auto it = tc.find("model_max_length");
  if (it != tc.end() && it->is_number() && it->get<double>() >= 1 &&
      it->get<double>() < static_cast<double>(s.model_max_length))
    s.model_max_length = static_cast<size_t>(it->get<double>());
  return s;
}

std::string accepted_names(const std::vector<EncoderHead>& accepted) {
  std::string out;
  for (const auto& a : models::supported_architectures())
    if (std::find(accepted.begin(), accepted.end(), a.head) != accepted.end())
      out += (out.empty() ? "" : ", ") + a.name;
  return out;
}

}  // namespace

HeadPipeline::~HeadPipeline() = default;

HeadPipeline::HeadPipeline(const std::string& model_dir, const std::string& task,
                           const std::vector<EncoderHead>& accepted, const models::LoadOptions& opt)
    : task_(task) {
  const fs::path dir(model_dir);
  LMF_CHECK(fs::is_directory(dir), IoError,
            "{}: model folder '{}' does not exist or is not a folder (expected config.json, "
            "model.safetensors or pytorch_model.bin, and tokenizer files)",
            task, model_dir);
  // Through the family registry: a folder of another family (a decoder) is named as such.
  model_ = models::load_pretrained_as<models::EncoderModel>(
      model_dir, "an encoder (BERT, RoBERTa, ALBERT or ELECTRA) for " + task, opt, &report_);
  LMF_CHECK(std::find(accepted.begin(), accepted.end(), model_->head()) != accepted.end(),
            ValueError,
            "{}: the model in '{}' is a {}, which has no {} head; use a checkpoint of one of: {} "
            "(or name the architecture to load when the checkpoint has that head's weights)",
            task, model_dir, model_->architecture(), task, accepted_names(accepted));
  model_->prepare_inference();
  tokenizer_ = tok::Tokenizer::from_pretrained(dir);
  special_ = read_special_tokens(dir, model_->config(), tokenizer_);
}

tok::Encoding HeadPipeline::encode(std::string_view text, std::optional<std::string_view> pair,
                                   std::optional<tok::TruncationParams> truncation) const {
  std::lock_guard<std::mutex> lock(encode_mutex_);
  tok::Tokenizer& tk = tokenizer_;
  const auto saved = tk.truncation();
  if (truncation) tk.set_truncation(truncation);
  struct Restore {
    tok::Tokenizer& tk;
    const std::optional<tok::TruncationParams>& saved;
    ~Restore() { tk.set_truncation(saved); }
  } restore{tk, saved};
  return pair ? tk.encode(text, *pair) : tk.encode(text);
}

models::ModelOutput HeadPipeline::forward(const tok::Encoding& enc) const {
  const int64_t T = static_cast<int64_t>(enc.size());
  LMF_CHECK(T > 0, ValueError, "{}: the input gave no tokens", task_);
  std::vector<int64_t> ids(enc.ids.begin(), enc.ids.end());
  std::vector<int64_t> mask(enc.attention_mask.begin(), enc.attention_mask.end());
  std::vector<int64_t> types(enc.type_ids.begin(), enc.type_ids.end());
  if (mask.size() != ids.size()) mask.assign(ids.size(), 1);
  if (types.size() != ids.size()) types.assign(ids.size(), 0);
  const int64_t limit = static_cast<int64_t>(special_.max_positions);
  LMF_CHECK(T <= limit, ValueError,
            "{}: the input has {} tokens but the model takes at most {}; shorten the text", task_,
            T, limit);
  models::EncoderInputs in;
  in.input_ids = Tensor::from_vector(ids, {1, T});
  in.attention_mask = Tensor::from_vector(mask, {1, T});
  in.token_type_ids = Tensor::from_vector(types, {1, T});
  NoGradGuard no_grad;
  return model_->forward(in);
}

// ---- helpers ------------------------------------------------------------------------------------

std::vector<size_t> code_point_starts(std::string_view text) {
  std::vector<size_t> starts;
  size_t i = 0;
  while (i < text.size()) {
    starts.push_back(i);
    i += std::max<size_t>(tok::utf8_len(static_cast<unsigned char>(text[i])), 1);
  }
  starts.push_back(text.size());
  return starts;
}

std::string substr_code_points(std::string_view text, size_t begin, size_t end) {
  const auto starts = code_point_starts(text);
  const size_t n = starts.size() - 1;
  begin = std::min(begin, n);
  end = std::min(std::max(end, begin), n);
  return std::string(text.substr(starts[begin], starts[end] - starts[begin]));
}

size_t code_point_count(std::string_view text) {
  return code_point_starts(text).size() - 1;
}

std::string lowercase(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const char32_t c = tok::next_char(text, i);
    tok::append_utf8(out,
                     static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
  }
  return out;
}

std::vector<float> logits_row(const Tensor& t) {
  return t.contiguous().to_vector<float>();
}

std::vector<double> softmax(const float* x, size_t n) {
  std::vector<double> p(n);
  double mx = -INFINITY, sum = 0;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(x[i]));
  for (size_t i = 0; i < n; ++i) sum += (p[i] = std::exp(static_cast<double>(x[i]) - mx));
  for (auto& v : p) v /= sum;
  return p;
}

// ---- next sentence prediction -------------------------------------------------------------------

NextSentencePrediction::NextSentencePrediction(const std::string& model_dir,
                                               const models::LoadOptions& opt)
    : HeadPipeline(model_dir, "nsp", {EncoderHead::next_sentence, EncoderHead::pretraining}, opt) {
  const auto f = model_->config().family;
  LMF_CHECK(
      f == EncoderFamily::bert || f == EncoderFamily::albert, ValueError,
      "nsp: {} has no next-sentence or sentence-order head; use BertForNextSentencePrediction, "
      "BertForPreTraining or AlbertForPreTraining",
      model_->architecture());
}

NextSentenceResult NextSentencePrediction::operator()(std::string_view a,
                                                      std::string_view b) const {
  const auto out = forward(encode(a, b, std::nullopt));
  const Tensor& t =
      model_->head() == EncoderHead::next_sentence ? out.logits : out.seq_relationship_logits;
  const auto l = logits_row(t);
  LMF_CHECK(l.size() == 2, ShapeError, "nsp: expected 2 logits, the model gave {}", l.size());
  const auto p = softmax(l.data(), 2);
  NextSentenceResult r;
  r.is_next = p[0];
  r.not_next = p[1];
  r.logits[0] = l[0];
  r.logits[1] = l[1];
  return r;
}

}  // namespace lmf::tasks
