// Shared save/load helpers of the training objectives (hf_folder.h).
#include "lmforge/train/hf_folder.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/tokenizers/chat_template.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::train {
namespace fs = std::filesystem;

void copy_existing_files(const std::string& from, const std::string& to,
                         std::initializer_list<const char*> names) {
  if (from.empty()) return;
  for (const char* name : names) {
    const fs::path src = fs::path(from) / name;
    if (!fs::is_regular_file(src)) continue;
    std::error_code ec;
    fs::copy_file(src, fs::path(to) / name, fs::copy_options::overwrite_existing, ec);
    LMF_CHECK(!ec, IoError, "cannot copy '{}' to '{}': {}", src.string(), to, ec.message());
  }
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LMF_CHECK(in.good(), IoError, "cannot open '{}' for reading (check the path and permissions)",
            path);
  std::ostringstream ss;
  ss << in.rdbuf();
  LMF_CHECK(!in.bad(), IoError, "error while reading '{}'", path);
  return ss.str();
}

std::string config_model_type(const std::string& config_text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(config_text);
  } catch (const nlohmann::json::exception& e) {
    fail<ValueError>("{}: not valid JSON: {}", origin, e.what());
  }
  if (!j.is_object()) return "";
  const auto it = j.find("model_type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

void for_each_json_record(
    const std::string& path,
    const std::function<void(const nlohmann::ordered_json&, const std::string&)>& fn) {
  using ojson = nlohmann::ordered_json;
  const std::string raw = read_file_bytes(path);
  LMF_CHECK(tok::is_valid_utf8(raw), ValueError,
            "{}: invalid UTF-8; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)", path);
  const size_t first = raw.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && raw[first] == '[') {
    ojson arr;
    try {
      arr = ojson::parse(raw);
    } catch (const nlohmann::json::exception& e) {
      fail<ValueError>("{}: not valid JSON ({})", path, e.what());
    }
    for (size_t i = 0; i < arr.size(); ++i) fn(arr[i], fmt::format("{}: record {}", path, i + 1));
    return;
  }
  size_t pos = 0, no = 1;
  while (pos < raw.size()) {
    size_t end = raw.find('\n', pos);
    if (end == std::string::npos) end = raw.size();
    const std::string_view line(raw.data() + pos, end - pos);
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
      ojson j;
      try {
        j = ojson::parse(line);
      } catch (const nlohmann::json::exception& e) {
        fail<ValueError>("{}:{}: not valid JSON ({}); JSONL needs one JSON object per line", path,
                         no, e.what());
      }
      fn(j, fmt::format("{}:{}", path, no));
    }
    pos = end + 1;
    ++no;
  }
}

TokenizerSpecials read_tokenizer_specials(const std::string& tokenizer_dir) {
  TokenizerSpecials out;
  const fs::path p = fs::path(tokenizer_dir) / "tokenizer_config.json";
  if (!fs::is_regular_file(p)) return out;
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(read_file_bytes(p.string()));
  } catch (const nlohmann::json::exception& e) {
    fail<ValueError>("{}: not valid JSON ({})", p.string(), e.what());
  }
  out.tokens = tok::special_tokens_from_config(cfg);
  if (out.tokens.contains("eos_token") && out.tokens["eos_token"].is_string())
    out.eos = out.tokens["eos_token"].get<std::string>();
  return out;
}

tok::Tokenizer load_training_tokenizer(const std::string& tokenizer_dir) {
  tok::Tokenizer t = tok::Tokenizer::from_pretrained(tokenizer_dir);
  t.set_truncation(std::nullopt);
  t.set_padding(std::nullopt);
  return t;
}

std::vector<int32_t> encode_ids(const tok::Tokenizer& t, const std::string& text, bool special) {
  const tok::Encoding e = t.encode(text, special);
  return std::vector<int32_t>(e.ids.begin(), e.ids.end());
}

size_t common_prefix_length(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

std::string with_eos(std::string text, const std::string& eos) {
  if (!eos.empty() &&
      (text.size() < eos.size() || text.compare(text.size() - eos.size(), eos.size(), eos) != 0))
    text += eos;
  return text;
}

std::optional<std::string> task_chat_template(const std::string& tokenizer_dir,
                                              const std::string& chat_template_file) {
  if (chat_template_file.empty()) return tok::load_chat_template(tokenizer_dir);
  return read_file_bytes(chat_template_file);
}

void check_ids_in_vocab(const std::vector<int32_t>& ids, int64_t vocab, const std::string& where) {
  for (int32_t id : ids)
    LMF_CHECK(id >= 0 && id < vocab, ValueError,
              "{}: token id {} is outside the model's vocabulary ({})", where, id, vocab);
}

void load_saved_weights(models::PretrainedModel& model, const std::string& dir) {
  const std::string path = (fs::path(dir) / "model.safetensors").string();
  models::LoadOptions lo;
  lo.zero_copy = false;  // copy into the existing parameters: the optimizer holds them
  lo.strict = true;
  model.load(io::load_safetensors(path), lo, path);
}

}  // namespace lmf::train
