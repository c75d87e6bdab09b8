// tasks::generate_seq2seq on T5 (decoder start = pad = 0, eos 1, relative positions, no position
// limit) against transformers 5.25's generate(): greedy and beam search, batched and single, on the
// tiny checkpoints of scripts/reference/gen_t5_goldens.py (tests/fixtures/t5/generate.json).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "lmforge/models/registry.h"
#include "lmforge/tasks/seq2seq.h"
#include "models/seq2seq_test_util.h"

using namespace lmf;
using namespace lmf::tasks;
using nlohmann::json;

namespace {

std::string fixture(const std::string& rel) {
  return std::string(LMF_FIXTURES_DIR) + "/" + rel;
}

json t5_generate_golden() {
  std::ifstream f(fixture("t5/generate.json"));
  return json::parse(f);
}

}  // namespace

TEST(T5Generate, OutputsEqualTransformersGenerate) {
  const json g = t5_generate_golden();
  ASSERT_GE(g.at("cases").size(), 10u);
  std::map<std::string, std::unique_ptr<models::EncoderDecoderModel>> models;
  for (const json& c : g.at("cases")) {
    const std::string name = c.at("name"), rel = c.at("model");
    SCOPED_TRACE(name);
    if (!models.count(rel)) {
      models[rel] = models::load_pretrained_as<models::EncoderDecoderModel>(fixture(rel),
                                                                            "an encoder-decoder");
      models[rel]->eval();
      models[rel]->prepare_inference();
    }
    const GenerationConfig cfg = GenerationConfig::from_json(
        c.at("kwargs"), GenerationConfig::from_pretrained(fixture(rel)));
    EXPECT_EQ(cfg.decoder_start_token_id, 0);
    lmf::models::test::expect_generate_case(*models[rel], c, cfg);
  }
}

// The goldens exercise what they claim: eos (1) at different lengths under greedy search.
TEST(T5Generate, GoldensEndWithEosAtDifferentLengths) {
  const json g = t5_generate_golden();
  for (const json& c : g.at("cases")) {
    if (c.at("name").get<std::string>().find("greedy_batched") == std::string::npos) continue;
    std::set<size_t> lengths;
    for (const auto& row : c.at("output_ids")) {
      EXPECT_EQ(row.back(), 1) << c.at("name");
      lengths.insert(row.size());
    }
    EXPECT_GE(lengths.size(), 2u) << c.at("name");
  }
}
