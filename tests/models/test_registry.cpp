// The family-neutral registry and loader: folders are dispatched by config.json's model_type /
// architectures, wrong kinds and unknown types are clear errors, and the generic save writes the
// same bytes as loading gave.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lmforge/core/error.h"
#include "lmforge/models/bert.h"
#include "lmforge/models/registry.h"

namespace lmf::models {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  return std::string(LMF_FIXTURES_DIR) + "/pipelines/" + name;
}

TEST(Registry, LoadsBertFolderThroughTheRegistry) {
  LoadReport rep;
  auto m = load_pretrained(fixture("bert_mlm"), {}, &rep);
  EXPECT_EQ(m->model_type(), "bert");
  EXPECT_EQ(m->architecture(), "BertForMaskedLM");
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_TRUE(rep.unexpected_keys.empty()) << rep.summary();
  auto enc = load_pretrained_as<EncoderModel>(fixture("bert_mlm"), "an encoder");
  EXPECT_EQ(enc->head(), EncoderHead::masked_lm);
}

TEST(Registry, ArchitectureOverrideAndRegisteredNames) {
  LoadOptions opt;
  opt.architecture = "BertModel";
  auto m = load_pretrained(fixture("bert_mlm"), opt);
  EXPECT_EQ(m->architecture(), "BertModel");
  const auto names = registered_architectures();
  EXPECT_NE(std::find(names.begin(), names.end(), "RobertaForMaskedLM"), names.end());
}

TEST(Registry, UnknownModelTypeNamesTheSupportedOnes) {
  try {
    create_pretrained(R"({"model_type": "mamba", "architectures": ["MambaForCausalLM"]})");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown model_type 'mamba'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bert"), std::string::npos) << msg;
  }
  EXPECT_THROW(create_pretrained(R"({"architectures": ["BertModel"]})"), ValueError);
  EXPECT_THROW(create_pretrained("{not json"), ValueError);
}

TEST(Registry, ArchitectureOfAnotherModelTypeIsRefused) {
  try {
    create_pretrained(R"({"model_type": "bert", "architectures": ["RobertaForMaskedLM"]})");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("model_type is bert"), std::string::npos) << e.what();
  }
}

TEST(Registry, GenericSaveRoundTripsTheCheckpointBytes) {
  auto m = load_pretrained(fixture("bert_mlm"));
  const fs::path out = fs::temp_directory_path() / "lmf_registry_save";
  fs::remove_all(out);
  save_pretrained(*m, out.string());
  // transformers saved the fixture; the generic saver writes the same bytes.
  const auto read = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  EXPECT_EQ(read(fixture("bert_mlm") + "/model.safetensors"), read(out / "model.safetensors"));
  auto again = load_pretrained(out.string());
  EXPECT_EQ(again->config_json(), m->config_json());
  fs::remove_all(out);
}

}  // namespace
}  // namespace lmf::models
