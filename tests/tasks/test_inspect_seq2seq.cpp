// `lmforge inspect` on an encoder-decoder folder (tasks::inspect_model) against what transformers
// says of the tiny Marian fixture (scripts/reference/gen_inspect_seq2seq_goldens.py,
// tests/fixtures/translation_eval/inspect.json), and a decoder folder is described too.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"
#include "lmforge/tasks/inspect.h"

namespace {

using namespace lmf;

const std::string kFix = LMF_FIXTURES_DIR;

nlohmann::json shape_value(const tasks::ModelInfo& info, const std::string& key) {
  for (const auto& [k, v] : info.shape)
    if (k == key) return v;
  return nullptr;
}

TEST(InspectSeq2Seq, MarianFolderAsTransformersSeesIt) {
  const nlohmann::json g =
      nlohmann::json::parse(std::ifstream(kFix + "/translation_eval/inspect.json"));
  const tasks::ModelInfo info = tasks::inspect_model(kFix + "/" + g["fixture"].get<std::string>());
  EXPECT_FALSE(info.bert_family);
  EXPECT_EQ(info.architecture, g["architecture"].get<std::string>());
  EXPECT_EQ(info.model_type, g["model_type"].get<std::string>());
  EXPECT_EQ(info.parameters, g["parameters_without_positions"].get<int64_t>());
  for (const char* k : {"d_model", "encoder_layers", "decoder_layers"})
    EXPECT_EQ(shape_value(info, k), g[k]) << k;
  EXPECT_NE(info.tokenizer.find("Marian"), std::string::npos) << info.tokenizer;
  EXPECT_NE(info.tokenizer.find(std::to_string(g["tokenizer_size"].get<int64_t>()) + " tokens"),
            std::string::npos)
      << info.tokenizer;
  EXPECT_EQ(info.weight_format, "safetensors");
  EXPECT_TRUE(info.report.missing_keys.empty());
  EXPECT_TRUE(info.report.unexpected_keys.empty());
  ASSERT_FALSE(info.dtypes.empty());
  EXPECT_EQ(info.dtypes.begin()->first, "F32");
}

TEST(InspectSeq2Seq, DecoderFolderIsDescribedToo) {
  const tasks::ModelInfo info = tasks::inspect_model(kFix + "/decoder/gpt2");
  EXPECT_FALSE(info.bert_family);
  EXPECT_EQ(info.model_type, "gpt2");
  EXPECT_EQ(info.architecture, "GPT2LMHeadModel");
  EXPECT_GT(info.parameters, 0);
}

TEST(InspectSeq2Seq, MissingFolderIsAnIoError) {
  EXPECT_THROW(tasks::inspect_model(kFix + "/no_such_model"), IoError);
}

}  // namespace
