// lmforge embed | similarity | search: sentence embeddings, their cosine matrix (or cross-encoder
// scores of sentence pairs), and semantic search over a document collection (a built-in demo
// collection when none is given).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>

#include "commands.h"
#include "lmforge/tasks/embed.h"
#include "lmforge/tasks/heads.h"

namespace lmf::cli {

namespace {

namespace fs = std::filesystem;

// Options every embedding command shares.
struct ModelOptions {
  std::string model;
  std::string pooling;
  bool normalize = false, no_normalize = false;
  int64_t max_length = 0;
  bool no_truncate = false;
  int64_t batch_size = 32;
  bool json = false;
  std::optional<uint64_t> pooler_init_seed;
  std::string command;  // embed | similarity | search (for messages)
};

void add_model_options(CLI::App* sub, ModelOptions& m, bool model_required) {
  m.command = sub->get_name();
  auto* opt =
      sub->add_option("--model,-m", m.model,
                      model_required ? "model folder (Hugging Face or sentence-transformers)"
                                     : "model folder (default: ./models/all-MiniLM-L6-v2)");
  if (model_required) opt->required();
  sub->add_option("--pooling", m.pooling,
                  "cls | mean | max | pooler (default: the folder's 1_Pooling config, else mean)")
      ->check(CLI::IsMember({"cls", "mean", "max", "mean_sqrt_len", "pooler"}));
  auto* n = sub->add_flag("--normalize", m.normalize,
                          "L2-normalize the embeddings (default: only with a Normalize module)");
  sub->add_flag("--no-normalize", m.no_normalize, "do not L2-normalize")->excludes(n);
  sub->add_option("--max-length", m.max_length,
                  "tokens per text, special tokens included (default: the folder's "
                  "max_seq_length, else the model's limit)")
      ->check(CLI::Range(2, 1 << 20));
  sub->add_flag("--no-truncate", m.no_truncate,
                "refuse texts longer than --max-length instead of cutting them");
  sub->add_option("--batch-size", m.batch_size, "texts per forward pass")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  sub->add_option(
      "--pooler-init-seed", m.pooler_init_seed,
      "N: a checkpoint without pooler weights gets a pooler initialised from seed N\n"
      "(normal(0, initializer_range), as HF initialises one; the same N gives the same\n"
      "pooler, but it is untrained) instead of --pooling pooler being refused");
  sub->add_flag("--json", m.json, "print JSON instead of the human-readable report");
}

tasks::SentenceEmbedder load_embedder(const ModelOptions& m) {
  const std::string dir = m.model.empty() ? kDefaultModelDir : m.model;
  check_model_dir(dir);
  tasks::EmbedderOptions o;
  if (!m.pooling.empty()) o.pooling = tasks::parse_pooling(m.pooling);
  if (m.normalize) o.normalize = true;
  if (m.no_normalize) o.normalize = false;
  if (m.max_length > 0) o.max_length = m.max_length;
  o.truncate = !m.no_truncate;
  o.batch_size = m.batch_size;
  o.load.pooler_init_seed = m.pooler_init_seed;
  auto emb = tasks::SentenceEmbedder::from_pretrained(dir, o);
  const auto& rep = emb.load_report();
  const auto& pooling = emb.pooling();
  if (rep.pooler_missing && !rep.pooler_initialized &&
      std::find(pooling.begin(), pooling.end(), tasks::Pooling::pooler) != pooling.end())
    throw ValueError(fmt::format(
        "{} has no pooler weights (it was saved by a model without a pooler, e.g. "
        "BertForMaskedLM), so --pooling pooler is refused rather than random on every run. Use "
        "--pooling cls or --pooling mean, or --pooler-init-seed N for a pooler initialised from "
        "seed N (the same on every run, but untrained), e.g. lmforge {} --model {} --pooling "
        "pooler --pooler-init-seed 42 ...",
        dir, m.command, dir));
  return emb;
}

std::string model_name(const ModelOptions& m) {
  fs::path p = fs::path(m.model.empty() ? kDefaultModelDir : m.model).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

std::string jstr(const std::string& s) {
  return nlohmann::json(s).dump();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<float> row(const Tensor& t, int64_t i) {
  const int64_t w = t.size(1);
  const float* p = t.data<float>() + i * w;
  return {p, p + w};
}

// ---- embed ------------------------------------------------------------------------------------

int run_embed(const ModelOptions& m, const InputOptions& in) {
  check_model_dir(m.model.empty() ? kDefaultModelDir : m.model);
  const auto texts = read_inputs(in, "sentence");
  const auto emb = load_embedder(m);
  const auto t0 = std::chrono::steady_clock::now();
  const Tensor v = emb.encode(texts);
  const double secs = seconds_since(t0);
  std::vector<std::string> names;
  for (auto p : emb.pooling()) names.push_back(tasks::pooling_name(p));
  if (m.json) {
    fmt::print(
        "{{\"model\": {}, \"pooling\": {}, \"normalized\": {}, \"dimension\": {}, "
        "\"embeddings\": [",
        jstr(model_name(m)), jstr(fmt::format("{}", fmt::join(names, "+"))), emb.normalize(),
        emb.dimension());
    for (size_t i = 0; i < texts.size(); ++i)
      fmt::print("{}\n  {{\"text\": {}, \"embedding\": [{}]}}", i ? "," : "", jstr(texts[i]),
                 fmt::join(row(v, static_cast<int64_t>(i)), ", "));
    fmt::print("\n]}}\n");
    return 0;
  }
  fmt::print("model {}: {}\n{} text(s) embedded in {:.2f} s\n\n", model_name(m), emb.describe(),
             texts.size(), secs);
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto r = row(v, static_cast<int64_t>(i));
    double norm = 0;
    for (float x : r) norm += double(x) * x;
    std::vector<std::string> head;
    for (size_t d = 0; d < std::min<size_t>(6, r.size()); ++d)
      head.push_back(fmt::format("{:+.4f}", r[d]));
    fmt::print("{:>3}  {}\n     [{} ... {:+.4f}]  norm {:.4f}\n", i + 1, ellipsize(texts[i], 72),
               fmt::join(head, " "), r.back(), std::sqrt(norm));
  }
  fmt::print("\n(use --json for every value)\n");
  return 0;
}

// ---- similarity -------------------------------------------------------------------------------

// The similarity options beyond the bi-encoder's: sentence pairs and the cross-encoder mode.
struct PairOptions {
  std::vector<std::string> pair_args;  // --pair A B, repeatable: flattened A1 B1 A2 B2 ...
  bool cross_encoder = false;
  std::string activation = "auto";  // auto | sigmoid | softmax | none
};

using TextPairs = std::vector<std::pair<std::string, std::string>>;

// True when `dir` holds a sequence-classification checkpoint and is no sentence-transformers
// bi-encoder folder (modules.json): the similarity command then scores pairs with it.
bool is_cross_encoder_folder(const std::string& dir) {
  if (fs::exists(fs::path(dir) / "modules.json")) return false;
  std::ifstream f(fs::path(dir) / "config.json");
  if (!f) return false;
  const auto cfg = nlohmann::json::parse(f, nullptr, false);
  if (!cfg.is_object() || !cfg.contains("architectures") || !cfg["architectures"].is_array())
    return false;
  for (const auto& a : cfg["architectures"]) {
    const std::string suffix = "ForSequenceClassification";
    if (a.is_string() && a.get<std::string>().size() > suffix.size() &&
        a.get<std::string>().ends_with(suffix))
      return true;
  }
  return false;
}

void check_pair(const std::pair<std::string, std::string>& p, const std::string& where) {
  check_utf8(p.first, where);
  check_utf8(p.second, where);
  auto blank = [](const std::string& t) {
    return t.find_first_not_of(" \t\r\n") == std::string::npos;
  };
  LMF_CHECK(!blank(p.first) && !blank(p.second), ValueError,
            "{}: empty text in the pair; both sentences must be non-empty", where);
}

// Pairs from a file or stdin: "A<TAB>B" lines, JSON objects {"text": A, "text_pair": B} or JSON
// arrays ["A", "B"]; blank lines are skipped.
TextPairs parse_pair_lines(std::istream& is, const std::string& name) {
  TextPairs out;
  std::string line;
  for (size_t n = 1; std::getline(is, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = fmt::format("{} line {}", name, n);
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    if (line[first] == '{' || line[first] == '[') {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      LMF_CHECK(!j.is_discarded(), ValueError, "{}: starts like JSON but does not parse", where);
      if (j.is_array()) {
        LMF_CHECK(j.size() == 2 && j[0].is_string() && j[1].is_string(), ValueError,
                  "{}: a JSON array must hold exactly two strings [\"A\", \"B\"]", where);
        out.emplace_back(j[0].get<std::string>(), j[1].get<std::string>());
      } else {
        auto str = [&](const char* k) {
          LMF_CHECK(j.contains(k) && j[k].is_string(), ValueError,
                    "{}: expected a JSON object with string fields \"text\" and \"text_pair\"",
                    where);
          return j[k].get<std::string>();
        };
        out.emplace_back(str("text"), str("text_pair"));
      }
    } else {
      const size_t tab = line.find('\t');
      LMF_CHECK(tab != std::string::npos, ValueError,
                "{}: a pair line needs a tab between the two sentences (\"A<TAB>B\"), or use "
                "JSON lines {{\"text\": A, \"text_pair\": B}}",
                where);
      out.emplace_back(line.substr(0, tab), line.substr(tab + 1));
    }
    check_pair(out.back(), where);
  }
  return out;
}

TextPairs read_pairs(const PairOptions& po, const InputOptions& in, bool cross) {
  TextPairs pairs;
  if (!po.pair_args.empty()) {
    LMF_CHECK(po.pair_args.size() % 2 == 0, ValueError, "--pair takes two sentences: --pair A B");
    for (size_t i = 0; i + 1 < po.pair_args.size(); i += 2) {
      pairs.emplace_back(po.pair_args[i], po.pair_args[i + 1]);
      check_pair(pairs.back(), fmt::format("--pair {}", i / 2 + 1));
    }
    return pairs;
  }
  if (!in.args.empty()) {  // sentences as arguments: every pair i < j
    LMF_CHECK(in.args.size() >= 2, ValueError,
              "similarity needs at least two sentences, got {}; or give --pair A B",
              in.args.size());
    for (size_t i = 0; i < in.args.size(); ++i)
      for (size_t j = i + 1; j < in.args.size(); ++j) {
        pairs.emplace_back(in.args[i], in.args[j]);
        check_pair(pairs.back(), fmt::format("arguments {} and {}", i + 1, j + 1));
      }
    return pairs;
  }
  LMF_CHECK(cross, ValueError, "internal: pair lines are read in cross-encoder mode only");
  if (!in.file.empty() && in.file != "-") {
    LMF_CHECK(!fs::is_directory(in.file), IoError, "'{}' is a folder, not a text file", in.file);
    std::ifstream f(in.file, std::ios::binary);
    LMF_CHECK(f.good(), IoError, "cannot read '{}': no such file or no permission", in.file);
    pairs = parse_pair_lines(f, in.file);
  } else if (!in.file.empty() || !isatty(STDIN_FILENO)) {
    pairs = parse_pair_lines(std::cin, "standard input");
  } else {
    fail<ValueError>(
        "no input: give --pair A B, sentences as arguments, --file FILE or standard input with "
        "one pair per line (\"A<TAB>B\" or JSON {{\"text\": A, \"text_pair\": B}})");
  }
  LMF_CHECK(!pairs.empty(), ValueError, "empty input: no sentence pairs (blank lines are skipped)");
  return pairs;
}

int run_cross_encoder(const ModelOptions& m, const PairOptions& po, const InputOptions& in) {
  const std::string dir = m.model.empty() ? kDefaultModelDir : m.model;
  check_model_dir(dir);
  const auto pairs = read_pairs(po, in, true);
  tasks::CrossEncoder ce(dir);
  tasks::CrossEncoderOptions o;
  o.activation = po.activation == "auto" ? tasks::ScoreFunction::automatic
                                         : tasks::parse_score_function(po.activation);
  o.batch_size = static_cast<size_t>(m.batch_size);
  if (m.max_length > 0) o.max_length = static_cast<size_t>(m.max_length);
  const auto scores = ce.predict(pairs, o);
  const auto f =
      o.activation == tasks::ScoreFunction::automatic ? ce.default_activation() : o.activation;
  const size_t L = ce.num_labels();
  std::vector<std::string> labels;
  for (size_t l = 0; l < L; ++l) labels.push_back(ce.label(static_cast<int64_t>(l)));
  auto best = [&](const std::vector<double>& s) {
    return static_cast<size_t>(std::max_element(s.begin(), s.end()) - s.begin());
  };
  if (m.json) {
    nlohmann::ordered_json j = {{"model", model_name(m)},
                                {"mode", "cross-encoder"},
                                {"architecture", ce.model().architecture()},
                                {"activation", tasks::score_function_name(f)},
                                {"labels", labels}};
    auto& arr = j["pairs"] = nlohmann::ordered_json::array();
    for (size_t i = 0; i < pairs.size(); ++i) {
      nlohmann::ordered_json p = {{"text", pairs[i].first}, {"text_pair", pairs[i].second}};
      if (L == 1) {
        p["score"] = scores[i][0];
      } else {
        p["scores"] = scores[i];
        p["label"] = labels[best(scores[i])];
      }
      arr.push_back(std::move(p));
    }
    fmt::print("{}\n", j.dump(1));
    return 0;
  }
  fmt::print("cross-encoder scores with {} ({}, {} label{}, {})\n\n", model_name(m),
             ce.model().architecture(), L, L == 1 ? "" : "s", tasks::score_function_name(f));
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (L == 1) {
      fmt::print("  {:8.4f}  {}  <->  {}\n", scores[i][0], ellipsize(pairs[i].first, 50),
                 ellipsize(pairs[i].second, 50));
      continue;
    }
    std::string cols;
    for (size_t l = 0; l < L; ++l) cols += fmt::format("{} {:.4f}  ", labels[l], scores[i][l]);
    fmt::print("  [{}] {}  <->  {}\n      {}-> {}\n", i + 1, ellipsize(pairs[i].first, 50),
               ellipsize(pairs[i].second, 50), cols, labels[best(scores[i])]);
  }
  return 0;
}

// Bi-encoder cosine of each given pair (--pair with an embedding model).
int run_pair_cosine(const ModelOptions& m, const PairOptions& po, const InputOptions& in) {
  const auto pairs = read_pairs(po, in, false);
  const auto emb = load_embedder(m);
  std::vector<std::string> a, b;
  for (const auto& [x, y] : pairs) a.push_back(x), b.push_back(y);
  const Tensor va = emb.encode(a), vb = emb.encode(b);
  std::vector<float> cos;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto ra = row(va, static_cast<int64_t>(i)), rb = row(vb, static_cast<int64_t>(i));
    double dot = 0, na = 0, nb = 0;
    for (size_t d = 0; d < ra.size(); ++d)
      dot += double(ra[d]) * rb[d], na += double(ra[d]) * ra[d], nb += double(rb[d]) * rb[d];
    cos.push_back(static_cast<float>(dot / std::max(std::sqrt(na) * std::sqrt(nb), 1e-12)));
  }
  if (m.json) {
    nlohmann::ordered_json j = {{"model", model_name(m)}, {"mode", "bi-encoder"}};
    auto& arr = j["pairs"] = nlohmann::ordered_json::array();
    for (size_t i = 0; i < pairs.size(); ++i)
      arr.push_back({{"text", pairs[i].first}, {"text_pair", pairs[i].second}, {"score", cos[i]}});
    fmt::print("{}\n", j.dump(1));
    return 0;
  }
  fmt::print("cosine similarity with {} ({})\n\n", model_name(m), emb.describe());
  for (size_t i = 0; i < pairs.size(); ++i)
    fmt::print("  {:6.3f}  {}  <->  {}\n", cos[i], ellipsize(pairs[i].first, 50),
               ellipsize(pairs[i].second, 50));
  return 0;
}

int run_similarity(const ModelOptions& m, const InputOptions& in, const PairOptions& po) {
  const std::string dir = m.model.empty() ? kDefaultModelDir : m.model;
  check_model_dir(dir);
  if (po.cross_encoder || is_cross_encoder_folder(dir)) return run_cross_encoder(m, po, in);
  LMF_CHECK(po.activation == "auto", ValueError,
            "--activation applies to cross-encoders only; '{}' is an embedding model (add "
            "--cross-encoder to score pairs with its classification head)",
            dir);
  if (!po.pair_args.empty()) return run_pair_cosine(m, po, in);
  const auto texts = read_inputs(in, "sentence");
  LMF_CHECK(texts.size() >= 2, ValueError, "similarity needs at least two sentences, got {}",
            texts.size());
  const auto emb = load_embedder(m);
  const Tensor v = emb.encode(texts);
  const Tensor sim = tasks::cosine_similarity_matrix(v, v).contiguous();
  const auto n = static_cast<int64_t>(texts.size());
  if (m.json) {
    fmt::print("{{\"model\": {}, \"sentences\": [", jstr(model_name(m)));
    for (int64_t i = 0; i < n; ++i) fmt::print("{}{}", i ? ", " : "", jstr(texts[size_t(i)]));
    fmt::print("],\n \"similarity\": [");
    for (int64_t i = 0; i < n; ++i)
      fmt::print("{}\n  [{}]", i ? "," : "", fmt::join(row(sim, i), ", "));
    fmt::print("\n]}}\n");
    return 0;
  }
  fmt::print("cosine similarity with {} ({})\n\n", model_name(m), emb.describe());
  for (int64_t i = 0; i < n; ++i) fmt::print("  [{}] {}\n", i + 1, ellipsize(texts[size_t(i)], 90));
  struct Pair {
    int64_t a, b;
    float s;
  };
  std::vector<Pair> pairs;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) pairs.push_back({i, j, row(sim, i)[size_t(j)]});
  std::stable_sort(pairs.begin(), pairs.end(),
                   [](const Pair& x, const Pair& y) { return x.s > y.s; });
  fmt::print("\n");
  if (n <= 12) {
    fmt::print("      ");
    for (int64_t j = 0; j < n; ++j) fmt::print("{:>7}", fmt::format("[{}]", j + 1));
    fmt::print("\n");
    for (int64_t i = 0; i < n; ++i) {
      fmt::print("{:>6}", fmt::format("[{}]", i + 1));
      for (float s : row(sim, i)) fmt::print("{:>7.3f}", s);
      fmt::print("\n");
    }
    fmt::print("\n");
  }
  const size_t shown = std::min<size_t>(pairs.size(), n <= 12 ? 3 : 10);
  fmt::print("most similar pairs:\n");
  for (size_t k = 0; k < shown; ++k)
    fmt::print("  {:.3f}  [{}] {}  <->  [{}] {}\n", pairs[k].s, pairs[k].a + 1,
               ellipsize(texts[size_t(pairs[k].a)], 40), pairs[k].b + 1,
               ellipsize(texts[size_t(pairs[k].b)], 40));
  return 0;
}

// ---- search -----------------------------------------------------------------------------------

const std::vector<std::string> kDemoDocs = {
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, completed in 1889.",
    "To bake bread, mix flour, water, yeast and salt, let the dough rise, then bake it in a hot "
    "oven.",
    "Regular exercise strengthens the heart and lowers blood pressure.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "A goalkeeper's job is to stop the ball from crossing the goal line.",
    "Python is a popular programming language for data science and machine learning.",
    "Mount Everest, at 8,849 metres, is the highest mountain above sea level.",
    "Cats are independent pets that sleep for most of the day.",
    "To reset your password, click 'Forgot password' on the sign-in page and follow the link in "
    "the email.",
    "The Great Barrier Reef, off the coast of Australia, is the world's largest coral reef system.",
    "Jazz grew out of blues and ragtime in New Orleans in the early twentieth century.",
};
const std::vector<std::string> kDemoQueries = {
    "How do I make homemade bread?",
    "I can't log in to my account anymore",
    "Which peak is the tallest on Earth?",
};

struct SearchOptions {
  std::vector<std::string> queries;
  std::string docs;
  std::string format = "auto";
  std::string field = "text";
  int64_t top_k = 3;
};

int run_search(const ModelOptions& m, const SearchOptions& s) {
  const bool demo = s.queries.empty() && s.docs.empty();
  LMF_CHECK(!s.queries.empty() || demo, ValueError,
            "--docs given without a query: add --query \"...\" (repeatable)");
  std::vector<std::string> docs =
      s.docs.empty() ? kDemoDocs : read_text_file(s.docs, s.format, s.field);
  LMF_CHECK(!docs.empty(), ValueError, "'{}' holds no documents (blank lines are skipped)", s.docs);
  std::vector<std::string> queries = demo ? kDemoQueries : s.queries;
  for (size_t i = 0; i < queries.size(); ++i) {
    check_utf8(queries[i], fmt::format("query {}", i + 1));
    LMF_CHECK(queries[i].find_first_not_of(" \t\r\n") != std::string::npos, ValueError,
              "query {} is empty", i + 1);
  }
  const auto t_load = std::chrono::steady_clock::now();
  const auto emb = load_embedder(m);
  const double load_s = seconds_since(t_load);
  const auto t0 = std::chrono::steady_clock::now();
  const Tensor dv = emb.encode(docs);
  const Tensor qv = emb.encode(queries);
  const double embed_s = seconds_since(t0);
  const Tensor sim = tasks::cosine_similarity_matrix(qv, dv).contiguous();
  const size_t k = std::min<size_t>(static_cast<size_t>(s.top_k), docs.size());

  std::vector<std::vector<size_t>> ranked;
  for (size_t q = 0; q < queries.size(); ++q) {
    const auto scores = row(sim, static_cast<int64_t>(q));
    std::vector<size_t> idx(docs.size());
    std::iota(idx.begin(), idx.end(), size_t{0});
    std::stable_sort(idx.begin(), idx.end(),
                     [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    idx.resize(k);
    ranked.push_back(idx);
  }
  if (m.json) {
    fmt::print("{{\"model\": {}, \"documents\": {}, \"queries\": [", jstr(model_name(m)),
               docs.size());
    for (size_t q = 0; q < queries.size(); ++q) {
      const auto scores = row(sim, static_cast<int64_t>(q));
      fmt::print("{}\n  {{\"query\": {}, \"results\": [", q ? "," : "", jstr(queries[q]));
      for (size_t r = 0; r < k; ++r)
        fmt::print("{}{{\"rank\": {}, \"score\": {}, \"index\": {}, \"text\": {}}}", r ? ", " : "",
                   r + 1, scores[ranked[q][r]], ranked[q][r], jstr(docs[ranked[q][r]]));
      fmt::print("]}}");
    }
    fmt::print("\n]}}\n");
    return 0;
  }
  fmt::print("lmforge search: semantic search with {} ({})\n", model_name(m), emb.describe());
  fmt::print("{} documents{}, {} queries; model loaded in {:.2f} s, texts embedded in {:.2f} s\n",
             docs.size(), demo ? " (built-in demo collection)" : "", queries.size(), load_s,
             embed_s);
  for (size_t q = 0; q < queries.size(); ++q) {
    const auto scores = row(sim, static_cast<int64_t>(q));
    fmt::print("\nquery: \"{}\"\n", queries[q]);
    for (size_t r = 0; r < k; ++r)
      fmt::print("  {}. {:.3f}  {}\n", r + 1, scores[ranked[q][r]],
                 ellipsize(docs[ranked[q][r]], 96));
  }
  if (demo)
    fmt::print(
        "\nyour own: lmforge search --docs FILE --query \"...\" [--top-k K]  "
        "(FILE: one document per line, or JSONL with a \"text\" field)\n");
  return 0;
}

constexpr const char* kInputHelp =
    "INPUT\n"
    "  Texts come from the arguments, else --file FILE, else standard input: one text per line\n"
    "  (blank lines skipped), or JSON lines {\"text\": \"...\"} (--field picks another key).\n"
    "  Input must be UTF-8.\n";
constexpr const char* kModelHelp =
    "MODEL\n"
    "  A Hugging Face encoder folder (BERT, RoBERTa, ALBERT, ELECTRA: config.json, tokenizer,\n"
    "  model.safetensors or pytorch_model.bin). A sentence-transformers folder (modules.json)\n"
    "  brings its own pooling, normalisation and max_seq_length, so the embeddings equal\n"
    "  SentenceTransformer.encode's; other folders default to mean pooling, not normalised.\n"
    "  --pooling pooler uses the model's pooler (tanh(dense(CLS))) and is refused when the\n"
    "  checkpoint has none (e.g. one saved from a masked-LM model), unless --pooler-init-seed N\n"
    "  asks for one initialised from seed N (reproducible, but untrained):\n"
    "    lmforge embed --model DIR --pooling pooler --pooler-init-seed 42 \"text\"\n";
constexpr const char* kExitHelp =
    "EXIT STATUS\n"
    "  0 success; 2 bad input or model (missing folder, unknown architecture, empty input,\n"
    "  invalid UTF-8, over-long text with --no-truncate); 1 internal error.\n";

}  // namespace

void register_embed_commands(CLI::App& app, Commands& out) {
  {
    auto m = std::make_shared<ModelOptions>();
    auto in = std::make_shared<InputOptions>();
    auto* sub = app.add_subcommand(
        "embed",
        "Sentence embeddings: one vector per input text, pooled from an encoder's hidden states\n"
        "(cls | mean | max | pooler), optionally L2-normalised.");
    sub->add_option("texts", in->args, "texts to embed (else --file or standard input)");
    add_model_options(sub, *m, true);
    add_input_options(sub, *in);
    sub->footer(std::string(kInputHelp) + kModelHelp +
                "OUTPUT\n"
                "  Human: the settings, then per text its first values, last value and norm.\n"
                "  --json: {\"model\", \"pooling\", \"normalized\", \"dimension\",\n"
                "  \"embeddings\": [{\"text\", \"embedding\": [...]}]} with every value.\n" +
                kExitHelp +
                "EXAMPLES\n"
                "  lmforge embed --model models/all-MiniLM-L6-v2 \"A man is eating food.\"\n"
                "  lmforge embed -m models/all-MiniLM-L6-v2 --json --file sentences.txt\n"
                "  cat docs.jsonl | lmforge embed -m DIR --pooling cls --normalize --json\n");
    out.push_back({sub, [m, in] { return run_embed(*m, *in); }});
  }
  {
    auto m = std::make_shared<ModelOptions>();
    auto in = std::make_shared<InputOptions>();
    auto po = std::make_shared<PairOptions>();
    auto* sub = app.add_subcommand(
        "similarity",
        "Cosine similarity of every pair of sentences (bi-encoder): a matrix and the most\n"
        "similar pairs. With a sequence-classification model (cross-encoder), the score of\n"
        "each sentence pair, as sentence-transformers' CrossEncoder.predict.");
    sub->add_option("sentences", in->args, "sentences to compare (else --file or standard input)");
    add_model_options(sub, *m, false);
    add_input_options(sub, *in);
    sub->add_option("--pair", po->pair_args,
                    "a sentence pair to score (repeatable): --pair \"A\" \"B\"")
        ->expected(2)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    sub->add_flag("--cross-encoder", po->cross_encoder,
                  "score pairs with the model's sequence-classification head (the default for a\n"
                  "*ForSequenceClassification folder without modules.json)");
    sub->add_option("--activation", po->activation,
                    "cross-encoder scores: auto (sigmoid for 1 label, or config.json's\n"
                    "sentence_transformers.activation_fn; softmax for several) | sigmoid |\n"
                    "softmax | none (raw logits)")
        ->check(CLI::IsMember({"auto", "sigmoid", "softmax", "none"}))
        ->capture_default_str();
    sub->footer(
        std::string(kInputHelp) + kModelHelp +
        "CROSS-ENCODER\n"
        "  A *ForSequenceClassification folder (or --cross-encoder) scores sentence pairs: from\n"
        "  --pair A B (repeatable), from sentences given as arguments (every pair), or from\n"
        "  --file / standard input with one pair per line: \"A<TAB>B\", a JSON object\n"
        "  {\"text\": A, \"text_pair\": B} or a JSON array [\"A\", \"B\"]. One label: sigmoid of\n"
        "  the logit (CrossEncoder's default); several: softmax over the labels. --pair with an\n"
        "  embedding model prints the cosine of each pair. --pooling and --normalize do not\n"
        "  apply to cross-encoders; --max-length and --batch-size do.\n"
        "OUTPUT\n"
        "  Human: the numbered sentences, the matrix (up to 12 sentences) and the most\n"
        "  similar pairs. --json: {\"model\", \"sentences\", \"similarity\": [[...]]}.\n"
        "  Pairs --json: {\"model\", \"mode\", \"pairs\": [{\"text\", \"text_pair\", \"score\"}]}\n"
        "  (cross-encoders with several labels: \"scores\" per label and the best \"label\").\n" +
        kExitHelp +
        "EXAMPLES\n"
        "  lmforge similarity \"A man is eating food.\" \"A man eats bread.\" \"It is raining.\"\n"
        "  lmforge similarity --model DIR --file sentences.txt --json\n"
        "  lmforge similarity -m CROSS_ENCODER --pair \"How old is Ann?\" \"Ann is 30.\" --json\n"
        "  printf 'q1\\td1\\nq1\\td2\\n' | lmforge similarity -m CROSS_ENCODER\n");
    out.push_back({sub, [m, in, po] { return run_similarity(*m, *in, *po); }});
  }
  {
    auto m = std::make_shared<ModelOptions>();
    auto s = std::make_shared<SearchOptions>();
    auto* sub = app.add_subcommand(
        "search",
        "Semantic search: rank documents by cosine similarity to each query. Without --query\n"
        "and --docs it runs a demo: 3 queries over a built-in collection of 12 sentences.");
    add_model_options(sub, *m, false);
    sub->add_option("--query,-q", s->queries, "a query (repeatable)");
    sub->add_option("--docs,-d", s->docs,
                    "documents, one per line or JSONL (default: the built-in demo collection)");
    sub->add_option("--format", s->format, "--docs format: auto | text | jsonl")
        ->check(CLI::IsMember({"auto", "text", "jsonl"}))
        ->capture_default_str();
    sub->add_option("--field", s->field, "the JSONL field holding the text")->capture_default_str();
    sub->add_option("--top-k,-k", s->top_k, "results per query")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    sub->footer(std::string(kModelHelp) +
                "OUTPUT\n"
                "  Human: per query the top-k documents with their cosine scores.\n"
                "  --json: {\"model\", \"documents\", \"queries\": [{\"query\", \"results\":\n"
                "  [{\"rank\", \"score\", \"index\" (0-based line), \"text\"}]}]}.\n" +
                kExitHelp +
                "EXAMPLES\n"
                "  lmforge search                      # the demo, default model\n"
                "  lmforge search --docs faq.txt -q \"how do I reset my password\" -k 5\n");
    out.push_back({sub, [m, s] { return run_search(*m, *s); }});
  }
}

}  // namespace lmf::cli
