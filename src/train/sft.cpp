// Supervised fine-tuning data (train/sft.h): TRL SFTTrainer's record formats, chat-template
// rendering and completion-only labels, on ClmObjective.
#include "lmforge/train/sft.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/chat_template.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/unicode.h"
#include "lmforge/train/hf_folder.h"

namespace lmf::train {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

// Stanford Alpaca's prompts (with and without an input).
constexpr const char* kAlpacaWithInput =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{}\n\n### Input:\n{}\n\n### Response:\n";
constexpr const char* kAlpacaNoInput =
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{}\n\n### Response:\n";

bool blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n") == std::string::npos;
}

// The record, or the reason it is malformed ("" when fine).
std::string parse_record(const ojson& j, SftRecord& r) {
  if (!j.is_object()) return "not a JSON object";
  auto str = [&](const char* key, std::string& out) -> std::string {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fmt::format("no \"{}\" field", key);
    if (!it->is_string())
      return fmt::format("\"{}\" must be a string, not {}", key, it->type_name());
    out = it->get<std::string>();
    return "";
  };
  if (j.contains("messages")) {
    const ojson& m = j.at("messages");
    if (!m.is_array() || m.empty())
      return "\"messages\" must be a non-empty list of {role, content}";
    for (size_t i = 0; i < m.size(); ++i) {
      if (!m[i].is_object() || !m[i].contains("role") || !m[i]["role"].is_string() ||
          !m[i].contains("content") || !m[i]["content"].is_string())
        return fmt::format("message {} must be an object with string \"role\" and \"content\"",
                           i + 1);
    }
    if (m.back()["role"] != "assistant")
      return "the conversation does not end with an assistant message (nothing to learn)";
    if (blank(m.back()["content"].get<std::string>())) return "the assistant's answer is empty";
    r.messages = m;
    return "";
  }
  if (j.contains("instruction") || j.contains("output")) {
    if (auto e = str("instruction", r.instruction); !e.empty()) return e;
    if (auto e = str("output", r.output); !e.empty()) return e;
    if (j.contains("input") && !j["input"].is_null()) {
      if (!j["input"].is_string()) return "\"input\" must be a string";
      r.input = j["input"].get<std::string>();
    }
    if (blank(r.instruction)) return "the instruction is empty";
    if (blank(r.output)) return "the output (answer) is empty";
    r.alpaca = true;
    const std::string user = r.instruction + (r.input.empty() ? "" : "\n\n" + r.input);
    r.messages = ojson::array({ojson{{"role", "user"}, {"content", user}},
                               ojson{{"role", "assistant"}, {"content", r.output}}});
    return "";
  }
  if (j.contains("prompt") || j.contains("completion")) {
    if (auto e = str("prompt", r.prompt); !e.empty()) return e;
    if (auto e = str("completion", r.completion); !e.empty()) return e;
    if (blank(r.completion)) return "the completion is empty";
    r.text = true;
    return "";
  }
  return "no \"messages\", \"instruction\"/\"output\" or \"prompt\"/\"completion\" fields (plain "
         "text is for `lmforge pretrain --recipe gpt`)";
}

ojson first_messages(const ojson& m, size_t n) {
  ojson out = ojson::array();
  for (size_t i = 0; i < n; ++i) out.push_back(m[i]);
  return out;
}

}  // namespace

SftData read_sft_records(const std::string& path, bool strict) {
  return read_usable_records<SftData>(path, strict, "record", parse_record);
}

LmExample sft_example(const SftRecord& r, const tok::Tokenizer& t, const SftFormat& f) {
  LmExample ex;
  if (!r.text && (f.chat_template || !r.alpaca)) {
    LMF_CHECK(f.chat_template.has_value(), ValueError,
              "{}: a conversation needs a chat template, and the tokenizer has none; give "
              "--chat-template FILE (a Jinja template as in tokenizer_config.json)",
              r.where);
    const std::string& tpl = *f.chat_template;
    const ojson& m = r.messages;
    ex.input_ids = encode_ids(t, tok::apply_chat_template(tpl, m, false, f.special_tokens), false);
    if (!f.completion_only_loss) return ex;
    ex.labels.assign(ex.input_ids.size(), -100);
    for (size_t i = 0; i < m.size(); ++i) {
      if (m[i]["role"] != "assistant") continue;
      size_t start = 0;
      if (i > 0) {
        const auto p = encode_ids(
            t, tok::apply_chat_template(tpl, first_messages(m, i), true, f.special_tokens), false);
        start = common_prefix_length(p, ex.input_ids);
      }
      size_t end = ex.input_ids.size();
      if (i + 1 < m.size()) {
        const auto upto = encode_ids(
            t, tok::apply_chat_template(tpl, first_messages(m, i + 1), false, f.special_tokens),
            false);
        end = common_prefix_length(upto, ex.input_ids);
      }
      for (size_t k = start; k < end; ++k) ex.labels[k] = ex.input_ids[k];
    }
    return ex;
  }
  // Text form: Alpaca's prompt, or a prompt/completion record; EOS appended to the completion.
  std::string prompt = r.prompt, completion = r.completion;
  if (r.alpaca) {
    prompt = r.input.empty() ? fmt::format(kAlpacaNoInput, r.instruction)
                             : fmt::format(kAlpacaWithInput, r.instruction, r.input);
    completion = r.output;
  }
  completion = with_eos(std::move(completion), f.eos_token);
  ex.input_ids = encode_ids(t, prompt + completion, true);
  if (!f.completion_only_loss) return ex;
  const size_t start = common_prefix_length(encode_ids(t, prompt, true), ex.input_ids);
  ex.labels.assign(ex.input_ids.size(), -100);
  for (size_t k = start; k < ex.input_ids.size(); ++k) ex.labels[k] = ex.input_ids[k];
  return ex;
}

