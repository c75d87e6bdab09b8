// Causal-LM training (train/clm.h): run_clm.py's data preparation and the Objective over a
// decoder's own next-token loss.
#include "lmforge/train/clm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/models/registry.h"
#include "lmforge/nn/init.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/unicode.h"
#include "lmforge/train/hf_folder.h"

namespace lmf::train {

namespace fs = std::filesystem;

namespace {

bool has_suffix(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// 1-based line of byte offset `at` in `text`.
size_t line_of(std::string_view text, size_t at) {
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + at, '\n'));
}

void check_utf8_text(std::string_view text, const std::string& path) {
  if (tok::is_valid_utf8(text)) return;
  // Find the first bad line for the message.
  size_t pos = 0, no = 1;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    if (!tok::is_valid_utf8(text.substr(pos, end - pos)))
      fail<ValueError>(
          "{}:{}: invalid UTF-8; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)", path,
          no);
    pos = end + 1;
    ++no;
  }
  fail<ValueError>("{}: invalid UTF-8; convert the file to UTF-8", path);
}

std::string json_field(const nlohmann::json& j, const std::string& field, const std::string& path,
                       size_t no) {
  LMF_CHECK(j.is_object(), ValueError, "{}:{}: expected a JSON object with a \"{}\" field", path,
            no, field);
  auto it = j.find(field);
  LMF_CHECK(it != j.end(), ValueError,
            "{}:{}: no \"{}\" field (choose the text field with --text-field)", path, no, field);
  LMF_CHECK(it->is_string(), ValueError, "{}:{}: field \"{}\" must be a string, not {}", path, no,
            field, it->type_name());
  return it->get<std::string>();
}

// GenerationConfig.from_model_config for a decoder's config.json (transformers 5.25's keys).
std::string decoder_generation_config(const std::string& config_text) {
  const nlohmann::json c = nlohmann::json::parse(config_text);
  nlohmann::ordered_json g;
  g["_from_model_config"] = true;
  for (const char* k : {"bos_token_id", "eos_token_id"})
    if (auto it = c.find(k); it != c.end() && !it->is_null()) g[k] = *it;
  g["output_attentions"] = false;
  g["output_hidden_states"] = false;
  if (auto it = c.find("pad_token_id"); it != c.end() && !it->is_null()) g["pad_token_id"] = *it;
  g["transformers_version"] = "5.25.0";
  g["use_cache"] = c.value("use_cache", true);
  return g.dump(2) + "\n";
}

// A decoder's tokenizer files (those present) from one folder to another.
void copy_tokenizer_files(const std::string& from, const std::string& to) {
  copy_existing_files(
      from, to,
      {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
       "merges.txt", "tokenizer.model", "chat_template.jinja", "added_tokens.json"});
}

// tokenizer_config.json's model_max_length, when the folder sets a real one.
int64_t tokenizer_model_max_length(const std::string& dir) {
  std::ifstream f(fs::path(dir) / "tokenizer_config.json");
  if (!f) return 0;
  try {
    const nlohmann::json j = nlohmann::json::parse(f);
    if (auto it = j.find("model_max_length"); it != j.end() && it->is_number_integer()) {
      const int64_t v = it->get<int64_t>();
      if (v > 0 && v < (int64_t{1} << 40)) return v;  // HF's "unset" is a huge number
    }
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}

std::vector<std::vector<int32_t>> tokenize_all(const tok::Tokenizer& t,
                                               const std::vector<std::string>& texts) {
  std::vector<std::vector<int32_t>> out;
  out.reserve(texts.size());
  const size_t chunk = 4096;
  for (size_t b = 0; b < texts.size(); b += chunk) {
    const std::vector<std::string> part(texts.begin() + b,
                                        texts.begin() + std::min(texts.size(), b + chunk));
    for (const tok::Encoding& e : t.encode_batch(part, /*add_special_tokens=*/true))
      out.emplace_back(e.ids.begin(), e.ids.end());
  }
  return out;
}

}  // namespace

// ---- data ---------------------------------------------------------------------------------------

