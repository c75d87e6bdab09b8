// Translation training: parallel data readers, run_translation-style features (truncation that
// keeps </s>), DataCollatorForSeq2Seq batches and Seq2SeqTrainer's label-smoothed loss over a
// MarianMTModel, saved as a folder transformers' MarianMTModel.from_pretrained loads.
#include "lmforge/train/translation.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/models/bart.h"
#include "lmforge/models/registry.h"
#include "lmforge/models/t5.h"
#include "lmforge/nn/init.h"
#include "lmforge/ops/ops.h"
#include "lmforge/tokenizers/marian.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/train/hf_folder.h"

namespace lmf::train {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LMF_CHECK(f.good(), IoError, "cannot read translation data file '{}'", path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

bool blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// One JSON field: a string (text) or a list of integers (token ids).
void read_field(const nlohmann::json& obj, const std::string& lang, const std::string& where,
                std::string& text, std::vector<int64_t>& ids, bool& is_ids) {
  auto it = obj.find(lang);
  if (it == obj.end()) {
    std::vector<std::string> keys;
    for (auto k = obj.begin(); k != obj.end(); ++k) keys.push_back(k.key());
    fail<ValueError>(
        "{}: no field '{}' (fields there: {}); name the languages with --source-lang and "
        "--target-lang",
        where, lang, fmt::join(keys, ", "));
  }
  if (it->is_string()) {
    text = it->get<std::string>();
    is_ids = false;
    return;
  }
  LMF_CHECK(it->is_array(), ValueError,
            "{}: field '{}' must be a string or a list of token ids, got {}", where, lang,
            it->type_name());
  for (const auto& v : *it) {
    LMF_CHECK(v.is_number_integer(), ValueError, "{}: field '{}': token ids must be integers",
              where, lang);
    ids.push_back(v.get<int64_t>());
  }
  is_ids = true;
}

TranslationData read_jsonl(const std::string& path, const std::string& src_lang,
                           const std::string& tgt_lang) {
  const std::vector<std::string> lines = read_lines(path);
  TranslationData d;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (blank(lines[i])) continue;  // JSONL: blank lines hold no record
    const std::string where = fmt::format("{}:{}", path, i + 1);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(lines[i]);
    } catch (const nlohmann::json::exception& e) {
      fail<IoError>("{}: not a JSON object: {}", where, e.what());
    }
    LMF_CHECK(j.is_object(), IoError, "{}: expected a JSON object per line", where);
    if (j.contains("translation") && j["translation"].is_object()) j = j["translation"];
    TranslationPair p;
    p.where = where;
    bool src_ids = false, tgt_ids = false;
    read_field(j, src_lang, where, p.source, p.source_ids, src_ids);
    read_field(j, tgt_lang, where, p.target, p.target_ids, tgt_ids);
    LMF_CHECK(src_ids == tgt_ids, ValueError,
              "{}: one side is text and the other token ids; give both as text or both as ids",
              where);
    p.pretokenized = src_ids;
    const bool empty = p.pretokenized ? p.source_ids.empty() || p.target_ids.empty()
                                      : blank(p.source) || blank(p.target);
    if (empty) {
      ++d.skipped_empty;
      continue;
    }
    d.pairs.push_back(std::move(p));
  }
  return d;
}

TranslationData read_parallel(const std::string& src_path, const std::string& tgt_path) {
  const std::vector<std::string> src = read_lines(src_path), tgt = read_lines(tgt_path);
  if (src.size() != tgt.size()) {
    const bool src_longer = src.size() > tgt.size();
    const size_t first = std::min(src.size(), tgt.size()) + 1;
    fail<IoError>(
        "{}:{}: no line to pair with in {} ({} has {} lines, {} has {}); SRC and TGT files must "
        "be line-aligned",
        src_longer ? src_path : tgt_path, first, src_longer ? tgt_path : src_path, src_path,
        src.size(), tgt_path, tgt.size());
  }
  TranslationData d;
  for (size_t i = 0; i < src.size(); ++i) {
    if (blank(src[i]) || blank(tgt[i])) {
      ++d.skipped_empty;
      continue;
    }
    TranslationPair p;
    p.source = src[i];
    p.target = tgt[i];
    p.where = fmt::format("{}:{}", src_path, i + 1);
    d.pairs.push_back(std::move(p));
  }
  return d;
}

