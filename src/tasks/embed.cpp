#include "lmforge/tasks/embed.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "lmforge/core/autograd.h"
#include "lmforge/io/json.h"
#include "lmforge/models/registry.h"
#include "lmforge/ops/ops.h"
#include "lmforge/tokenizers/normalized_string.h"

namespace lmf::tasks {

namespace fs = std::filesystem;

namespace {

// What modules.json and its module folders say (sentence-transformers layout).
struct StLayout {
  std::string transformer_dir;
  std::vector<Pooling> pooling;
  bool normalize = false;
  std::optional<int64_t> max_seq_length;
  bool do_lower_case = false;
};

bool json_flag(const nlohmann::json& j, const char* key, const std::string& file) {
  if (!j.contains(key)) return false;
  LMF_CHECK(j[key].is_boolean(), ValueError, "{}: '{}' must be true or false", file, key);
  return j[key].get<bool>();
}

// sentence-transformers' Pooling concatenates its modes in this order: cls, max, mean, sqrt-len.
std::vector<Pooling> read_pooling_config(const std::string& file) {
  const nlohmann::json j = io::read_json_file(file);
  LMF_CHECK(j.is_object(), ValueError, "{}: expected a JSON object", file);
  for (const char* unsupported : {"pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"})
    LMF_CHECK(!json_flag(j, unsupported, file), ValueError,
              "{}: '{}' pooling is not supported; use --pooling cls|mean|max to override", file,
              unsupported);
  std::vector<Pooling> modes;
  if (json_flag(j, "pooling_mode_cls_token", file)) modes.push_back(Pooling::cls);
  if (json_flag(j, "pooling_mode_max_tokens", file)) modes.push_back(Pooling::max);
  if (json_flag(j, "pooling_mode_mean_tokens", file)) modes.push_back(Pooling::mean);
  if (json_flag(j, "pooling_mode_mean_sqrt_len_tokens", file))
    modes.push_back(Pooling::mean_sqrt_len);
  LMF_CHECK(!modes.empty(), ValueError,
            "{}: no pooling_mode_* is true; use --pooling cls|mean|max to choose one", file);
  return modes;
}

StLayout read_st_layout(const fs::path& dir) {
  const std::string file = (dir / "modules.json").string();
  const nlohmann::json mods = io::read_json_file(file);
  LMF_CHECK(mods.is_array(), ValueError, "{}: expected a list of modules", file);
  StLayout st;
  bool have_transformer = false;
  for (const auto& m : mods) {
    LMF_CHECK(m.is_object() && m.contains("type") && m["type"].is_string(), ValueError,
              "{}: every module needs a string 'type'", file);
    const std::string type = m["type"].get<std::string>();
    const std::string path =
        m.contains("path") && m["path"].is_string() ? m["path"].get<std::string>() : "";
    const std::string kind =
        type.substr(type.rfind('.') == std::string::npos ? 0 : type.rfind('.') + 1);
    const fs::path mdir = path.empty() ? dir : dir / path;
    if (kind == "Transformer") {
      have_transformer = true;
      st.transformer_dir = mdir.string();
      const fs::path cfg = mdir / "sentence_bert_config.json";
      if (fs::exists(cfg)) {
        const nlohmann::json j = io::read_json_file(cfg.string());
        if (j.contains("max_seq_length") && j["max_seq_length"].is_number_integer())
          st.max_seq_length = j["max_seq_length"].get<int64_t>();
        st.do_lower_case = json_flag(j, "do_lower_case", cfg.string());
      }
    } else if (kind == "Pooling") {
      st.pooling = read_pooling_config((mdir / "config.json").string());
    } else if (kind == "Normalize") {
      st.normalize = true;
    } else {
      fail<ValueError>(
          "{}: module '{}' is not supported (lmforge runs Transformer, Pooling and Normalize "
          "modules); pass the encoder's own folder with --pooling to embed without it",
          file, type);
    }
  }
  LMF_CHECK(have_transformer, ValueError, "{}: no sentence_transformers.models.Transformer module",
            file);
  LMF_CHECK(!st.pooling.empty(), ValueError,
            "{}: no Pooling module; sentence-transformers would add mean pooling, lmforge asks "
            "you to say it with --pooling",
            file);
  return st;
}

// The longest input the model accepts: RoBERTa's positions start after the padding index.
int64_t position_limit(const models::BertConfig& c) {
  if (c.family == models::EncoderFamily::roberta)
    return c.max_position_embeddings - c.pad_token_id - 1;
  return c.max_position_embeddings;
}

std::string base_architecture(models::EncoderFamily f) {
  for (const auto& a : models::supported_architectures())
    if (a.family == f && a.head == models::EncoderHead::base) return a.name;
  fail<ValueError>("no base model registered for the {} family", models::family_name(f));
}

std::string preview(const std::string& s) {
  return s.size() <= 40 ? s : s.substr(0, 37) + "...";
}

}  // namespace

SentenceEmbedder::SentenceEmbedder(SentenceEmbedder&&) noexcept = default;
SentenceEmbedder& SentenceEmbedder::operator=(SentenceEmbedder&&) noexcept = default;
SentenceEmbedder::~SentenceEmbedder() = default;

SentenceEmbedder SentenceEmbedder::from_pretrained(const std::string& dir,
                                                   const EmbedderOptions& opt) {
  LMF_CHECK(fs::is_directory(dir), IoError, "model folder '{}' does not exist or is not a folder",
            dir);
  LMF_CHECK(opt.batch_size >= 1, ValueError, "batch size must be >= 1, got {}", opt.batch_size);
  SentenceEmbedder e;
  e.batch_size_ = opt.batch_size;
  e.truncate_ = opt.truncate;
  std::string model_dir = dir;
  std::optional<int64_t> st_max;
  if (fs::exists(fs::path(dir) / "modules.json")) {
    StLayout st = read_st_layout(dir);
    e.st_layout_ = true;
    model_dir = st.transformer_dir;
    e.pooling_ = st.pooling;
    e.normalize_ = st.normalize;
    e.lower_case_ = st.do_lower_case;
    st_max = st.max_seq_length;
  } else {
    e.pooling_ = {Pooling::mean};
  }
  if (opt.pooling) e.pooling_ = {*opt.pooling};
  if (opt.normalize) e.normalize_ = *opt.normalize;

  const models::BertConfig cfg = models::BertConfig::from_file(model_dir + "/config.json");
  models::LoadOptions lo = opt.load;
  if (lo.architecture.empty()) lo.architecture = base_architecture(cfg.family);
  e.model_ = models::load_pretrained_as<models::EncoderModel>(
      model_dir, "an encoder (BERT, RoBERTa, ALBERT or ELECTRA) for sentence embeddings", lo,
      &e.report_);
  e.model_->prepare_inference();
  e.tokenizer_ = tok::Tokenizer::from_pretrained(model_dir);

  const int64_t limit = position_limit(cfg);
  int64_t max_len = limit;
  if (st_max) {
    max_len = *st_max;
  } else {
    const fs::path tc = fs::path(model_dir) / "tokenizer_config.json";
    if (fs::exists(tc)) {
      const nlohmann::json j = io::read_json_file(tc.string());
      if (j.contains("model_max_length") && j["model_max_length"].is_number_integer())
        max_len = std::min(max_len, j["model_max_length"].get<int64_t>());
    }
  }
  if (opt.max_length) max_len = *opt.max_length;
  LMF_CHECK(max_len >= 2 && max_len <= limit, ValueError,
            "max length {} is out of range: the model accepts 2 to {} tokens", max_len, limit);
  e.max_length_ = max_len;
  if (e.truncate_) {
    tok::TruncationParams t;
    t.max_length = static_cast<size_t>(max_len);
    e.tokenizer_.set_truncation(t);
  } else {
    e.tokenizer_.set_truncation(std::nullopt);
  }
  e.tokenizer_.set_padding(std::nullopt);  // encode_batch pads per batch itself
  e.tokenizer_.set_invalid_utf8(tok::InvalidUtf8::Throw);
  return e;
}

const models::BertConfig& SentenceEmbedder::config() const {
  return model_->config();
}

int64_t SentenceEmbedder::dimension() const {
  return config().hidden_size * static_cast<int64_t>(pooling_.size());
}

std::string SentenceEmbedder::describe() const {
  std::vector<std::string> names;
  for (Pooling p : pooling_) names.push_back(pooling_name(p));
  return fmt::format("pooling {}, {}, {} dimensions, max {} tokens{} ({})", fmt::join(names, "+"),
                     normalize_ ? "L2-normalized" : "not normalized", dimension(), max_length_,
                     truncate_ ? "" : " (no truncation)",
                     st_layout_ ? "sentence-transformers folder" : "plain model folder");
}

std::vector<tok::Encoding> SentenceEmbedder::tokenize(const std::vector<std::string>& texts) const {
  std::vector<tok::Encoding> encs;
  if (lower_case_) {
    std::vector<std::string> lowered;
    lowered.reserve(texts.size());
    for (const auto& t : texts) {
      tok::NormalizedString n(t);
      n.lowercase();
      lowered.push_back(n.get());
    }
    encs = tokenizer_.encode_batch(lowered);
  } else {
    encs = tokenizer_.encode_batch(texts);
  }
  for (size_t i = 0; i < encs.size(); ++i)
    LMF_CHECK(static_cast<int64_t>(encs[i].size()) <= max_length_, ValueError,
              "text {} (\"{}\") has {} tokens, more than the {} this model takes; enable "
              "truncation (drop --no-truncate) or shorten it",
              i + 1, preview(texts[i]), encs[i].size(), max_length_);
  return encs;
}

Tensor SentenceEmbedder::encode_batch(const std::vector<tok::Encoding>& batch) const {
  const auto b = static_cast<int64_t>(batch.size());
  int64_t t = 1;
  for (const auto& e : batch) t = std::max(t, static_cast<int64_t>(e.size()));
  Tensor ids = Tensor::full({b, t}, static_cast<double>(config().pad_token_id), DType::i64);
  Tensor mask = Tensor::zeros({b, t}, DType::i64);
  Tensor types = Tensor::zeros({b, t}, DType::i64);
  auto* pi = ids.data<int64_t>();
  auto* pm = mask.data<int64_t>();
  auto* pt = types.data<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    const auto& e = batch[static_cast<size_t>(r)];
    for (size_t c = 0; c < e.size(); ++c) {
      pi[r * t + static_cast<int64_t>(c)] = e.ids[c];
      pm[r * t + static_cast<int64_t>(c)] = e.attention_mask.empty() ? 1 : e.attention_mask[c];
      pt[r * t + static_cast<int64_t>(c)] = e.type_ids.empty() ? 0 : e.type_ids[c];
    }
  }
  NoGradGuard no_grad;
  models::EncoderInputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.token_type_ids = types;
  const models::ModelOutput out = model_->encoder().forward(in);
  std::vector<Tensor> parts;
  for (Pooling p : pooling_)
    parts.push_back(p == Pooling::pooler ? out.pooler_output()
                                         : pool(out.last_hidden_state, mask, p));
  Tensor v = parts.size() == 1 ? parts[0] : concat(parts, 1);
  if (normalize_) v = l2_normalize(v);
  return v.to(DType::f32).contiguous();
}