std::vector<std::string> read_clm_texts(const std::string& path, const std::string& field) {
  const std::string raw = read_file_bytes(path);
  std::vector<std::string> out;
  if (has_suffix(path, ".json") || has_suffix(path, ".jsonl")) {
    check_utf8_text(raw, path);
    const size_t first = raw.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && raw[first] == '[') {  // one JSON array of objects
      nlohmann::json arr;
      try {
        arr = nlohmann::json::parse(raw);
      } catch (const nlohmann::json::exception& e) {
        fail<ValueError>("{}: not valid JSON ({})", path, e.what());
      }
      for (size_t i = 0; i < arr.size(); ++i)
        out.push_back(json_field(arr[i], field, path + " record", i + 1));
    } else {
      size_t pos = 0, no = 1;
      while (pos < raw.size()) {
        size_t end = raw.find('\n', pos);
        if (end == std::string::npos) end = raw.size();
        std::string_view line(raw.data() + pos, end - pos);
        if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
          nlohmann::json j;
          try {
            j = nlohmann::json::parse(line);
          } catch (const nlohmann::json::exception& e) {
            fail<ValueError>("{}:{}: not valid JSON ({}); JSONL needs one JSON object per line",
                             path, no, e.what());
          }
          out.push_back(json_field(j, field, path, no));
        }
        pos = end + 1;
        ++no;
      }
    }
  } else {
    check_utf8_text(raw, path);
    // Universal newlines: "\r\n" and "\r" read as "\n"; lines keep their "\n".
    std::string line;
    for (size_t i = 0; i < raw.size(); ++i) {
      char c = raw[i];
      if (c == '\r') {
        if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
        c = '\n';
      }
      line.push_back(c);
      if (c == '\n') {
        out.push_back(std::move(line));
        line.clear();
      }
    }
    if (!line.empty()) out.push_back(std::move(line));
  }
  const bool any_text = std::any_of(out.begin(), out.end(), [](const std::string& s) {
    return s.find_first_not_of(" \t\r\n") != std::string::npos;
  });
  LMF_CHECK(any_text, ValueError, "'{}' contains no text", path);
  return out;
}

std::vector<std::vector<int32_t>> group_texts(const std::vector<std::vector<int32_t>>& examples,
                                              int64_t block_size) {
  LMF_CHECK(block_size >= 2, ValueError, "block_size must be at least 2, got {}", block_size);
  size_t total = 0;
  for (const auto& e : examples) total += e.size();
  const size_t n = total / static_cast<size_t>(block_size);
  std::vector<std::vector<int32_t>> blocks(n);
  size_t b = 0, filled = 0;
  for (const auto& e : examples) {
    for (int32_t id : e) {
      if (b == n) return blocks;
      if (filled == 0) blocks[b].reserve(block_size);
      blocks[b].push_back(id);
      if (++filled == static_cast<size_t>(block_size)) {
        ++b;
        filled = 0;
      }
    }
  }
  return blocks;
}

// ---- objective ----------------------------------------------------------------------------------

std::vector<LmExample> as_examples(std::vector<std::vector<int32_t>> blocks) {
  std::vector<LmExample> out(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) out[i].input_ids = std::move(blocks[i]);
  return out;
}

struct ClmObjective::Batch {
  models::DecoderInputs inputs;
  models::DecoderLabels labels;
  std::vector<int64_t> label_ids;  // [B * T], -100 where not trained or padding
  int64_t b = 0, t = 0, tokens = 0;
};

ClmObjective::ClmObjective(std::unique_ptr<models::DecoderModel> model,
                           std::vector<LmExample> train, std::vector<LmExample> eval,
                           int64_t pad_id, std::string tokenizer_dir, std::string model_dir,
                           int64_t eval_batch_size)
    : model_(std::move(model)),
      train_(std::move(train)),
      eval_(std::move(eval)),
      pad_id_(pad_id),
      tokenizer_dir_(std::move(tokenizer_dir)),
      model_dir_(std::move(model_dir)),
      eval_batch_size_(std::max<int64_t>(1, eval_batch_size)) {
  LMF_CHECK(model_ && model_->is_causal_lm(), ValueError,
            "causal-LM training needs a model with a language-modelling head");
  LMF_CHECK(!train_.empty(), ValueError, "causal-LM training: no training examples");
  for (const auto* set : {&train_, &eval_})
    for (const LmExample& e : *set) {
      LMF_CHECK(!e.input_ids.empty(), ValueError, "causal-LM training: an empty example");
      LMF_CHECK(e.labels.empty() || e.labels.size() == e.input_ids.size(), ShapeError,
                "causal-LM training: {} labels for {} tokens", e.labels.size(), e.input_ids.size());
    }
}