std::unique_ptr<ClmObjective> make_sft_objective(const SftOptions& o, SftReport* report) {
  LMF_CHECK(!o.model_dir.empty(), ValueError,
            "sft needs --model DIR (a GPT-2 / LLaMA / Qwen2 / Mistral folder)");
  LMF_CHECK(!o.train_file.empty(), ValueError, "sft needs --train FILE");
  LMF_CHECK(o.max_length >= 2, ValueError, "--max-length must be at least 2, got {}", o.max_length);
  LMF_CHECK(o.eval_split >= 0 && o.eval_split < 1, ValueError,
            "--eval-split must be in [0, 1), got {}", o.eval_split);
  LMF_CHECK(o.eval_file.empty() || o.eval_split == 0, ValueError,
            "give --eval FILE or --eval-split, not both");
  SftReport rep;
  std::unique_ptr<models::DecoderModel> model = load_or_create_causal_lm(o.model_dir, "", o.seed);
  const std::string tok_dir = o.tokenizer_dir.empty() ? o.model_dir : o.tokenizer_dir;
  const tok::Tokenizer tokenizer = load_training_tokenizer(tok_dir);
  const int64_t vocab = model->spec().vocab_size;
  LMF_CHECK(static_cast<int64_t>(tokenizer.vocab_size(true)) <= vocab, ValueError,
            "the tokenizer in '{}' has {} tokens but the model's vocab_size is {}", tok_dir,
            tokenizer.vocab_size(true), vocab);

  SftFormat f;
  f.completion_only_loss = o.completion_only_loss;
  const TokenizerSpecials specials = read_tokenizer_specials(tok_dir);
  f.special_tokens = specials.tokens;
  f.eos_token = specials.eos;
  f.chat_template = task_chat_template(tok_dir, o.chat_template_file);
  if (!o.chat_template_file.empty())
    tok::ChatTemplate::parse(*f.chat_template);  // a syntax error names line:column now
  rep.chat = f.chat_template.has_value();

  auto split = read_train_eval<SftData>(
      [&](const std::string& f) { return read_sft_records(f, o.strict_data); }, o.train_file,
      o.eval_file, o.eval_split, o.seed, o.max_train_examples, o.max_eval_examples);
  rep.skipped = std::move(split.skipped);
  std::vector<SftRecord>& train_records = split.train;
  std::vector<SftRecord>& eval_records = split.eval;

  auto tokenize = [&](const std::vector<SftRecord>& records) {
    std::vector<LmExample> out;
    out.reserve(records.size());
    for (const SftRecord& r : records) {
      LmExample ex = sft_example(r, tokenizer, f);
      // With packing, the packer truncates (bfd) or splits (bfd_split), and nothing is dropped.
      if (ex.size() > o.max_length) {
        ++rep.truncated;
        if (!o.packing) {
          ex.input_ids.resize(o.max_length);  // TRL's truncation_mode keep_start
          if (!ex.labels.empty()) ex.labels.resize(o.max_length);
        }
      }
      const bool trained = ex.labels.empty() ? ex.size() > 1
                                             : std::any_of(ex.labels.begin(), ex.labels.end(),
                                                           [](int32_t l) { return l != -100; });
      if (!trained && !o.packing) {
        ++rep.dropped;
        continue;
      }
      check_ids_in_vocab(ex.input_ids, vocab, r.where);
      out.push_back(std::move(ex));
    }
    return out;
  };
  std::vector<LmExample> train_ex = tokenize(train_records);
  std::vector<LmExample> eval_ex = tokenize(eval_records);
  std::vector<std::vector<int64_t>> bins;
  if (o.packing && !train_ex.empty()) {
    bins = pack_examples(train_ex, o.max_length, o.packing_strategy);
    pack_examples(eval_ex, o.max_length, o.packing_strategy);  // TRL's eval_packing = packing
    rep.packed_rows = static_cast<int64_t>(bins.size());
  }
  LMF_CHECK(!train_ex.empty(), ValueError,
            "{}: no training example left (every one was malformed or had nothing to learn after "
            "truncation to --max-length {})",
            o.train_file, o.max_length);
  rep.train_examples = static_cast<int64_t>(train_ex.size());
  rep.eval_examples = static_cast<int64_t>(eval_ex.size());
  const int64_t pad = decoder_pad_id(*model);
  auto obj =
      std::make_unique<ClmObjective>(std::move(model), std::move(train_ex), std::move(eval_ex), pad,
                                     tok_dir, o.model_dir, o.eval_batch_size);
  if (!bins.empty()) obj->set_train_groups(std::move(bins));
  if (!o.chat_template_file.empty())
    obj->extra_files.emplace_back("chat_template.jinja", *f.chat_template);
  if (o.lora) {
    models::LoraConfig lc = *o.lora;
    rep.lora_modules = models::add_lora(obj->model(), lc);
    obj->lora = lc;
    obj->lora_base = o.model_dir;
  }
  rep.total_parameters = obj->model().num_parameters(false);
  rep.trainable_parameters = obj->model().num_parameters(true);
  if (report) *report = std::move(rep);
  return obj;
}

}  // namespace lmf::train