// run_translation's truncation=True: at most max_len tokens, the final </s> kept.
bool truncate_ids(std::vector<int64_t>& ids, int64_t max_len, int64_t eos) {
  if (static_cast<int64_t>(ids.size()) <= max_len) return false;
  const bool keep_eos = eos >= 0 && ids.back() == eos;
  ids.resize(max_len);
  if (keep_eos && !ids.empty()) ids.back() = eos;
  return true;
}

std::vector<std::vector<int64_t>> batches_of(size_t n, int64_t batch) {
  std::vector<std::vector<int64_t>> out;
  for (size_t i = 0; i < n; i += batch) {
    std::vector<int64_t> b(std::min<size_t>(batch, n - i));
    std::iota(b.begin(), b.end(), static_cast<int64_t>(i));
    out.push_back(std::move(b));
  }
  return out;
}

// GenerationConfig.from_model_config for a Marian, BART or T5 config (transformers 5.25's keys).
nlohmann::ordered_json optional_id(int64_t v) {
  return v;
}
nlohmann::ordered_json optional_id(const std::optional<int64_t>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}
template <class C>
std::string generation_config_json(const C& c) {
  nlohmann::ordered_json g;
  g["_from_model_config"] = true;
  if (c.bos_token_id) g["bos_token_id"] = *c.bos_token_id;
  if (const auto start = optional_id(c.decoder_start_token_id); !start.is_null())
    g["decoder_start_token_id"] = start;
  if (c.eos_set) {
    if (c.eos_is_list)
      g["eos_token_id"] = c.eos_token_ids;
    else if (!c.eos_token_ids.empty())
      g["eos_token_id"] = c.eos_token_ids.front();
  }
  if constexpr (requires { c.forced_eos_token_ids; }) {  // T5Config has none
    if (!c.forced_eos_token_ids.empty()) {
      if (c.forced_eos_is_list)
        g["forced_eos_token_id"] = c.forced_eos_token_ids;
      else
        g["forced_eos_token_id"] = c.forced_eos_token_ids.front();
    }
  }
  g["output_attentions"] = false;
  g["output_hidden_states"] = false;
  if (c.pad_token_id) g["pad_token_id"] = *c.pad_token_id;
  g["transformers_version"] = "5.25.0";
  g["use_cache"] = c.use_cache;
  return g.dump(2) + "\n";
}
std::string generation_config_json(const models::EncoderDecoderModel& m) {
  if (const auto* marian = dynamic_cast<const models::MarianModel*>(&m))
    return generation_config_json(marian->config());
  if (const auto* bart = dynamic_cast<const models::BartModel*>(&m))
    return generation_config_json(bart->config());
  if (const auto* t5 = dynamic_cast<const models::T5Model*>(&m))
    return generation_config_json(t5->config());
  fail<ValueError>("translation: no generation_config.json rule for {}", m.architecture());
}

// The LM architecture of a from-scratch config by its model_type.
std::string seq2seq_lm_architecture(const std::string& config_text, const std::string& origin) {
  const std::string mt = config_model_type(config_text, origin);
  if (mt == "bart") return "BartForConditionalGeneration";
  if (mt == "t5") return "T5ForConditionalGeneration";
  LMF_CHECK(mt == "marian", ValueError,
            "translation: {} has model_type '{}'; from scratch lmforge trains 'marian', 'bart' or "
            "'t5'",
            origin, mt);
  return "MarianMTModel";
}

}  // namespace