ClmObjective::~ClmObjective() = default;

int64_t ClmObjective::num_examples() const {
  return static_cast<int64_t>(groups_.empty() ? train_.size() : groups_.size());
}

int64_t ClmObjective::example_length(int64_t i) const {
  if (groups_.empty()) return train_.at(i).size();
  int64_t n = 0;
  for (int64_t m : groups_.at(i)) n += train_.at(m).size();
  return n;
}

void ClmObjective::set_train_groups(std::vector<std::vector<int64_t>> groups) {
  for (const auto& g : groups) {
    LMF_CHECK(!g.empty(), ValueError, "packing: an empty bin");
    for (int64_t m : g)
      LMF_CHECK(m >= 0 && m < static_cast<int64_t>(train_.size()), ValueError,
                "packing: bin member {} outside the {} training examples", m, train_.size());
  }
  groups_ = std::move(groups);
}

std::vector<int64_t> ClmObjective::members(std::span<const int64_t> indices) const {
  if (groups_.empty()) return {indices.begin(), indices.end()};
  std::vector<int64_t> out;
  for (int64_t i : indices) out.insert(out.end(), groups_.at(i).begin(), groups_.at(i).end());
  return out;
}

namespace {

// One piece (at most 1000 examples) of TRL's _pack_bfd: bins of example indices.
void pack_bfd_piece(const std::vector<LmExample>& ex, int64_t lo, int64_t hi, int64_t L,
                    std::vector<std::vector<int64_t>>& bins) {
  std::vector<int64_t> order;
  for (int64_t i = lo; i < hi; ++i)
    if (ex[i].size() > 0) order.push_back(i);  // empty sequences are filtered out
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return ex[a].size() > ex[b].size(); });
  // Open bins by remaining room (FIFO per room); the smallest room >= length is the best fit.
  std::map<int64_t, std::deque<size_t>> room;
  for (int64_t i : order) {
    const int64_t len = ex[i].size();
    auto it = room.lower_bound(len);
    size_t bin;
    int64_t space = L;
    if (it != room.end()) {
      space = it->first;
      bin = it->second.front();
      it->second.pop_front();
      if (it->second.empty()) room.erase(it);
    } else {
      bin = bins.size();
      bins.emplace_back();
    }
    bins[bin].push_back(i);
    space -= len;
    if (space > 0) room[space].push_back(bin);
  }
}

}  // namespace

std::vector<std::vector<int64_t>> pack_examples(std::vector<LmExample>& ex, int64_t L,
                                                const std::string& strategy) {
  LMF_CHECK(L >= 1, ValueError, "packing needs --max-length >= 1, got {}", L);
  LMF_CHECK(strategy == "bfd" || strategy == "bfd_split" || strategy == "wrapped", ValueError,
            "unknown packing strategy '{}' (bfd, bfd_split or wrapped)", strategy);
  constexpr int64_t kPiece = 1000;  // datasets.map(batched=True)'s batch size
  std::vector<std::vector<int64_t>> bins;
  if (strategy == "wrapped") {
    std::vector<LmExample> rows;
    for (size_t lo = 0; lo < ex.size(); lo += kPiece) {
      const size_t hi = std::min(ex.size(), lo + kPiece);
      bool labelled = false;
      for (size_t i = lo; i < hi; ++i) labelled = labelled || !ex[i].labels.empty();
      LmExample all;
      for (size_t i = lo; i < hi; ++i) {
        all.input_ids.insert(all.input_ids.end(), ex[i].input_ids.begin(), ex[i].input_ids.end());
        if (labelled) {
          if (ex[i].labels.empty())
            all.labels.insert(all.labels.end(), ex[i].input_ids.begin(), ex[i].input_ids.end());
          else
            all.labels.insert(all.labels.end(), ex[i].labels.begin(), ex[i].labels.end());
        }
      }
      for (int64_t s = 0; s < all.size(); s += L) {
        const int64_t e = std::min(all.size(), s + L);
        LmExample r;
        r.input_ids.assign(all.input_ids.begin() + s, all.input_ids.begin() + e);
        if (labelled) r.labels.assign(all.labels.begin() + s, all.labels.begin() + e);
        rows.push_back(std::move(r));
      }
    }
    ex = std::move(rows);
    for (size_t i = 0; i < ex.size(); ++i) bins.push_back({static_cast<int64_t>(i)});
    return bins;
  }
  std::vector<LmExample> seqs;  // after truncation or splitting, pieces kept apart
  std::vector<int64_t> piece_end;
  for (size_t lo = 0; lo < ex.size(); lo += kPiece) {
    const size_t hi = std::min(ex.size(), lo + kPiece);
    for (size_t i = lo; i < hi; ++i) {
      const LmExample& e = ex[i];
      for (int64_t s = 0; s < e.size(); s += L) {  // empty sequences are left out
        const int64_t end = std::min(e.size(), s + L);
        LmExample r;
        r.input_ids.assign(e.input_ids.begin() + s, e.input_ids.begin() + end);
        if (!e.labels.empty()) r.labels.assign(e.labels.begin() + s, e.labels.begin() + end);
        seqs.push_back(std::move(r));
        if (strategy == "bfd") break;  // truncate: keep the start
      }
    }
    piece_end.push_back(static_cast<int64_t>(seqs.size()));
  }
  ex = std::move(seqs);
  int64_t lo = 0;
  for (int64_t hi : piece_end) {
    pack_bfd_piece(ex, lo, hi, L, bins);
    lo = hi;
  }
  return bins;
}

