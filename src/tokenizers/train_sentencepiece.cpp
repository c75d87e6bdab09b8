// SentencePiece training through SentencePieceTrainer::Train(kwargs) (the call the Python
// wrapper's train(**kwargs) makes), and the Marian folder writer.
#include "lmforge/tokenizers/train_sentencepiece.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "lmforge/core/error.h"

namespace lmf::tok {

namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<std::string>& v, std::string_view what) {
  std::string s;
  for (const auto& x : v) {
    LMF_CHECK(x.find(',') == std::string::npos, ValueError,
              "SentencePiece training: {} '{}' contains a comma, which the trainer uses as its "
              "list separator; rename it",
              what, x);
    if (!s.empty()) s += ',';
    s += x;
  }
  return s;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  LMF_CHECK(f.good(), IoError, "cannot write '{}'", p.string());
  f << text;
  f.close();
  LMF_CHECK(f.good(), IoError, "cannot write '{}' (disk full?)", p.string());
}

std::unique_ptr<sentencepiece::SentencePieceProcessor> load(const std::string& path) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto st = sp->Load(path);
  LMF_CHECK(st.ok(), IoError, "cannot load SentencePiece model '{}': {}", path, st.ToString());
  return sp;
}

}  // namespace

void train_sentencepiece(const std::vector<std::string>& files, const std::string& model_path,
                         const SentencePieceTrainOptions& o) {
  LMF_CHECK(!files.empty(), ValueError, "SentencePiece training: no input files given");
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    LMF_CHECK(in.good() && !fs::is_directory(f), IoError,
              "SentencePiece training: cannot read input file '{}'", f);
    LMF_CHECK(in.peek() != std::ifstream::traits_type::eof(), ValueError,
              "SentencePiece training: input file '{}' is empty", f);
  }
  LMF_CHECK(o.model_type == "unigram" || o.model_type == "bpe" || o.model_type == "char" ||
                o.model_type == "word",
            ValueError,
            "SentencePiece training: model type '{}' is not one of unigram, bpe, char, word",
            o.model_type);
  LMF_CHECK(o.vocab_size > 0, ValueError, "SentencePiece training: vocab size must be positive");
  LMF_CHECK(o.character_coverage > 0 && o.character_coverage <= 1, ValueError,
            "SentencePiece training: character coverage must be in (0, 1], got {}",
            o.character_coverage);
  LMF_CHECK(o.num_threads > 0, ValueError, "SentencePiece training: threads must be positive");

  // Only the keys the caller changed from the trainer's defaults plus input/model_prefix, as
  // the Python wrapper passes only its keyword arguments.
  std::unordered_map<std::string, std::string> kw;
  const SentencePieceTrainOptions d;
  auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  kw["input"] = join(files, "input file name");
  if (o.model_type != d.model_type) kw["model_type"] = o.model_type;
  if (o.vocab_size != d.vocab_size) kw["vocab_size"] = std::to_string(o.vocab_size);
  if (o.character_coverage != d.character_coverage)
    kw["character_coverage"] = fmt::format("{}", o.character_coverage);
  if (o.normalization_rule_name != d.normalization_rule_name)
    kw["normalization_rule_name"] = o.normalization_rule_name;
  if (!o.user_defined_symbols.empty())
    kw["user_defined_symbols"] = join(o.user_defined_symbols, "user symbol");
  if (!o.control_symbols.empty()) kw["control_symbols"] = join(o.control_symbols, "control symbol");
  if (o.unk_id != d.unk_id) kw["unk_id"] = std::to_string(o.unk_id);
  if (o.bos_id != d.bos_id) kw["bos_id"] = std::to_string(o.bos_id);
  if (o.eos_id != d.eos_id) kw["eos_id"] = std::to_string(o.eos_id);
  if (o.pad_id != d.pad_id) kw["pad_id"] = std::to_string(o.pad_id);
  if (o.unk_piece != d.unk_piece) kw["unk_piece"] = o.unk_piece;
  if (o.bos_piece != d.bos_piece) kw["bos_piece"] = o.bos_piece;
  if (o.eos_piece != d.eos_piece) kw["eos_piece"] = o.eos_piece;
  if (o.pad_piece != d.pad_piece) kw["pad_piece"] = o.pad_piece;
  if (o.num_threads != d.num_threads) kw["num_threads"] = std::to_string(o.num_threads);
  if (o.input_sentence_size != d.input_sentence_size)
    kw["input_sentence_size"] = std::to_string(o.input_sentence_size);
  if (o.shuffle_input_sentence != d.shuffle_input_sentence)
    kw["shuffle_input_sentence"] = b(o.shuffle_input_sentence);
  if (o.max_sentencepiece_length != d.max_sentencepiece_length)
    kw["max_sentencepiece_length"] = std::to_string(o.max_sentencepiece_length);
  if (o.split_digits != d.split_digits) kw["split_digits"] = b(o.split_digits);
  if (o.byte_fallback != d.byte_fallback) kw["byte_fallback"] = b(o.byte_fallback);
  for (const auto& e : o.extra) {
    size_t eq = e.find('=');
    LMF_CHECK(eq != std::string::npos && eq > 0, ValueError,
              "SentencePiece training: extra option '{}' must be name=value", e);
    std::string key = e.substr(0, eq);
    if (key.starts_with("--")) key = key.substr(2);
    LMF_CHECK(key != "input" && key != "model_prefix", ValueError,
              "SentencePiece training: '{}' is set by lmforge itself", key);
    kw[key] = e.substr(eq + 1);
  }

  const fs::path out(model_path);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  const bool dot_model = out.extension() == ".model";
  const fs::path prefix =
      dot_model ? fs::path(out).replace_extension("") : fs::path(model_path + ".lmf-train");
  kw["model_prefix"] = prefix.string();
  auto st = sentencepiece::SentencePieceTrainer::Train(kw);
  LMF_CHECK(st.ok(), ValueError, "SentencePiece training on {} failed: {}", kw["input"],
            st.ToString());
  if (!dot_model) {
    std::error_code ec;
    fs::rename(fs::path(prefix.string() + ".model"), out, ec);
    LMF_CHECK(!ec, IoError, "cannot write '{}': {}", model_path, ec.message());
    fs::remove(fs::path(prefix.string() + ".vocab"), ec);
  }
}