TranslationData read_translation_data(const std::string& spec, const std::string& source_lang,
                                      const std::string& target_lang) {
  LMF_CHECK(!spec.empty(), ValueError,
            "translation data: give SRC_FILE,TGT_FILE or a .jsonl file with '{}' and '{}' fields",
            source_lang, target_lang);
  const auto comma = spec.find(',');
  if (comma != std::string::npos)
    return read_parallel(spec.substr(0, comma), spec.substr(comma + 1));
  LMF_CHECK(ends_with(spec, ".jsonl") || ends_with(spec, ".json"), ValueError,
            "translation data '{}': give SRC_FILE,TGT_FILE (two line-aligned text files) or a "
            ".jsonl file with '{}' and '{}' fields",
            spec, source_lang, target_lang);
  LMF_CHECK(source_lang != target_lang, ValueError, "--source-lang and --target-lang are both '{}'",
            source_lang);
  return read_jsonl(spec, source_lang, target_lang);
}

Tensor label_smoothed_loss(const Tensor& logits, const Tensor& labels, double epsilon) {
  const int64_t B = logits.size(0), T = logits.size(1), V = logits.size(2);
  // torch's cross_entropy label smoothing with ignore_index and mean reduction is LabelSmoother's
  // (1 - eps) * NLL / n + eps * sum(-log p) / (n * V) over the n active positions.
  return cross_entropy(logits.reshape({B * T, V}), labels.reshape({B * T}).to(DType::i64), -100,
                       epsilon);
}