int64_t ClmObjective::block_size() const {
  int64_t n = 0;
  for (const LmExample& e : train_) n = std::max(n, e.size());
  return n;
}

NamedTensors ClmObjective::parameters() const {
  NamedTensors out;
  for (auto& [name, t] : model_->named_parameters())
    if (t.requires_grad()) out.emplace_back(name, t);
  return out;
}

void ClmObjective::set_training(bool on) {
  model_->train(on);
}

ClmObjective::Batch ClmObjective::make_batch(const std::vector<LmExample>& examples,
                                             std::span<const int64_t> indices) const {
  Batch out;
  out.b = static_cast<int64_t>(indices.size());
  LMF_CHECK(out.b > 0, ValueError, "an empty batch");
  bool padded = false;
  for (int64_t i : indices) {
    const int64_t n = examples.at(i).size();
    padded = padded || (out.t != 0 && n != out.t);
    out.t = std::max(out.t, n);
  }
  const int64_t B = out.b, T = out.t;
  std::vector<int64_t> ids(B * T, pad_id_), mask(B * T, 0);
  out.label_ids.assign(B * T, -100);
  for (int64_t r = 0; r < B; ++r) {
    const LmExample& e = examples[indices[r]];
    for (int64_t j = 0; j < e.size(); ++j) {
      ids[r * T + j] = e.input_ids[j];
      mask[r * T + j] = 1;
      out.label_ids[r * T + j] = e.labels.empty() ? e.input_ids[j] : e.labels[j];
    }
    out.tokens += e.size();
  }
  out.inputs.input_ids = Tensor::from_vector(ids, {B, T});
  // Right padding: positions are 0..n-1 for every row either way; the mask hides the padding.
  if (padded) out.inputs.attention_mask = Tensor::from_vector(mask, {B, T});
  out.labels.labels = Tensor::from_vector(out.label_ids, {B, T});
  return out;
}

Tensor ClmObjective::batch_loss(const std::vector<LmExample>& examples,
                                std::span<const int64_t> indices) const {
  const Batch b = make_batch(examples, indices);
  return model_->forward(b.inputs, b.labels).loss;
}

Objective::BatchLoss ClmObjective::loss(std::span<const int64_t> indices, Generator& rng) {
  (void)rng;  // dropout draws from the default generator, as the other objectives
  const std::vector<int64_t> rows = members(indices);
  const Batch b = make_batch(train_, rows);
  BatchLoss out;
  out.loss = model_->forward(b.inputs, b.labels).loss;
  out.tokens = b.tokens;
  return out;
}

int64_t ClmObjective::loss_items(std::span<const int64_t> indices) const {
  int64_t n = 0;
  for (int64_t i : members(indices)) {
    const LmExample& e = train_.at(i);
    if (e.labels.empty())
      n += std::max<int64_t>(0, e.size() - 1);
    else
      n += std::count_if(e.labels.begin() + std::min<int64_t>(1, e.size()), e.labels.end(),
                         [](int32_t l) { return l != -100; });
  }
  return n;
}