std::vector<std::string> sentencepiece_vocab_pieces(const std::string& model_path) {
  auto sp = load(model_path);
  std::vector<std::string> out;
  for (int i = 0; i < sp->GetPieceSize(); ++i)
    if (!sp->IsControl(i) && !sp->IsUnknown(i)) out.push_back(sp->IdToPiece(i));
  return out;
}

namespace {

using ojson = nlohmann::ordered_json;

ojson marian_vocab(const std::vector<const std::vector<std::string>*>& lists,
                   const std::vector<std::string>& codes) {
  ojson v = ojson::object();
  auto add = [&](const std::string& p) {
    if (!v.contains(p)) v[p] = static_cast<int64_t>(v.size());
  };
  add("</s>");
  add("<unk>");
  for (const auto* l : lists)
    for (const auto& p : *l) add(p);
  for (const auto& c : codes) add(c);
  add("<pad>");
  return v;
}

// transformers' save_json: json.dump(indent=2) (ASCII-escaped, no final newline).
void write_vocab(const fs::path& p, const ojson& v) {
  write_text(p, v.dump(2, ' ', true));
}

ojson added_token(const std::string& content) {
  ojson t = ojson::object();
  t["content"] = content;
  t["lstrip"] = false;
  t["normalized"] = false;
  t["rstrip"] = false;
  t["single_word"] = false;
  t["special"] = true;
  return t;
}

}  // namespace

void write_marian_folder(const std::string& dir_str, const std::string& source_model,
                         const std::string& target_model, const MarianFolderOptions& o) {
  for (const auto& c : o.language_codes)
    LMF_CHECK(c.size() > 4 && c.starts_with(">>") && c.ends_with("<<"), ValueError,
              "Marian folder: language code '{}' must look like >>fr<<", c);
  const fs::path dir(dir_str);
  fs::create_directories(dir);
  const auto src = sentencepiece_vocab_pieces(source_model);
  const auto tgt = sentencepiece_vocab_pieces(target_model);
  auto copy = [&](const std::string& from, const char* name) {
    std::error_code ec;
    if (fs::exists(dir / name) && fs::equivalent(from, dir / name)) return;
    fs::copy_file(from, dir / name, fs::copy_options::overwrite_existing, ec);
    LMF_CHECK(!ec, IoError, "cannot copy '{}' to '{}': {}", from, (dir / name).string(),
              ec.message());
  };
  copy(source_model, "source.spm");
  copy(target_model, "target.spm");
  ojson vocab;
  if (o.separate_vocabs) {
    vocab = marian_vocab({&src}, {});
    write_vocab(dir / "target_vocab.json", marian_vocab({&tgt}, o.language_codes));
  } else {
    vocab = marian_vocab({&src, &tgt}, o.language_codes);
    std::error_code ec;
    fs::remove(dir / "target_vocab.json", ec);
  }
  write_vocab(dir / "vocab.json", vocab);

  // tokenizer_config.json as MarianTokenizer.save_pretrained writes it (sorted keys, indent 2).
  nlohmann::json cfg = nlohmann::json::object();
  nlohmann::json added = nlohmann::json::object();
  for (const char* t : {"</s>", "<unk>", "<pad>"})
    added[std::to_string(vocab[t].get<int64_t>())] = nlohmann::json(added_token(t));
  cfg["added_tokens_decoder"] = added;
  cfg["backend"] = "custom";
  cfg["eos_token"] = "</s>";
  cfg["model_max_length"] = 512;
  cfg["pad_token"] = "<pad>";
  cfg["separate_vocabs"] = o.separate_vocabs;
  cfg["source_lang"] = o.source_lang.empty() ? nlohmann::json() : nlohmann::json(o.source_lang);
  cfg["sp_model_kwargs"] = nlohmann::json::object();
  cfg["target_lang"] = o.target_lang.empty() ? nlohmann::json() : nlohmann::json(o.target_lang);
  cfg["tokenizer_class"] = "MarianTokenizer";
  cfg["unk_token"] = "<unk>";
  write_text(dir / "tokenizer_config.json", cfg.dump(2, ' ', false) + "\n");
}

}  // namespace lmf::tok
