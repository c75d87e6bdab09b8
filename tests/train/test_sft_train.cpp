// Supervised fine-tuning against TRL 1.16 (scripts/reference/gen_sft_goldens.py,
// tests/fixtures/sft/): record reading with malformed records skipped and reported, token ids and
// completion-only labels of Alpaca and chat records with a chat template and of Alpaca records
// without one, and one Trainer step of a tiny LLaMA on right-padded batches (plain and with
// gradient accumulation over micro-batches of unequal trained-token counts).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "../train_data_util.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/tokenizers/chat_template.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/train/sft.h"

namespace {

using namespace lmf;
using namespace lmf::train;
namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kFix = std::string(LMF_FIXTURES_DIR);
const std::string kDir = kFix + "/sft";

json read_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f);
}

// The goldens' tokenizer folder: the tiny LLaMA's tokenizer.json with sft/tokenizer_config.json
// (chat template), or without a template.
std::string tokenizer_folder(bool with_template) {
  const fs::path d = fs::temp_directory_path() / ("lmf_sft_tok_" + std::to_string(::getpid()) +
                                                  (with_template ? "_chat" : "_plain"));
  fs::create_directories(d);
  fs::copy_file(kFix + "/decoder/llama/tokenizer.json", d / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  json cfg = read_json(kDir + "/tokenizer_config.json");
  if (!with_template) cfg.erase("chat_template");
  std::ofstream(d / "tokenizer_config.json") << cfg.dump();
  return d.string();
}

SftFormat format_of(const std::string& tok_dir, bool with_template, bool completion_only) {
  SftFormat f;
  const json cfg = read_json(tok_dir + "/tokenizer_config.json");
  f.special_tokens = tok::special_tokens_from_config(cfg);
  f.eos_token = "</s>";
  if (with_template) f.chat_template = cfg.at("chat_template").get<std::string>();
  f.completion_only_loss = completion_only;
  return f;
}

TEST(SftData, MalformedRecordsAreSkippedWithTheirPlace) {
  const SftData a = read_sft_records(kDir + "/alpaca.json");
  ASSERT_EQ(a.records.size(), 4u);
  EXPECT_TRUE(a.records[0].alpaca);
  EXPECT_EQ(a.records[1].messages[0]["content"],
            "Translate the sentence into French.\n\nThe cat sleeps.");
  ASSERT_EQ(a.skipped.size(), 2u);
  EXPECT_NE(a.skipped[0].find("alpaca.json: record 3: the output (answer) is empty"),
            std::string::npos)
      << a.skipped[0];
  EXPECT_NE(a.skipped[1].find("record 5: no \"output\" field"), std::string::npos) << a.skipped[1];

  const SftData c = read_sft_records(kDir + "/chat.jsonl");
  ASSERT_EQ(c.records.size(), 3u);
  EXPECT_EQ(c.records[2].where, kDir + "/chat.jsonl:7");
  ASSERT_EQ(c.skipped.size(), 3u);
  EXPECT_NE(c.skipped[0].find("chat.jsonl:3: the conversation does not end with an assistant"),
            std::string::npos)
      << c.skipped[0];
  EXPECT_NE(c.skipped[1].find("chat.jsonl:5: the assistant's answer is empty"), std::string::npos);
  EXPECT_NE(c.skipped[2].find("chat.jsonl:6:"), std::string::npos);

  const std::string strict =
      lmf::test::error_of([] { read_sft_records(kDir + "/chat.jsonl", /*strict=*/true); });
  EXPECT_NE(strict.find("chat.jsonl:3"), std::string::npos) << strict;
  const std::string bad_json = lmf::test::error_of([] {
    read_sft_records(lmf::test::write_temp_file("lmf_sft_bad", "b.jsonl", "{\"messages\": [\n"));
  });
  EXPECT_NE(bad_json.find("b.jsonl:1"), std::string::npos) << bad_json;
  const std::string none = lmf::test::error_of([] {
    read_sft_records(
        lmf::test::write_temp_file("lmf_sft_bad", "t.jsonl", "{\"text\": \"plain text\"}\n"));
  });
  EXPECT_NE(none.find("--recipe gpt"), std::string::npos) << none;
}

// Token ids and labels as SFTTrainer's _prepare_dataset makes them (completion-only and all
// tokens), for the three record kinds.
TEST(SftData, ExamplesEqualTrls) {
  const json g = read_json(kDir + "/examples.json");
  const std::string chat_dir = tokenizer_folder(true), plain_dir = tokenizer_folder(false);
  const tok::Tokenizer chat_tok = tok::Tokenizer::from_pretrained(chat_dir);
  const tok::Tokenizer plain_tok = tok::Tokenizer::from_pretrained(plain_dir);
  struct Case {
    const char* key;
    const char* file;
    bool chat;
  };
  for (const Case c : {Case{"alpaca_chat", "alpaca.json", true}, Case{"chat", "chat.jsonl", true},
                       Case{"alpaca_text", "alpaca.json", false}}) {
    const SftData d = read_sft_records(kDir + "/" + c.file);
    const json& want = g.at(c.key);
    ASSERT_EQ(d.records.size(), want.size()) << c.key;
    for (size_t i = 0; i < want.size(); ++i) {
      const tok::Tokenizer& t = c.chat ? chat_tok : plain_tok;
      const std::string dir = c.chat ? chat_dir : plain_dir;
      const LmExample only = sft_example(d.records[i], t, format_of(dir, c.chat, true));
      EXPECT_EQ(only.input_ids, want[i].at("input_ids").get<std::vector<int32_t>>())
          << c.key << " " << i;
      EXPECT_EQ(only.labels, want[i].at("labels").get<std::vector<int32_t>>()) << c.key << " " << i;
      const LmExample all = sft_example(d.records[i], t, format_of(dir, c.chat, false));
      EXPECT_TRUE(all.labels.empty());
      EXPECT_EQ(all.input_ids, want[i].at("labels_all").get<std::vector<int32_t>>())
          << c.key << " " << i;
    }
  }
  // A conversation needs a template.
  const SftData chat = read_sft_records(kDir + "/chat.jsonl");
  const std::string err = lmf::test::error_of(
      [&] { sft_example(chat.records[0], plain_tok, format_of(plain_dir, false, true)); });
  EXPECT_NE(err.find("--chat-template"), std::string::npos) << err;
  EXPECT_NE(err.find("chat.jsonl:1"), std::string::npos) << err;
}

class SftStep : public ::testing::TestWithParam<int> {};
INSTANTIATE_TEST_SUITE_P(Accumulation, SftStep, ::testing::Values(1, 2));

// One step on the four Alpaca examples, right-padded (and as 2 micro-batches of 2, whose trained
// token counts differ: HF's num_items_in_batch weighting makes both equal the single batch).
TEST_P(SftStep, OneTrainerStepMatchesPyTorch) {
  const io::StateDict g = io::load_safetensors(kDir + "/step.safetensors");
  SftOptions o;
  o.model_dir = kFix + "/decoder/llama";
  o.tokenizer_dir = tokenizer_folder(true);
  o.train_file = kDir + "/alpaca.json";
  SftReport rep;
  auto obj = make_sft_objective(o, &rep);
  EXPECT_EQ(rep.train_examples, 4);
  EXPECT_EQ(rep.skipped.size(), 2u);
  EXPECT_TRUE(rep.chat);
  const fs::path out = fs::temp_directory_path() /
                       ("lmf_sft_step_" + std::to_string(::getpid()) + std::to_string(GetParam()));
  fs::remove_all(out);
  const TrainerOptions t = lmf::test::one_step_options(out, 4 / GetParam(), GetParam());
  double logged_grad_norm = -1, logged_loss = -1;
  lmf::train::train(*obj, t, [&](const Metrics& m) {
    if (m.count("grad_norm")) logged_grad_norm = m.at("grad_norm");
    if (m.count("loss")) logged_loss = m.at("loss");
  });
  const double ref = g.at("loss").to_vector<float>()[0];
  EXPECT_NEAR(logged_loss, ref, 1e-4 * ref);
  const double ref_norm = g.at("grad_norm").to_vector<float>()[0];
  EXPECT_NEAR(logged_grad_norm, ref_norm, 1e-4 * ref_norm);
  const int checked = lmf::test::expect_saved_params_match_golden(out / "model.safetensors", g);
  EXPECT_EQ(checked, 21);
  fs::remove_all(out);
}

// The same step on the tiny GPT-2 (tied LM head, Conv1D layers), dropout set to 0 in both.
TEST(SftStepGpt2, OneTrainerStepMatchesPyTorch) {
  const io::StateDict g = io::load_safetensors(kDir + "/step_gpt2.safetensors");
  const fs::path model = fs::temp_directory_path() / ("lmf_sft_gpt2_" + std::to_string(::getpid()));
  lmf::test::copy_decoder_without_dropout(kFix + "/decoder/gpt2", model);
  SftOptions o;
  o.model_dir = model.string();
  o.tokenizer_dir = tokenizer_folder(true);
  o.train_file = kDir + "/alpaca.json";
  auto obj = make_sft_objective(o);
  const fs::path out = model.string() + "_out";
  fs::remove_all(out);
  double logged_grad_norm = -1, logged_loss = -1;
  lmf::train::train(*obj, lmf::test::one_step_options(out, 4), [&](const Metrics& m) {
    if (m.count("grad_norm")) logged_grad_norm = m.at("grad_norm");
    if (m.count("loss")) logged_loss = m.at("loss");
  });
  const double ref = g.at("loss").to_vector<float>()[0];
  EXPECT_NEAR(logged_loss, ref, 1e-4 * ref);
  const double ref_norm = g.at("grad_norm").to_vector<float>()[0];
  EXPECT_NEAR(logged_grad_norm, ref_norm, 1e-4 * ref_norm);
  const int checked = lmf::test::expect_saved_params_match_golden(out / "model.safetensors", g);
  EXPECT_EQ(checked, 28);
  fs::remove_all(out);
  fs::remove_all(model);
}

TEST(SftData, TruncationKeepsTheStartAndDropsUntrainedExamples) {
  SftOptions o;
  o.model_dir = kFix + "/decoder/llama";
  o.tokenizer_dir = tokenizer_folder(true);
  o.train_file = kDir + "/alpaca.json";
  o.max_length = 30;  // the prompts are 25-37 tokens: some keep no answer token
  SftReport rep;
  auto obj = make_sft_objective(o, &rep);
  EXPECT_EQ(rep.truncated, 4);
  EXPECT_GE(rep.dropped, 1);
  EXPECT_EQ(rep.train_examples + rep.dropped, 4);
  for (const LmExample& e : obj->train_examples()) EXPECT_EQ(e.size(), 30);
}

// ---- packing (TRL's pack_dataset / padding-free batches, tests/fixtures/sft_packing) ----------

namespace packing {

// The ids of sequence k, position p in the goldens: k * 1000 + p.
std::vector<LmExample> numbered(const std::vector<int64_t>& lengths) {
  std::vector<LmExample> out;
  for (size_t k = 0; k < lengths.size(); ++k) {
    LmExample e;
    for (int64_t p = 0; p < lengths[k]; ++p)
      e.input_ids.push_back(static_cast<int32_t>(k * 1000 + p));
    out.push_back(std::move(e));
  }
  return out;
}

TEST(SftPacking, BestFitDecreasingEqualsTrls) {
  const json cases = read_json(kFix + "/sft_packing/bfd.json").at("cases");
  ASSERT_GE(cases.size(), 5u);
  for (const auto& [name, c] : cases.items()) {
    std::vector<LmExample> ex = numbered(c.at("lengths").get<std::vector<int64_t>>());
    const auto bins = pack_examples(ex, c.at("seq_length").get<int64_t>(), "bfd");
    // The expected rows: "packed" when stored, else rebuilt from the sources and their lengths.
    std::vector<std::vector<int32_t>> want;
    if (c.contains("packed")) {
      want = c.at("packed").get<std::vector<std::vector<int32_t>>>();
    } else {
      const auto src = c.at("sources").get<std::vector<std::vector<int64_t>>>();
      const auto len = c.at("seq_lengths").get<std::vector<std::vector<int64_t>>>();
      for (size_t r = 0; r < src.size(); ++r) {
        std::vector<int32_t> row;
        for (size_t j = 0; j < src[r].size(); ++j)
          for (int64_t p = 0; p < len[r][j]; ++p)
            row.push_back(static_cast<int32_t>(src[r][j] * 1000 + p));
        want.push_back(row);
      }
    }
    ASSERT_EQ(bins.size(), want.size()) << name;
    const auto seq_lengths = c.at("seq_lengths").get<std::vector<std::vector<int64_t>>>();
    for (size_t r = 0; r < bins.size(); ++r) {
      std::vector<int32_t> row;
      std::vector<int64_t> lens;
      for (int64_t m : bins[r]) {
        row.insert(row.end(), ex[m].input_ids.begin(), ex[m].input_ids.end());
        lens.push_back(ex[m].size());
      }
      EXPECT_EQ(row, want[r]) << name << " row " << r;
      EXPECT_EQ(lens, seq_lengths[r]) << name << " row " << r;
    }
  }
}

TEST(SftPacking, SplitAndWrappedStrategies) {
  // bfd_split: 20 tokens at L 8 become 8 + 8 + 4, packed as separate sequences.
  std::vector<LmExample> ex = numbered({20, 3});
  auto bins = pack_examples(ex, 8, "bfd_split");
  ASSERT_EQ(ex.size(), 4u);
  EXPECT_EQ(ex[2].input_ids, (std::vector<int32_t>{16, 17, 18, 19}));
  EXPECT_EQ(bins, (std::vector<std::vector<int64_t>>{{0}, {1}, {2, 3}}));
  // wrapped: concatenated, cut into rows of L, labels carried along.
  ex = numbered({5, 6});
  ex[1].labels.assign(6, -100);
  ex[1].labels[5] = 1005;
  bins = pack_examples(ex, 4, "wrapped");
  ASSERT_EQ(ex.size(), 3u);
  EXPECT_EQ(ex[1].input_ids, (std::vector<int32_t>{4, 1000, 1001, 1002}));
  EXPECT_EQ(ex[1].labels, (std::vector<int32_t>{4, -100, -100, -100}));
  EXPECT_EQ(ex[2].labels, (std::vector<int32_t>{-100, -100, 1005}));
  EXPECT_EQ(bins.size(), 3u);
  EXPECT_THROW(pack_examples(ex, 4, "greedy"), ValueError);
}

// One step of TRL's SFTTrainer with packing=True (bfd, padding-free: every bin of the batch in one
// row, positions restarting per sequence) at max_length 48: the packed rows and the step's loss,
// gradient norm and parameters.
TEST(SftPacking, OneTrainerStepMatchesTrl) {
  const json gj = read_json(kFix + "/sft_packing/examples.json");
  const io::StateDict g = io::load_safetensors(kFix + "/sft_packing/step.safetensors");
  SftOptions o;
  o.model_dir = kFix + "/decoder/llama";
  o.tokenizer_dir = tokenizer_folder(true);
  o.train_file = kDir + "/alpaca.json";
  o.max_length = gj.at("max_length").get<int64_t>();
  o.packing = true;
  SftReport rep;
  auto obj = make_sft_objective(o, &rep);
  const auto& rows = gj.at("train_dataset");
  ASSERT_EQ(obj->train_groups().size(), rows.size());
  EXPECT_EQ(rep.packed_rows, static_cast<int64_t>(rows.size()));
  for (size_t r = 0; r < rows.size(); ++r) {
    std::vector<int32_t> ids, labels;
    for (int64_t m : obj->train_groups()[r]) {
      const LmExample& e = obj->train_examples()[m];
      ids.insert(ids.end(), e.input_ids.begin(), e.input_ids.end());
      labels.insert(labels.end(), e.labels.begin(), e.labels.end());
    }
    EXPECT_EQ(ids, rows[r].at("input_ids").get<std::vector<int32_t>>()) << r;
    EXPECT_EQ(labels, rows[r].at("labels").get<std::vector<int32_t>>()) << r;
  }
  const fs::path out = fs::temp_directory_path() / ("lmf_sft_pack_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const TrainerOptions t = lmf::test::one_step_options(out, static_cast<int64_t>(rows.size()));
  double logged_grad_norm = -1, logged_loss = -1;
  lmf::train::train(*obj, t, [&](const Metrics& m) {
    if (m.count("grad_norm")) logged_grad_norm = m.at("grad_norm");
    if (m.count("loss")) logged_loss = m.at("loss");
  });
  // The float64 step (TRL's own loss is computed in float32 even for a float64 model).
  const double ref = gj.at("loss_f64").get<double>();
  EXPECT_NEAR(logged_loss, ref, 1e-4 * ref);
  const double ref_norm = gj.at("grad_norm_f64").get<double>();
  EXPECT_NEAR(logged_grad_norm, ref_norm, 1e-4 * ref_norm);
  const int checked = lmf::test::expect_saved_params_match_golden(out / "model.safetensors", g);
  EXPECT_EQ(checked, 21);
  fs::remove_all(out);
}

}  // namespace packing

}  // namespace