Metrics ClmObjective::evaluate() {
  if (eval_.empty()) return {};
  NoGradGuard no_grad;
  set_training(false);
  int64_t t_max = 0;
  for (const LmExample& e : eval_) t_max = std::max(t_max, e.size());
  const int64_t vocab = model_->spec().vocab_size;
  // Rows per forward: the batch size, capped so the [rows, T, V] logits stay near 256 MiB.
  const int64_t cap =
      std::max<int64_t>(1, (int64_t{64} << 20) / std::max<int64_t>(1, t_max * vocab));
  const int64_t rows = std::min(eval_batch_size_, cap);
  double loss_sum = 0;
  int64_t predicted = 0, correct = 0;
  const int64_t n = static_cast<int64_t>(eval_.size());
  std::vector<int64_t> idx;
  for (int64_t start = 0; start < n; start += rows) {
    idx.clear();
    for (int64_t i = start; i < std::min(n, start + rows); ++i) idx.push_back(i);
    const Batch b = make_batch(eval_, idx);
    const models::DecoderOutput o = model_->forward(b.inputs, b.labels);
    const Tensor logits = o.logits.contiguous().to(DType::f32);
    const float* lp = logits.data<float>();
    const int64_t v = logits.size(2);
    int64_t items = 0;
    for (int64_t r = 0; r < b.b; ++r)
      for (int64_t p = 0; p + 1 < b.t; ++p) {
        const int64_t target = b.label_ids[r * b.t + p + 1];
        if (target == -100) continue;
        ++items;
        const float* row = lp + (r * b.t + p) * v;
        correct += (std::max_element(row, row + v) - row) == target;
      }
    if (items == 0) continue;  // the model's loss of a batch without targets is NaN
    loss_sum += o.loss.item() * static_cast<double>(items);
    predicted += items;
  }
  const double loss = loss_sum / static_cast<double>(std::max<int64_t>(1, predicted));
  return {{"eval_loss", loss},
          {"eval_perplexity", std::exp(loss)},
          {"eval_accuracy", static_cast<double>(correct) / std::max<int64_t>(1, predicted)}};
}

void save_decoder_folder(const models::DecoderModel& model,
                         const std::optional<models::LoraConfig>& lora,
                         const std::string& lora_base, const std::string& model_dir,
                         const std::string& tokenizer_dir,
                         const std::vector<std::pair<std::string, std::string>>& extra_files,
                         const std::string& dir) {
  if (lora) {
    models::save_lora_adapter(model, *lora, dir, lora_base);
  } else {
    models::save_pretrained(model, dir);
    const fs::path gen_src = fs::path(model_dir) / "generation_config.json";
    const fs::path gen_dst = fs::path(dir) / "generation_config.json";
    if (!model_dir.empty() && fs::is_regular_file(gen_src))
      fs::copy_file(gen_src, gen_dst, fs::copy_options::overwrite_existing);
    else
      models::write_file_atomically(gen_dst.string(),
                                    decoder_generation_config(model.config_json()));
  }
  copy_tokenizer_files(tokenizer_dir, dir);
  for (const auto& [name, content] : extra_files)
    models::write_file_atomically((fs::path(dir) / name).string(), content);
}

void load_decoder_folder(models::DecoderModel& model, const std::optional<models::LoraConfig>& lora,
                         const std::string& dir) {
  if (lora)
    models::load_lora_weights(model, dir);
  else
    load_saved_weights(model, dir);
}

void ClmObjective::save_pretrained(const std::string& dir) const {
  save_decoder_folder(*model_, lora, lora_base, model_dir_, tokenizer_dir_, extra_files, dir);
}

void ClmObjective::load_pretrained(const std::string& dir) {
  load_decoder_folder(*model_, lora, dir);
}

// ---- factory ------------------------------------------------------------------------------------

std::string causal_lm_architecture(const std::string& config_text, const std::string& origin) {
  const std::string type = config_model_type(config_text, origin);
  if (type == "gpt2") return "GPT2LMHeadModel";
  if (type == "llama") return "LlamaForCausalLM";
  if (type == "qwen2") return "Qwen2ForCausalLM";
  if (type == "mistral") return "MistralForCausalLM";
  fail<ValueError>(
      "{}: model_type '{}' is not a decoder lmforge trains as a causal LM; supported: gpt2, "
      "llama, qwen2, mistral",
      origin, type);
}

