// Real-weights parity: all-MiniLM-L6-v2 embeddings from lmforge vs sentence-transformers (goldens
// from scripts/reference/gen_minilm_goldens.py), batched and one sentence at a time.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/tasks/embed.h"

using namespace lmf;
namespace fs = std::filesystem;

namespace {

fs::path model_dir() {
  return fs::path(LMF_FIXTURES_DIR).parent_path().parent_path() / "models" / "all-MiniLM-L6-v2";
}

struct Goldens {
  std::vector<std::string> sentences;
  std::vector<std::vector<float>> embeddings;
  std::vector<std::vector<uint32_t>> input_ids;
};

const Goldens& goldens() {
  static const Goldens g = [] {
    Goldens g;
    const fs::path dir = fs::path(LMF_FIXTURES_DIR) / "minilm";
    std::ifstream lines(dir / "sentences.jsonl");
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) g.sentences.push_back(nlohmann::json::parse(line).get<std::string>());
    std::ifstream f(dir / "embeddings.json");
    const nlohmann::json j = nlohmann::json::parse(f);
    g.embeddings = j["embeddings"].get<std::vector<std::vector<float>>>();
    g.input_ids = j["input_ids"].get<std::vector<std::vector<uint32_t>>>();
    return g;
  }();
  return g;
}

// Checks every row of `emb` against the goldens; returns the worst max-abs and cosine seen.
void expect_matches(const Tensor& emb, const Goldens& g, const char* what) {
  ASSERT_EQ(emb.shape(), (Shape{static_cast<int64_t>(g.sentences.size()), 384})) << what;
  const auto v = emb.to_vector<float>();
  double worst_abs = 0, worst_cos = 1;
  for (size_t i = 0; i < g.sentences.size(); ++i) {
    double dot = 0, na = 0, nb = 0, mx = 0;
    for (size_t d = 0; d < 384; ++d) {
      const double a = v[i * 384 + d], b = g.embeddings[i][d];
      dot += a * b;
      na += a * a;
      nb += b * b;
      mx = std::max(mx, std::abs(a - b));
    }
    const double cos = dot / std::sqrt(na * nb);
    EXPECT_LE(mx, 1e-4) << what << " sentence " << i << ": " << g.sentences[i];
    EXPECT_GE(cos, 0.99999) << what << " sentence " << i << ": " << g.sentences[i];
    worst_abs = std::max(worst_abs, mx);
    worst_cos = std::min(worst_cos, cos);
  }
  std::printf("[ %s ] %zu sentences: worst max-abs %.3g, worst cosine %.8f\n", what,
              g.sentences.size(), worst_abs, worst_cos);
}

}  // namespace

TEST(EmbedMiniLM, MatchesSentenceTransformersBatchedAndSingle) {
  if (!fs::exists(model_dir() / "model.safetensors"))
    GTEST_SKIP() << "the real all-MiniLM-L6-v2 is not installed at " << model_dir()
                 << "; run `bash scripts/install_model.sh` (or scripts/setup.sh) to test it";
  const Goldens& g = goldens();
  ASSERT_GE(g.sentences.size(), 200u);
  ASSERT_EQ(g.embeddings.size(), g.sentences.size());
  auto emb = tasks::SentenceEmbedder::from_pretrained(model_dir().string());
  EXPECT_TRUE(emb.sentence_transformers_layout());
  EXPECT_TRUE(emb.normalize());
  EXPECT_EQ(emb.max_length(), 256);
  ASSERT_EQ(emb.pooling().size(), 1u);
  EXPECT_EQ(emb.pooling()[0], tasks::Pooling::mean);

  const auto encs = emb.tokenize(g.sentences);
  for (size_t i = 0; i < encs.size(); ++i)
    EXPECT_EQ(encs[i].ids, g.input_ids[i]) << "token ids differ from HF for: " << g.sentences[i];

  expect_matches(emb.encode(g.sentences), g, "batch 32");

  // One sentence per call (no padding at all).
  std::vector<Tensor> rows;
  for (const auto& s : g.sentences) rows.push_back(emb.encode({s}));
  Tensor single = Tensor::empty({static_cast<int64_t>(rows.size()), 384});
  for (size_t i = 0; i < rows.size(); ++i)
    single.narrow(0, static_cast<int64_t>(i), 1).copy_(rows[i]);
  expect_matches(single, g, "single");
}