TranslationObjective::TranslationObjective(const TranslationOptions& o,
                                           const TranslationTokenizer& tokenizer)
    : options_(o) {
  LMF_CHECK(o.model_dir.empty() != o.config_path.empty(), ValueError,
            "translation: give either --model DIR (a MarianMTModel, BartForConditionalGeneration "
            "or T5ForConditionalGeneration folder) or --config CONFIG.json (a model from scratch)");
  if (!o.model_dir.empty()) {
    model_ =
        models::load_pretrained_as<models::EncoderDecoderModel>(o.model_dir, "an encoder-decoder");
    LMF_CHECK(model_->is_seq2seq_lm(), ValueError,
              "translation: '{}' holds a {}, not a MarianMTModel, BartForConditionalGeneration or "
              "T5ForConditionalGeneration",
              o.model_dir, model_->architecture());
    if (options_.tokenizer_dir.empty()) options_.tokenizer_dir = o.model_dir;
  } else {
    const std::string text = read_file_bytes(o.config_path);
    std::unique_ptr<models::PretrainedModel> m;
    {
      nn::init::NoInitGuard no_init;
      m = models::create_pretrained(text, seq2seq_lm_architecture(text, o.config_path),
                                    o.config_path);
    }
    auto* ed = dynamic_cast<models::EncoderDecoderModel*>(m.get());
    LMF_CHECK(ed != nullptr, ValueError, "translation: {} is not an encoder-decoder config",
              o.config_path);
    m.release();
    model_.reset(ed);
    // transformers' post_init: _init_weights over every module, seeded.
    const Generator::State outer = default_generator().state();
    manual_seed(o.seed);
    std::vector<std::string> keys;
    for (const auto& [k, t] : model_->named_parameters()) keys.push_back(k);
    if (model_->state_dict().count("final_logits_bias")) keys.push_back("final_logits_bias");
    model_->init_missing(keys);
    default_generator().set_state(outer);
    if (options_.tokenizer_dir.empty())
      options_.tokenizer_dir = fs::path(o.config_path).parent_path().string();
  }
  const models::Seq2SeqSpec spec = model_->spec();
  LMF_CHECK(spec.pad_token_id >= 0, ValueError,
            "translation: the model's config has no pad_token_id (needed to pad batches)");
  pad_id_ = spec.pad_token_id;
  for (auto [len, name] : {std::pair{o.max_source_length, "--max-source-length"},
                           std::pair{o.max_target_length, "--max-target-length"}})
    LMF_CHECK(len >= 2, ValueError, "{} {} must be at least 2", name, len);
  // Capped by the model's positions (a longer pair is truncated, or refused with --no-truncation).
  // (0 positions: no limit, T5's relative positions.)
  if (spec.max_source_positions > 0)
    options_.max_source_length = std::min(o.max_source_length, spec.max_source_positions);
  if (spec.max_target_positions > 0)
    options_.max_target_length = std::min(o.max_target_length, spec.max_target_positions);

  TranslationData train = read_translation_data(o.train_data, o.source_lang, o.target_lang);
  skipped_empty_ = train.skipped_empty;
  TranslationData eval;
  if (!o.eval_data.empty()) {
    eval = read_translation_data(o.eval_data, o.source_lang, o.target_lang);
    skipped_empty_ += eval.skipped_empty;
  } else if (o.eval_fraction > 0) {
    std::vector<size_t> order(train.pairs.size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(o.seed);
    std::shuffle(order.begin(), order.end(), rng);
    const size_t n_eval = static_cast<size_t>(o.eval_fraction * order.size());
    std::vector<bool> held(order.size(), false);
    for (size_t i = 0; i < n_eval; ++i) held[order[i]] = true;
    TranslationData kept;
    for (size_t i = 0; i < train.pairs.size(); ++i)
      (held[i] ? eval : kept).pairs.push_back(std::move(train.pairs[i]));
    train.pairs = std::move(kept.pairs);
  }
  if (o.max_train_examples >= 0 && static_cast<int64_t>(train.pairs.size()) > o.max_train_examples)
    train.pairs.resize(o.max_train_examples);
  if (o.max_eval_examples >= 0 && static_cast<int64_t>(eval.pairs.size()) > o.max_eval_examples)
    eval.pairs.resize(o.max_eval_examples);
  LMF_CHECK(!train.pairs.empty(), ValueError, "translation: '{}' holds no non-empty pairs",
            o.train_data);
  const TranslationTokenizer tok =
      tokenizer.encode_source ? tokenizer : load_translation_tokenizer(options_.tokenizer_dir);
  if (tok.encode_source && tok.pad_id >= 0) {
    // A from-scratch config must be sized for its tokenizer; say which fields to set.
    // Marian configs also size the decoder's vocabulary (decoder_vocab_size).
    const bool marian = dynamic_cast<const models::MarianModel*>(model_.get()) != nullptr;
    const std::string hint =
        fmt::format("; in {} set vocab_size{} to {}, pad_token_id and decoder_start_token_id to {}",
                    o.config_path.empty() ? o.model_dir + "/config.json" : o.config_path,
                    marian ? " and decoder_vocab_size" : "", tok.vocab_size, tok.pad_id);
    LMF_CHECK(tok.pad_id == pad_id_, ValueError,
              "translation: the tokenizer in '{}' pads with id {} but the model's pad_token_id is "
              "{}{}",
              options_.tokenizer_dir, tok.pad_id, pad_id_, hint);
    LMF_CHECK(tok.vocab_size <= spec.source_vocab_size && tok.vocab_size <= spec.vocab_size,
              ValueError,
              "translation: the tokenizer in '{}' has {} tokens but the model's "
              "vocabulary has {}{}",
              options_.tokenizer_dir, tok.vocab_size, spec.source_vocab_size, hint);
  }
  train_ = make_features(train, tok);
  eval_ = make_features(eval, tok);
}

std::vector<TranslationFeature> TranslationObjective::make_features(
    const TranslationData& data, const TranslationTokenizer& tokenizer) {
  const models::Seq2SeqSpec spec = model_->spec();
  const int64_t eos = tokenizer.eos_id >= 0
                          ? tokenizer.eos_id
                          : (spec.eos_token_ids.empty() ? -1 : spec.eos_token_ids.front());
  std::vector<TranslationFeature> out;
  out.reserve(data.pairs.size());
  for (const TranslationPair& p : data.pairs) {
    TranslationFeature f;
    if (p.pretokenized) {
      f.input_ids = p.source_ids;
      f.labels = p.target_ids;
    } else {
      LMF_CHECK(tokenizer.encode_source && tokenizer.encode_target, ValueError,
                "{}: text pairs need the model's tokenizer (Marian's source.spm, target.spm, "
                "vocab.json, or tokenizer.json / vocab.json + merges.txt in '{}'), or give token "
                "ids in JSONL",
                p.where, options_.tokenizer_dir);
      f.input_ids = tokenizer.encode_source(options_.source_prefix + p.source);
      f.labels = tokenizer.encode_target(p.target);
    }
    for (int64_t id : f.input_ids)
      LMF_CHECK(id >= 0 && id < spec.source_vocab_size, ValueError,
                "{}: source token id {} is outside the model's vocabulary [0, {})", p.where, id,
                spec.source_vocab_size);
    for (int64_t id : f.labels)
      LMF_CHECK(id >= 0 && id < spec.vocab_size, ValueError,
                "{}: target token id {} is outside the model's vocabulary [0, {})", p.where, id,
                spec.vocab_size);
    const int64_t ns = static_cast<int64_t>(f.input_ids.size()),
                  nt = static_cast<int64_t>(f.labels.size());
    if (!options_.truncate)
      LMF_CHECK(
          ns <= options_.max_source_length && nt <= options_.max_target_length, ValueError,
          "{}: {} source / {} target tokens exceed the maximum {} / {} (--max-source-length / "
          "--max-target-length, capped by max_position_embeddings); raise them or drop "
          "--no-truncation",
          p.where, ns, nt, options_.max_source_length, options_.max_target_length);
    const bool a = truncate_ids(f.input_ids, options_.max_source_length, eos);
    const bool b = truncate_ids(f.labels, options_.max_target_length, eos);
    if (a || b) ++truncated_;
    out.push_back(std::move(f));
  }
  return out;
}

void TranslationObjective::before_optimizer_step() {
  if (!options_.freeze_pad_embedding) return;
  for (auto& [name, t] : model_->named_parameters()) {
    if (!(ends_with(name, "shared.weight") || ends_with(name, "embed_tokens.weight") ||
          ends_with(name, "lm_head.weight")))
      continue;
    Tensor g = t.grad();
    if (!g.defined() || g.dim() != 2 || pad_id_ >= g.size(0)) continue;
    LMF_CHECK(g.is_contiguous() && g.dtype() == DType::f32, ValueError,
              "translation: --freeze-pad-embedding needs a contiguous f32 gradient for {}", name);
    float* row = g.data<float>() + pad_id_ * g.size(1);
    std::fill(row, row + g.size(1), 0.0f);
  }
}

NamedTensors TranslationObjective::parameters() const {
  NamedTensors out;
  for (auto& [name, t] : model_->named_parameters())
    if (t.requires_grad()) out.emplace_back(name, t);
  return out;
}

void TranslationObjective::set_training(bool on) {
  model_->train(on);
}

Tensor TranslationObjective::batch_loss(const std::vector<TranslationFeature>& features,
                                        std::span<const int64_t> indices, int64_t* tokens) const {
  const int64_t b = static_cast<int64_t>(indices.size());
  LMF_CHECK(b > 0, ValueError, "an empty batch");
  int64_t s = 0, t = 0;
  for (int64_t i : indices) {
    s = std::max<int64_t>(s, features.at(i).input_ids.size());
    t = std::max<int64_t>(t, features.at(i).labels.size());
  }
  // DataCollatorForSeq2Seq: inputs padded with pad (mask 0), labels with -100.
  std::vector<int64_t> ids(b * s, pad_id_), mask(b * s, 0), labels(b * t, -100);
  int64_t n = 0;
  for (int64_t r = 0; r < b; ++r) {
    const TranslationFeature& f = features[indices[r]];
    for (size_t j = 0; j < f.input_ids.size(); ++j) {
      ids[r * s + j] = f.input_ids[j];
      mask[r * s + j] = 1;
    }
    std::copy(f.labels.begin(), f.labels.end(), labels.begin() + r * t);
    n += f.length();
  }
  if (tokens) *tokens = n;
  models::Seq2SeqInputs in;
  in.input_ids = Tensor::from_vector(ids, {b, s});
  in.attention_mask = Tensor::from_vector(mask, {b, s});
  const Tensor lab = Tensor::from_vector(labels, {b, t});
  const models::Seq2SeqSpec spec = model_->spec();
  in.decoder_input_ids = models::shift_tokens_right(lab, pad_id_, spec.decoder_start_token_id);
  const models::Seq2SeqOutput o = model_->forward(in);
  return label_smoothed_loss(o.logits, lab, options_.label_smoothing);
}

Objective::BatchLoss TranslationObjective::loss(std::span<const int64_t> indices, Generator& rng) {
  (void)rng;  // dropout draws from the default generator, as the other objectives
  BatchLoss out;
  out.loss = batch_loss(train_, indices, &out.tokens);
  return out;
}

int64_t TranslationObjective::loss_items(std::span<const int64_t> indices) const {
  int64_t n = 0;
  for (int64_t i : indices) n += static_cast<int64_t>(train_.at(i).labels.size());
  return n;
}

Metrics TranslationObjective::evaluate() {
  if (eval_.empty()) return {};
  NoGradGuard no_grad;
  set_training(false);
  double sum = 0, n = 0;
  for (const auto& idx : batches_of(eval_.size(), options_.eval_batch_size)) {
    sum += batch_loss(eval_, idx).item() * static_cast<double>(idx.size());
    n += static_cast<double>(idx.size());
  }
  return {{"eval_loss", sum / n}};
}

void TranslationObjective::save_pretrained(const std::string& dir) const {
  models::save_pretrained(*model_, dir);
  const fs::path gen_src = fs::path(options_.model_dir) / "generation_config.json";
  const fs::path gen_dst = fs::path(dir) / "generation_config.json";
  if (!options_.model_dir.empty() && fs::is_regular_file(gen_src))
    fs::copy_file(gen_src, gen_dst, fs::copy_options::overwrite_existing);
  else
    models::write_file_atomically(gen_dst.string(), generation_config_json(*model_));
  copy_existing_files(
      options_.tokenizer_dir, dir,
      {"source.spm", "target.spm", "vocab.json", "target_vocab.json", "merges.txt",
       "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "added_tokens.json"});
}

void TranslationObjective::load_pretrained(const std::string& dir) {
  load_saved_weights(*model_, dir);
}

TranslationTokenizer load_translation_tokenizer(const std::string& dir) {
  if (dir.empty()) return {};
  const fs::path d(dir);
  if (!fs::is_regular_file(d / "source.spm")) {
    // A BART folder: one byte-level BPE for both sides (tokenizer(text) / text_target=...).
    if (!fs::is_regular_file(d / "tokenizer.json") &&
        !(fs::is_regular_file(d / "vocab.json") && fs::is_regular_file(d / "merges.txt")))
      return {};
    auto t = std::make_shared<tok::Tokenizer>(tok::Tokenizer::from_pretrained(d));
    TranslationTokenizer out;
    out.encode_source = [t](std::string_view s) {
      const std::vector<uint32_t> ids = t->encode(s).ids;
      return std::vector<int64_t>(ids.begin(), ids.end());
    };
    out.encode_target = out.encode_source;
    auto id = [&](const char* token) {
      const auto i = t->token_to_id(token);
      return i ? static_cast<int64_t>(*i) : int64_t{-1};
    };
    out.eos_id = id("</s>");
    out.pad_id = id("<pad>");
    out.vocab_size = static_cast<int64_t>(t->vocab_size());
    return out;
  }
  auto t = std::make_shared<tok::MarianTokenizer>(tok::MarianTokenizer::from_folder(dir));
  TranslationTokenizer out;
  out.encode_source = [t](std::string_view s) { return t->encode_source(s); };
  out.encode_target = [t](std::string_view s) { return t->encode_target(s); };
  out.eos_id = t->eos_token_id();
  out.pad_id = t->pad_token_id();
  out.vocab_size = static_cast<int64_t>(t->size());
  return out;
}

std::unique_ptr<TranslationObjective> make_translation_objective(
    const TranslationOptions& options, const TranslationTokenizer& tokenizer) {
  return std::make_unique<TranslationObjective>(options, tokenizer);
}

}  // namespace lmf::train