bool is_decoder_config(const std::string& config_file) {
  if (!fs::is_regular_file(config_file)) return false;
  try {
    const std::string t = config_model_type(read_file_bytes(config_file), config_file);
    return t == "gpt2" || t == "llama" || t == "qwen2" || t == "mistral";
  } catch (const Error&) {
    return false;
  }
}

std::unique_ptr<models::DecoderModel> load_or_create_causal_lm(const std::string& model_dir,
                                                               const std::string& config_path,
                                                               uint64_t seed,
                                                               std::string* config_file_out) {
  const std::string config_file =
      model_dir.empty() ? config_path : (fs::path(model_dir) / "config.json").string();
  if (config_file_out) *config_file_out = config_file;
  const std::string config_text = read_file_bytes(config_file);
  const std::string arch = causal_lm_architecture(config_text, config_file);
  if (!model_dir.empty()) {
    models::LoadOptions lo;
    lo.architecture = arch;
    return models::load_pretrained_as<models::DecoderModel>(model_dir, "a decoder to train", lo);
  }
  std::unique_ptr<models::PretrainedModel> m;
  {
    nn::init::NoInitGuard no_init;
    m = models::create_pretrained(config_text, arch, config_file);
  }
  auto* d = dynamic_cast<models::DecoderModel*>(m.get());
  LMF_CHECK(d != nullptr, ValueError, "{} is not a decoder config", config_file);
  m.release();
  std::unique_ptr<models::DecoderModel> model(d);
  // transformers' post_init: _init_weights over every parameter, seeded.
  const Generator::State outer = default_generator().state();
  manual_seed(seed);
  std::vector<std::string> keys;
  for (const auto& [k, t] : model->named_parameters()) keys.push_back(k);
  model->init_missing(keys);
  default_generator().set_state(outer);
  return model;
}

int64_t merge_lora_folder(std::string base_dir, const std::string& adapter_dir,
                          const std::string& out_dir) {
  if (base_dir.empty()) {
    const fs::path cfg = fs::path(adapter_dir) / "adapter_config.json";
    LMF_CHECK(fs::is_regular_file(cfg), ValueError,
              "'{}' is not a LoRA adapter folder (no adapter_config.json)", adapter_dir);
    const nlohmann::json j = nlohmann::json::parse(read_file_bytes(cfg.string()));
    base_dir = j.value("base_model_name_or_path", "");
    LMF_CHECK(!base_dir.empty() && fs::is_directory(base_dir), ValueError,
              "{}: base_model_name_or_path '{}' is not a folder here; give --model BASE_DIR",
              cfg.string(), base_dir);
  }
  auto model = models::load_pretrained_as<models::DecoderModel>(base_dir, "a decoder");
  const int64_t n = models::merge_lora(*model, adapter_dir);
  models::save_pretrained(*model, out_dir);
  const fs::path gen = fs::path(base_dir) / "generation_config.json";
  if (fs::is_regular_file(gen))
    fs::copy_file(gen, fs::path(out_dir) / "generation_config.json",
                  fs::copy_options::overwrite_existing);
  else
    models::write_file_atomically((fs::path(out_dir) / "generation_config.json").string(),
                                  decoder_generation_config(model->config_json()));
  const bool adapter_has_tokenizer = fs::is_regular_file(fs::path(adapter_dir) / "tokenizer.json");
  copy_tokenizer_files(adapter_has_tokenizer ? adapter_dir : base_dir, out_dir);
  return n;
}

int64_t decoder_pad_id(const models::DecoderModel& model) {
  const models::DecoderSpec spec = model.spec();
  if (spec.pad_token_id >= 0) return spec.pad_token_id;
  if (!spec.eos_token_ids.empty()) return spec.eos_token_ids.front();
  return 0;
}

