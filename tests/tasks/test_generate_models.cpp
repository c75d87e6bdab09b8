// generate() on the tiny GPT-2 / LLaMA / Qwen2 / Mistral checkpoints
// (tests/fixtures/decoder/<name>/) against transformers' model.generate()
// (fixtures/generate/generate_goldens.json): identical token ids for greedy and beam search, single
// prompts and left-padded batches.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "lmforge/io/checkpoint.h"
#include "lmforge/models/gpt2.h"
#include "lmforge/models/llama.h"
#include "lmforge/tasks/generate.h"

using namespace lmf;
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// As the models tests load them (the registry may not list the decoder families yet).
std::unique_ptr<models::DecoderModel> load_decoder(const fs::path& dir, const std::string& name) {
  const std::string cfg = read_text(dir / "config.json");
  std::unique_ptr<models::DecoderModel> m;
  if (name == "gpt2") {
    m = models::make_gpt2_model(models::GPT2Config::from_json(cfg), "GPT2LMHeadModel");
  } else {
    const auto c = models::LlamaConfig::from_json(cfg);
    m = models::make_llama_model(c, c.architectures.at(0));
  }
  m->load(io::load_checkpoint_dir(dir.string()), {}, name);
  m->eval();
  return m;
}

}  // namespace

TEST(GenerateGoldens, TinyCheckpointsMatchTransformersGenerate) {
  const fs::path golden = fs::path(LMF_FIXTURES_DIR) / "generate" / "generate_goldens.json";
  ASSERT_TRUE(fs::exists(golden)) << "run scripts/reference/gen_generate_goldens.py";
  std::ifstream f(golden);
  const auto g = nlohmann::json::parse(f);
  std::map<std::string, std::unique_ptr<models::DecoderModel>> loaded;
  int checked = 0;
  for (const auto& c : g["cases"]) {
    const std::string name = c["model"];
    const fs::path dir = fs::path(LMF_FIXTURES_DIR) / "decoder" / name;
    ASSERT_TRUE(fs::exists(dir / "config.json")) << dir;
    auto& m = loaded[name];
    if (!m) m = load_decoder(dir, name);
    const auto cfg = tasks::GenerationConfig::from_json(c["config"]);
    const auto prompts = c["prompts"].get<std::vector<std::vector<int64_t>>>();
    // The default prompt pass, and the prompt in pieces of 3 positions through the cache
    // (chunked prefill, left padding included): the same tokens as transformers either way.
    for (int64_t chunk : {int64_t{256}, int64_t{3}}) {
      tasks::GenerateOptions opt;
      opt.prefill_chunk = chunk;
      const auto r = tasks::generate(*m, prompts, cfg, opt);
      const auto& want = c["sequences"];
      ASSERT_EQ(r.sequences.size(), want.size()) << c["name"];
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(r.sequences[i].output_ids, want[i]["output_ids"].get<std::vector<int64_t>>())
            << c["name"] << " sequence " << i << " prefill chunk " << chunk;
        if (want[i].contains("score")) {
          ASSERT_TRUE(r.sequences[i].score);
          const double w = want[i]["score"];
          EXPECT_NEAR(*r.sequences[i].score, w, 1e-3 * std::max(1.0, std::fabs(w)))
              << c["name"] << " " << i << " prefill chunk " << chunk;
        }
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 64);
}