Tensor SentenceEmbedder::encode(const std::vector<std::string>& texts) const {
  LMF_CHECK(!texts.empty(), ValueError, "no text to embed: give at least one sentence");
  const std::vector<tok::Encoding> encs = tokenize(texts);
  std::vector<size_t> order(encs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return encs[a].size() > encs[b].size(); });
  const int64_t dim = dimension();
  Tensor result = Tensor::empty({static_cast<int64_t>(texts.size()), dim});
  auto* dst = result.data<float>();
  const auto bs = static_cast<size_t>(batch_size_);
  for (size_t start = 0, n = 0; start < order.size(); start += n) {
    // Up to batch_size texts; a batch also ends where a text is under half the batch's longest
    // (past 32 tokens), so one long text does not pad many short ones to its length.
    const size_t longest = encs[order[start]].size();
    n = 1;
    while (n < bs && start + n < order.size() &&
           (longest <= 32 || 2 * encs[order[start + n]].size() >= longest))
      ++n;
    std::vector<tok::Encoding> batch;
    batch.reserve(n);
    for (size_t k = 0; k < n; ++k) batch.push_back(encs[order[start + k]]);
    const Tensor v = encode_batch(batch);
    LMF_CHECK(v.size(1) == dim, ShapeError, "embedding width {} differs from the expected {}",
              v.size(1), dim);
    const auto* src = v.data<float>();
    for (size_t k = 0; k < n; ++k)
      std::memcpy(dst + static_cast<int64_t>(order[start + k]) * dim,
                  src + static_cast<int64_t>(k) * dim, sizeof(float) * static_cast<size_t>(dim));
  }
  return result;
}

}  // namespace lmf::tasks