std::unique_ptr<ClmObjective> make_clm_objective(const ClmOptions& o) {
  LMF_CHECK(o.model_dir.empty() != o.config_path.empty(), ValueError,
            "give exactly one of --model DIR (continue from a decoder checkpoint) and --config "
            "CONFIG.json (a GPT-2 or LLaMA-shaped model from scratch)");
  LMF_CHECK(!o.train_files.empty(), ValueError, "no training files given (--train FILE)");
  LMF_CHECK(o.eval_split >= 0 && o.eval_split < 1, ValueError,
            "eval_split must be in [0, 1), got {}", o.eval_split);
  LMF_CHECK(o.eval_files.empty() || o.eval_split == 0, ValueError,
            "give eval files or an eval split, not both");
  LMF_CHECK(o.block_size == 0 || o.block_size >= 2, ValueError,
            "--block-size must be at least 2, got {}", o.block_size);

  std::string config_file;
  std::unique_ptr<models::DecoderModel> model =
      load_or_create_causal_lm(o.model_dir, o.config_path, o.seed, &config_file);
  const models::DecoderSpec spec = model->spec();

  // The tokenizer.
  std::string tok_dir = o.tokenizer_dir;
  if (tok_dir.empty())
    tok_dir = o.model_dir.empty() ? fs::path(o.config_path).parent_path().string() : o.model_dir;
  if (tok_dir.empty()) tok_dir = ".";
  const tok::Tokenizer tokenizer = load_training_tokenizer(tok_dir);
  const int64_t tok_vocab = static_cast<int64_t>(tokenizer.vocab_size(true));
  LMF_CHECK(tok_vocab <= spec.vocab_size, ValueError,
            "the tokenizer in '{}' has {} tokens but {} has vocab_size {}; use a matching "
            "tokenizer or a config with a larger vocab_size",
            tok_dir, tok_vocab, config_file, spec.vocab_size);

  // Block size: run_clm's default, or the flag within the model's positions.
  int64_t block = o.block_size;
  if (block == 0) {
    block = 1024;
    if (spec.trained_positions > 0) block = std::min(block, spec.trained_positions);
    if (const int64_t m = tokenizer_model_max_length(tok_dir); m > 0) block = std::min(block, m);
  }
  LMF_CHECK(spec.max_positions <= 0 || block <= spec.max_positions, ValueError,
            "--block-size {} exceeds the model's {} positions ({}); use --block-size {} or less",
            block, spec.max_positions, config_file, spec.max_positions);

  // The data: every file's examples; the first eval_split share held out (run_clm).
  std::vector<std::string> train_texts, eval_texts;
  for (const auto& f : o.train_files) {
    auto t = read_clm_texts(f, o.text_field);
    train_texts.insert(train_texts.end(), std::make_move_iterator(t.begin()),
                       std::make_move_iterator(t.end()));
  }
  for (const auto& f : o.eval_files) {
    auto t = read_clm_texts(f, o.text_field);
    eval_texts.insert(eval_texts.end(), std::make_move_iterator(t.begin()),
                      std::make_move_iterator(t.end()));
  }
  if (o.eval_split > 0) {
    // datasets' percent slices round to the closest example (Python's round: ties to even).
    const auto k =
        static_cast<size_t>(std::nearbyint(o.eval_split * static_cast<double>(train_texts.size())));
    LMF_CHECK(k >= 1 && k < train_texts.size(), ValueError,
              "--eval-split {} of {} examples leaves {} held out; use a larger split, more data or "
              "--eval FILE",
              o.eval_split, train_texts.size(), k);
    eval_texts.assign(std::make_move_iterator(train_texts.begin()),
                      std::make_move_iterator(train_texts.begin() + k));
    train_texts.erase(train_texts.begin(), train_texts.begin() + k);
  }
  std::vector<std::vector<int32_t>> train =
      group_texts(tokenize_all(tokenizer, train_texts), block);
  LMF_CHECK(!train.empty(), ValueError,
            "the training data holds fewer than --block-size {} tokens: no training block; use "
            "more text or a smaller --block-size",
            block);
  std::vector<std::vector<int32_t>> eval;
  if (!eval_texts.empty()) {
    eval = group_texts(tokenize_all(tokenizer, eval_texts), block);
    LMF_CHECK(!eval.empty(), ValueError,
              "the held-out data holds fewer than --block-size {} tokens: no evaluation block; "
              "use a larger --eval-split, more text or a smaller --block-size",
              block);
  }
  const int64_t pad = decoder_pad_id(*model);
  auto obj = std::make_unique<ClmObjective>(std::move(model), as_examples(std::move(train)),
                                            as_examples(std::move(eval)), pad, tok_dir, o.model_dir,
                                            o.eval_batch_size);
  if (o.lora) {
    LMF_CHECK(!o.model_dir.empty(), ValueError,
              "LoRA adapts a trained model: give --model DIR, not --config");
    models::LoraConfig lc = *o.lora;
    models::add_lora(obj->model(), lc);
    obj->lora = lc;
    obj->lora_base = o.model_dir;
  }
  return obj;
}

}  // namespace lmf::train
