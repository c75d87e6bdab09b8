// Generation (tasks/generate): logits processors against transformers' classes
// (fixtures/generate/processors.json), GenerationConfig reading and validation, and greedy /
// sampling / beam search, stopping, streaming and the bounded cache on a mock decoder whose
// logits are a hash of the attended tokens (so cache, padding and beam reordering errors show).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "lmforge/core/error.h"
#include "lmforge/tasks/generate.h"
#include "lmforge/tokenizers/tokenizer.h"

using namespace lmf;
using namespace lmf::tasks;
namespace fs = std::filesystem;

namespace {

// Deterministic logits in [-4, 4) from the attended token sequence.
std::vector<float> mock_logits(const std::vector<int64_t>& seq, int64_t vocab) {
  uint64_t h = 1469598103934665603ull;
  for (int64_t t : seq) h = (h ^ static_cast<uint64_t>(t + 1)) * 1099511628211ull;
  std::vector<float> out(vocab);
  for (int64_t v = 0; v < vocab; ++v) {
    uint64_t z = h + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(v + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    out[v] = static_cast<float>(static_cast<double>(z >> 11) / 9007199254740992.0 * 8.0 - 4.0);
  }
  return out;
}

// A DecoderModel that stores token ids in its KV cache and scores a position by the tokens it
// attends to (mask 1, at or before it).
class MockLM : public models::DecoderModel {
 public:
  MockLM(int64_t vocab, int64_t max_pos) : vocab_(vocab), max_pos_(max_pos) {}
  std::string model_type() const override { return "mock"; }
  std::string architecture() const override { return "MockForCausalLM"; }
  std::string config_json() const override { return "{}"; }
  models::LoadSpec load_spec() const override { return {}; }
  bool is_causal_lm() const override { return true; }
  models::DecoderSpec spec() const override {
    models::DecoderSpec s;
    s.vocab_size = vocab_;
    s.num_layers = 1;
    s.n_kv_heads = 1;
    s.head_dim = 1;
    s.max_positions = max_pos_;
    return s;
  }
  models::DecoderOutput forward(const models::DecoderInputs& in,
                                const models::DecoderLabels&) const override {
    const int64_t B = in.input_ids.size(0), T = in.input_ids.size(1);
    EXPECT_NE(in.cache, nullptr);
    models::KVCache& c = *in.cache;
    EXPECT_EQ(c.batch(), B);
    const int64_t past = c.length();
    const auto ids = in.input_ids.to_vector<int64_t>();
    std::vector<int64_t> mask;
    if (in.attention_mask.defined()) {
      EXPECT_EQ(in.attention_mask.size(1), past + T);
      mask = in.attention_mask.to_vector<int64_t>();
    }
    ++calls;
    max_t = std::max(max_t, T);
    if (past > 0) EXPECT_EQ(T, 1);
    Tensor& keys = c.keys(0);  // [B, 1, cap, 1]
    const int64_t cap = keys.size(2);
    EXPECT_LE(past + T, cap);
    float* k = keys.data<float>();
    // Row b lives in buffer row physical_row(b) (relabelled by beam reorders).
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        k[c.physical_row(b) * cap + past + t] = static_cast<float>(ids[b * T + t]);
    const int64_t keep = in.logits_to_keep > 0 ? std::min(in.logits_to_keep, T) : T;
    models::DecoderOutput out;
    out.logits = Tensor::zeros({B, keep, vocab_});
    float* o = out.logits.data<float>();
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t j = 0; j < keep; ++j) {
        const int64_t pos = past + T - keep + j;
        std::vector<int64_t> seq;
        for (int64_t q = 0; q <= pos; ++q)
          if (mask.empty() || mask[b * (past + T) + q])
            seq.push_back(static_cast<int64_t>(k[c.physical_row(b) * cap + q]));
        const auto l = mock_logits(seq, vocab_);
        std::copy(l.begin(), l.end(), o + (b * keep + j) * vocab_);
      }
    }
    c.advance(T);
    return out;
  }
  mutable int64_t calls = 0, max_t = 0;

 private:
  int64_t vocab_, max_pos_;
};

constexpr int64_t kVocab = 23;

std::vector<float> log_softmax(std::vector<float> x) {
  float mx = *std::max_element(x.begin(), x.end());
  float s = 0;
  for (float v : x) s += std::exp(v - mx);
  for (float& v : x) v = v - mx - std::log(s);
  return x;
}

// The greedy continuation computed directly from mock_logits (no cache, no padding).
std::vector<int64_t> naive_greedy(std::vector<int64_t> seq, int64_t n,
                                  const std::vector<int64_t>& eos = {}) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    const auto l = mock_logits(seq, kVocab);
    const int64_t t = std::max_element(l.begin(), l.end()) - l.begin();
    out.push_back(t);
    seq.push_back(t);
    if (std::find(eos.begin(), eos.end(), t) != eos.end()) break;
  }
  return out;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}

Tensor scores_tensor(const nlohmann::json& data, int64_t rows, int64_t vocab) {
  std::vector<float> v;
  for (const auto& x : data)
    v.push_back(x.is_null() ? -std::numeric_limits<float>::infinity() : x.get<float>());
  return Tensor::from_vector(v, {rows, vocab});
}

// A byte-level BPE tokenizer over the mock vocabulary: id 0 "<eos>" (special); ids 5 and 6 are
// the two bytes of "é" (so a token can end inside a character).
tok::Tokenizer mock_tokenizer() {
  const std::vector<std::string> pieces = {"<eos>", "a", "b", "Ġc", "Ġd", "Ã", "©",  "!",
                                           "Ġ",     "e", "f", "g",  "h",  "i", "Ġj", "k",
                                           "l",     "m", "n", ".",  "Ċ",  "o", "p"};
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = i;
  nlohmann::json j = {{"version", "1.0"},
                      {"added_tokens",
                       {{{"id", 0},
                         {"content", "<eos>"},
                         {"single_word", false},
                         {"lstrip", false},
                         {"rstrip", false},
                         {"normalized", false},
                         {"special", true}}}},
                      {"normalizer", nullptr},
                      {"pre_tokenizer",
                       {{"type", "ByteLevel"},
                        {"add_prefix_space", false},
                        {"trim_offsets", true},
                        {"use_regex", true}}},
                      {"post_processor", nullptr},
                      {"decoder",
                       {{"type", "ByteLevel"},
                        {"add_prefix_space", true},
                        {"trim_offsets", true},
                        {"use_regex", true}}},
                      {"model",
                       {{"type", "BPE"},
                        {"dropout", nullptr},
                        {"unk_token", nullptr},
                        {"continuing_subword_prefix", nullptr},
                        {"end_of_word_suffix", nullptr},
                        {"fuse_unk", false},
                        {"byte_fallback", false},
                        {"vocab", vocab},
                        {"merges", nlohmann::json::array()}}}};
  return tok::Tokenizer::from_json(j.dump());
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

GenerationConfig greedy_cfg(int64_t new_tokens) {
  GenerationConfig c;
  c.max_new_tokens = new_tokens;
  return c;
}

}  // namespace

// ---- processors vs transformers ----

TEST(GenerateProcessors, MatchTransformers) {
  const fs::path p = fs::path(LMF_FIXTURES_DIR) / "generate" / "processors.json";
  ASSERT_TRUE(fs::exists(p)) << "run scripts/reference/gen_generate_goldens.py --processors-only";
  const auto g = read_json(p);
  int checked = 0;
  for (const auto& c : g["cases"]) {
    const int64_t rows = c["rows"], vocab = c["vocab"];
    TokenRows ids = c["input_ids"].get<TokenRows>();
    Tensor s = scores_tensor(c["scores"], rows, vocab);
    const auto& a = c["args"];
    const std::string kind = c["kind"];
    const int64_t keep = a.value("min_tokens_to_keep", 1);
    if (kind == "repetition_penalty") {
      make_repetition_penalty(a["penalty"], a.value("prompt_ignore_length", std::vector<int64_t>{}))
          ->apply(ids, s);
    } else if (kind == "no_repeat_ngram") {
      make_no_repeat_ngram(a["ngram_size"])->apply(ids, s);
    } else if (kind == "min_length") {
      make_min_length(a["min_length"], a["eos"])->apply(ids, s);
    } else if (kind == "min_new_tokens") {
      make_min_new_tokens(a["prompt_length_to_skip"], a["min_new_tokens"], a["eos"])->apply(ids, s);
    } else if (kind == "temperature") {
      make_temperature(a["temperature"])->apply(ids, s);
    } else if (kind == "top_k") {
      make_top_k(a["top_k"], keep)->apply(ids, s);
    } else if (kind == "top_p") {
      make_top_p(a["top_p"], keep)->apply(ids, s);
    } else if (kind == "min_p") {
      make_min_p(a["min_p"], keep)->apply(ids, s);
    } else if (kind == "log_softmax") {
      log_softmax_rows(s);
    } else if (kind == "chain") {
      // generate()'s order, built by build_logits_processors from the same settings.
      GenerationConfig cfg;
      cfg.do_sample = true;
      cfg.repetition_penalty = a["repetition_penalty"];
      cfg.no_repeat_ngram_size = a["no_repeat_ngram_size"];
      cfg.temperature = a["temperature"];
      cfg.top_k = a["top_k"];
      cfg.top_p = a["top_p"];
      cfg.min_p = a["min_p"].get<double>();
      const auto list = build_logits_processors(cfg, static_cast<int64_t>(ids[0].size()));
      ASSERT_EQ(list.size(), 6u);
      EXPECT_EQ(list[0]->name(), "RepetitionPenaltyLogitsProcessor");
      EXPECT_EQ(list[2]->name(), "TemperatureLogitsWarper");
      EXPECT_EQ(list[5]->name(), "MinPLogitsWarper");
      apply_processors(list, ids, s);
    } else {
      FAIL() << "unknown case kind " << kind;
    }
    const Tensor want = scores_tensor(c["expected"], rows, vocab);
    const auto got = s.to_vector<float>(), exp = want.to_vector<float>();
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::isinf(exp[i]) || std::isinf(got[i])) {
        EXPECT_EQ(got[i], exp[i]) << c["name"] << " index " << i;
      } else {
        EXPECT_NEAR(got[i], exp[i], 1e-6) << c["name"] << " index " << i;
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 25);
}

TEST(GenerateProcessors, RejectInvalidArguments) {
  EXPECT_THROW(make_temperature(0.0), ValueError);
  EXPECT_THROW(make_top_k(0), ValueError);
  EXPECT_THROW(make_top_p(1.5), ValueError);
  EXPECT_THROW(make_min_p(-0.1), ValueError);
  EXPECT_THROW(make_repetition_penalty(0.0), ValueError);
  EXPECT_THROW(make_no_repeat_ngram(0), ValueError);
  Tensor s = Tensor::zeros({2, 5});
  TokenRows one = {{1}};
  EXPECT_THROW(make_top_k(2)->apply(one, s), ShapeError);  // 2 rows of scores, 1 row of ids
}

// ---- GenerationConfig ----

TEST(GenerateConfig, DefaultsAreTransformers) {
  GenerationConfig c;
  EXPECT_FALSE(c.max_length);  // transformers 5: 20 new tokens
  EXPECT_FALSE(c.max_new_tokens);
  EXPECT_FALSE(c.do_sample);
  EXPECT_EQ(c.temperature, 1.0);
  EXPECT_EQ(c.top_k, 50);
  EXPECT_EQ(c.top_p, 1.0);
  EXPECT_EQ(c.num_beams, 1);
  EXPECT_EQ(c.length_penalty, 1.0);
  EXPECT_EQ(c.early_stopping, EarlyStopping::False);
  EXPECT_NO_THROW(c.validate());
}

TEST(GenerateConfig, FromPretrainedFolder) {
  const fs::path dir = fs::temp_directory_path() / ("lmf_gencfg_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // config.json only: from_model_config takes its generation keys. transformers 5.25 keeps the
  // token ids, max/min_new_tokens, min_p and stop_strings, and drops 4.x's sampling and beam
  // attributes (num_beams, temperature, max_length, forced_eos_token_id, ...) from a LlamaConfig
  // (checked with GenerationConfig.from_model_config(LlamaConfig.from_pretrained(dir))).
  std::ofstream(dir / "config.json")
      << R"({"model_type": "llama", "bos_token_id": 1, "eos_token_id": [2, 7],
      "pad_token_id": null, "hidden_size": 8, "num_beams": 4, "temperature": 0.3,
      "max_length": 33, "forced_eos_token_id": 2, "min_p": 0.1,
      "text_config": {"top_k": 5, "max_new_tokens": 9}})";
  GenerationConfig a = GenerationConfig::from_pretrained(dir);
  EXPECT_EQ(a.bos_token_id, 1);
  EXPECT_EQ(a.eos_token_id, (std::vector<int64_t>{2, 7}));
  EXPECT_FALSE(a.pad_token_id);
  EXPECT_EQ(a.top_k, 50);
  EXPECT_EQ(a.max_new_tokens, 9);
  EXPECT_EQ(a.num_beams, 1);
  EXPECT_EQ(a.temperature, 1.0);
  EXPECT_FALSE(a.max_length);
  EXPECT_TRUE(a.forced_eos_token_id.empty());
  EXPECT_DOUBLE_EQ(a.min_p.value_or(0.0), 0.1);
  {  // MarianConfig declares forced_eos_token_id: kept there.
    const fs::path m = dir / "marian";
    fs::create_directories(m);
    std::ofstream(m / "config.json")
        << R"({"model_type": "marian", "forced_eos_token_id": 0, "num_beams": 4})";
    const GenerationConfig g = GenerationConfig::from_pretrained(m);
    EXPECT_EQ(g.forced_eos_token_id, (std::vector<int64_t>{0}));
    EXPECT_EQ(g.num_beams, 1);
  }
  // generation_config.json wins when present.
  std::ofstream(dir / "generation_config.json")
      << R"({"eos_token_id": 2, "do_sample": true, "temperature": 0.6,
      "top_p": 0.9, "early_stopping": "never", "max_new_tokens": 7, "stop_strings": "END", "transformers_version": "5"})";
  GenerationConfig b = GenerationConfig::from_pretrained(dir);
  EXPECT_EQ(b.eos_token_id, (std::vector<int64_t>{2}));
  EXPECT_FALSE(b.bos_token_id);
  EXPECT_TRUE(b.do_sample);
  EXPECT_DOUBLE_EQ(b.temperature, 0.6);
  EXPECT_DOUBLE_EQ(b.top_p, 0.9);
  EXPECT_EQ(b.early_stopping, EarlyStopping::Never);
  EXPECT_EQ(b.max_new_tokens, 7);
  EXPECT_EQ(b.stop_strings, (std::vector<std::string>{"END"}));
  EXPECT_EQ(b.top_k, 50);
  std::ofstream(dir / "generation_config.json") << R"({"num_beams": "three"})";
  EXPECT_THROW(GenerationConfig::from_pretrained(dir), ValueError);
  fs::remove_all(dir);
}

TEST(GenerateConfig, ValidationNamesTheFlag) {
  auto expect_flag = [](GenerationConfig c, const std::string& flag) {
    try {
      c.validate();
      ADD_FAILURE() << "no error for " << flag;
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  GenerationConfig c;
  c.temperature = -0.5;
  expect_flag(c, "--temperature");
  c = {};
  c.top_p = 0.0;
  expect_flag(c, "--top-p");
  c.top_p = 1.2;
  expect_flag(c, "--top-p");
  c = {};
  c.top_k = -1;
  expect_flag(c, "--top-k");
  c = {};
  c.num_beams = 0;
  expect_flag(c, "--num-beams");
  c = {};
  c.max_new_tokens = 0;
  expect_flag(c, "--max-new-tokens");
  c = {};
  c.min_p = 2.0;
  expect_flag(c, "--min-p");
  c = {};
  c.repetition_penalty = 0;
  expect_flag(c, "--repetition-penalty");
  c = {};
  c.num_beams = 2;
  c.num_return_sequences = 3;
  expect_flag(c, "--num-return-sequences");
  c = {};
  c.temperature = 0.0;  // greedy, valid
  c.do_sample = true;
  EXPECT_NO_THROW(c.validate());
  EXPECT_FALSE(c.sampling());
}

// ---- greedy / sampling ----

TEST(GenerateGreedy, MatchesArgmaxChainAndUsesTheCache) {
  MockLM m(kVocab, 128);
  const std::vector<int64_t> prompt = {3, 9, 1, 4};
  auto r = generate(m, {prompt}, greedy_cfg(12));
  ASSERT_EQ(r.sequences.size(), 1u);
  EXPECT_EQ(r.sequences[0].output_ids, naive_greedy(prompt, 12));
  EXPECT_EQ(r.sequences[0].prompt_ids, prompt);
  EXPECT_EQ(r.sequences[0].finish_reason, "length");
  EXPECT_EQ(m.calls, 12);  // one prefill, then 11 one-token steps
  EXPECT_EQ(r.stats.decode_steps, 11);
  EXPECT_EQ(r.stats.decode_tokens, 11);
  EXPECT_EQ(r.stats.generated_tokens, 12);
  // The cache is preallocated to prompt + new tokens and no more.
  EXPECT_EQ(r.stats.cache_capacity, 4 + 12);
  EXPECT_EQ(r.stats.cache_bytes, 2u * 16u * sizeof(float));
  // max_length (prompt + new) without max_new_tokens.
  GenerationConfig c;
  c.max_length = 9;
  EXPECT_EQ(generate(m, {prompt}, c).sequences[0].output_ids.size(), 5u);
}

TEST(GenerateGreedy, LeftPaddedBatchEqualsSinglePrompts) {
  MockLM m(kVocab, 128);
  const std::vector<std::vector<int64_t>> prompts = {{5}, {1, 2, 3, 4, 5, 6, 7}, {8, 8, 9}};
  GenerationConfig c = greedy_cfg(10);
  c.eos_token_id = {0};
  c.repetition_penalty = 1.4;  // the padding must not count as seen tokens
  auto batch = generate(m, prompts, c);
  ASSERT_EQ(batch.sequences.size(), 3u);
  // Decode tokens count the rows still running: fewer than 3 per step once one ended.
  int64_t fed = 0;
  for (const auto& q : batch.sequences) fed += static_cast<int64_t>(q.output_ids.size()) - 1;
  EXPECT_EQ(batch.stats.decode_tokens, fed);
  EXPECT_EQ(batch.stats.generated_tokens, fed + 3);
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto one = generate(m, {prompts[i]}, c);
    EXPECT_EQ(batch.sequences[i].output_ids, one.sequences[0].output_ids) << i;
    EXPECT_EQ(batch.sequences[i].finish_reason, one.sequences[0].finish_reason) << i;
    EXPECT_EQ(batch.sequences[i].prompt_ids, prompts[i]);
  }
}

TEST(GenerateGreedy, StopsAtEosAndHonoursMinNewTokens) {
  MockLM m(kVocab, 128);
  const std::vector<int64_t> prompt = {2, 7, 11};
  const auto free_run = naive_greedy(prompt, 20);
  const int64_t eos = free_run[4];
  const size_t first = std::find(free_run.begin(), free_run.end(), eos) - free_run.begin();
  GenerationConfig c = greedy_cfg(20);
  c.eos_token_id = {eos};
  auto r = generate(m, {prompt}, c);
  EXPECT_EQ(r.sequences[0].finish_reason, "eos");
  EXPECT_EQ(r.sequences[0].output_ids,
            std::vector<int64_t>(free_run.begin(), free_run.begin() + first + 1));
  // min_new_tokens bans eos before that many new tokens.
  c.min_new_tokens = static_cast<int64_t>(first) + 2;
  auto r2 = generate(m, {prompt}, c);
  EXPECT_GE(r2.sequences[0].output_ids.size(), first + 2);
  for (size_t i = 0; i + 1 < std::min<size_t>(r2.sequences[0].output_ids.size(), first + 2); ++i)
    EXPECT_NE(r2.sequences[0].output_ids[i], eos);
}

TEST(GenerateSample, SeededRunsRepeatAndTemperatureZeroIsGreedy) {
  MockLM m(kVocab, 128);
  const std::vector<int64_t> prompt = {1, 2, 3};
  GenerationConfig c = greedy_cfg(16);
  c.do_sample = true;
  c.top_k = 0;
  c.seed = 42;
  const auto a = generate(m, {prompt}, c).sequences[0].output_ids;
  const auto b = generate(m, {prompt}, c).sequences[0].output_ids;
  EXPECT_EQ(a, b);
  c.seed = 43;
  const auto d = generate(m, {prompt}, c).sequences[0].output_ids;
  EXPECT_NE(a, d);
  EXPECT_NE(a, naive_greedy(prompt, 16));
  c.temperature = 0.0;
  EXPECT_EQ(generate(m, {prompt}, c).sequences[0].output_ids, naive_greedy(prompt, 16));
  c.temperature = 1.0;
  c.top_k = 1;  // only the argmax survives
  EXPECT_EQ(generate(m, {prompt}, c).sequences[0].output_ids, naive_greedy(prompt, 16));
  // num_return_sequences draws several continuations per prompt.
  c.top_k = 0;
  c.num_return_sequences = 3;
  auto r = generate(m, {prompt, {4, 5}}, c);
  ASSERT_EQ(r.sequences.size(), 6u);
  EXPECT_EQ(r.sequences[3].prompt_index, 1);
}

// ---- beam search ----

TEST(GenerateBeam, ScoresAreLengthPenalisedLogProbsOfTheOutputs) {
  MockLM m(kVocab, 128);
  const std::vector<std::vector<int64_t>> prompts = {{4, 4, 1}, {7}};
  for (double lp : {1.0, 0.5, -1.0}) {
    for (auto es : {EarlyStopping::False, EarlyStopping::True, EarlyStopping::Never}) {
      GenerationConfig c = greedy_cfg(8);
      c.num_beams = 3;
      c.num_return_sequences = 3;
      c.length_penalty = lp;
      c.early_stopping = es;
      c.eos_token_id = {naive_greedy(prompts[0], 3)[2]};
      auto r = generate(m, prompts, c);
      ASSERT_EQ(r.sequences.size(), 6u);
      for (const auto& s : r.sequences) {
        ASSERT_TRUE(s.score);
        // Sum of the token log-probs along the output, recomputed without a cache.
        std::vector<int64_t> seq = prompts[s.prompt_index];
        double total = 0;
        for (int64_t t : s.output_ids) {
          total += log_softmax(mock_logits(seq, kVocab))[t];
          seq.push_back(t);
        }
        const double want = total / std::pow(static_cast<double>(s.output_ids.size()), lp);
        EXPECT_NEAR(*s.score, want, 1e-4 * std::max(1.0, std::fabs(want)));
      }
      for (size_t i = 0; i < r.sequences.size(); i += 3) {
        EXPECT_GE(*r.sequences[i].score, *r.sequences[i + 1].score);
        EXPECT_GE(*r.sequences[i + 1].score, *r.sequences[i + 2].score);
      }
      // Batched with left padding equals one prompt at a time.
      auto one = generate(m, {prompts[1]}, c);
      for (int j = 0; j < 3; ++j)
        EXPECT_EQ(one.sequences[j].output_ids, r.sequences[3 + j].output_ids);
    }
  }
}

TEST(GenerateBeam, BestBeamBeatsGreedy) {
  MockLM m(kVocab, 128);
  const std::vector<int64_t> prompt = {9, 3};
  GenerationConfig c = greedy_cfg(6);
  c.num_beams = 4;
  auto r = generate(m, {prompt}, c);
  std::vector<int64_t> seq = prompt;
  double greedy = 0;
  for (int64_t t : naive_greedy(prompt, 6)) {
    greedy += log_softmax(mock_logits(seq, kVocab))[t];
    seq.push_back(t);
  }
  EXPECT_GE(*r.sequences[0].score, greedy / 6 - 1e-5);
  EXPECT_EQ(r.stats.cache_capacity, 8);
}

// ---- stopping, streaming, errors ----

TEST(GenerateStream, PiecesAreWholeCharactersAndConcatenateToTheText) {
  MockLM m(kVocab, 256);
  const auto tk = mock_tokenizer();
  int total_pieces = 0;
  for (int64_t seed = 1; seed <= 6; ++seed) {
    GenerationConfig c = greedy_cfg(40);
    c.do_sample = true;
    c.top_k = 0;
    c.seed = seed;
    c.eos_token_id = {0};
    GenerateOptions o;
    o.tokenizer = &tk;
    std::string streamed;
    int pieces = 0;
    o.on_text = [&](int64_t i, const std::string& piece) {
      EXPECT_EQ(i, 0);
      EXPECT_TRUE(valid_utf8(piece)) << piece;
      streamed += piece;
      ++pieces;
    };
    auto r = generate(m, {{5, 1, 3}}, c, o);
    std::vector<uint32_t> ids(r.sequences[0].output_ids.begin(), r.sequences[0].output_ids.end());
    EXPECT_EQ(streamed, tk.decode(ids, true));
    EXPECT_EQ(r.sequences[0].text, streamed);
    EXPECT_EQ(pieces > 0, !streamed.empty());
    total_pieces += pieces;
  }
  EXPECT_GT(total_pieces, 6);
  // A lone first byte of "é" is held back until its second byte comes.
  TextStreamDecoder d(tk);
  EXPECT_EQ(d.put(1), "a");
  EXPECT_EQ(d.put(5), "");
  EXPECT_EQ(d.put(6), "é");
  EXPECT_EQ(d.put(3), " c");
  EXPECT_EQ(d.put(8), "");    // a lone space could start " !" ...
  EXPECT_EQ(d.put(7), " !");  // ... kept as decode keeps it without clean-up
  EXPECT_EQ(d.put(20), "\n");
  EXPECT_EQ(d.flush(), "");
  // With clean-up the held space disappears and the pieces still add up to decode().
  auto tk2 = mock_tokenizer();
  tk2.set_clean_up_tokenization_spaces(true);
  TextStreamDecoder d2(tk2);
  std::string all;
  for (int64_t id : {1, 3, 8, 7, 8, 13}) all += d2.put(id);
  all += d2.flush();
  const std::vector<uint32_t> ids = {1, 3, 8, 7, 8, 13};
  EXPECT_EQ(all, tk2.decode(ids, true));
  EXPECT_EQ(all, "a c! i");
}

TEST(GenerateStop, StopStringEndsTheSequenceAndIsKept) {
  MockLM m(kVocab, 256);
  const auto tk = mock_tokenizer();
  const std::vector<int64_t> prompt = {1, 2};
  const auto run = naive_greedy(prompt, 30);
  // A stop string made of the text of generated tokens 6 and 7 (if printable), e.g. "k!".
  std::vector<uint32_t> two = {static_cast<uint32_t>(run[6]), static_cast<uint32_t>(run[7])};
  const std::string stop = tk.decode(two, true);
  ASSERT_FALSE(stop.empty());
  GenerationConfig c = greedy_cfg(30);
  c.stop_strings = {stop};
  GenerateOptions o;
  o.tokenizer = &tk;
  auto r = generate(m, {prompt}, c, o);
  const auto& s = r.sequences[0];
  EXPECT_EQ(s.finish_reason, "stop");
  EXPECT_LE(s.output_ids.size(), 8u);
  EXPECT_NE(s.text.find(stop), std::string::npos);
  EXPECT_EQ(s.output_ids, std::vector<int64_t>(run.begin(), run.begin() + s.output_ids.size()));
  // Stop strings without a tokenizer are refused.
  EXPECT_THROW(generate(m, {prompt}, c), ValueError);
}

TEST(GenerateStop, CancelFlagEndsCleanly) {
  MockLM m(kVocab, 256);
  std::atomic<bool> cancel{false};
  GenerateOptions o;
  o.cancel = &cancel;
  GenerationConfig c = greedy_cfg(50);
  cancel = true;
  auto r = generate(m, {{1, 2}, {3}}, c, o);
  for (const auto& s : r.sequences) {
    EXPECT_EQ(s.finish_reason, "cancelled");
    EXPECT_EQ(s.output_ids.size(), 1u);
  }
  c.num_beams = 2;
  r = generate(m, {{1, 2}}, c, o);
  EXPECT_EQ(r.sequences.size(), 1u);
  EXPECT_LE(r.sequences[0].output_ids.size(), 1u);
}

TEST(GenerateErrors, PromptLongerThanContextAndBadInput) {
  MockLM m(kVocab, 16);
  std::vector<int64_t> longp(20, 3);
  longp[19] = 4;
  try {
    generate(m, {longp}, greedy_cfg(4));
    ADD_FAILURE() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("context is 16"), std::string::npos) << e.what();
  }
  GenerateOptions o;
  o.truncate_left = true;
  auto r = generate(m, {longp}, greedy_cfg(4), o);
  EXPECT_EQ(r.sequences[0].prompt_ids.size(), 12u);
  EXPECT_EQ(r.sequences[0].prompt_ids.back(), 4);
  EXPECT_EQ(r.sequences[0].output_ids.size(), 4u);
  // A prompt that fits, with more new tokens asked than the context holds, stops at the context.
  auto capped = generate(m, {{1, 2, 3}}, greedy_cfg(40));
  EXPECT_EQ(capped.sequences[0].output_ids.size(), 13u);
  EXPECT_EQ(capped.sequences[0].finish_reason, "length");
  EXPECT_EQ(capped.stats.cache_capacity, 16);
  EXPECT_THROW(generate(m, {{}}, greedy_cfg(4)), ValueError);
  EXPECT_THROW(generate(m, {{kVocab}}, greedy_cfg(4)), ValueError);
  EXPECT_THROW(generate(m, {}, greedy_cfg(4)), ValueError);
  GenerationConfig bad = greedy_cfg(4);
  bad.top_p = 0;
  EXPECT_THROW(generate(m, {{1}}, bad), ValueError);
}

TEST(GenerateOutput, JsonHasIdsTextAndTimings) {
  MockLM m(kVocab, 64);
  auto r = generate(m, {{1, 2, 3}}, greedy_cfg(5));
  const auto j = r.to_json();
  EXPECT_EQ(j["sequences"][0]["prompt_ids"], (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(j["sequences"][0]["output_ids"].size(), 5u);
  EXPECT_TRUE(j["stats"].contains("decode_tokens_per_second"));
  EXPECT_TRUE(j["stats"].contains("prefill_tokens_per_second"));
}

// ---- transformers' generate() on the same mock (fixtures/generate/mock_generate_goldens.json)
// ----

TEST(GenerateGoldens, MockModelMatchesTransformersGenerate) {
  const fs::path p = fs::path(LMF_FIXTURES_DIR) / "generate" / "mock_generate_goldens.json";
  ASSERT_TRUE(fs::exists(p)) << "run scripts/reference/gen_generate_goldens.py";
  const auto g = read_json(p);
  ASSERT_EQ(g["vocab"].get<int64_t>(), kVocab);
  int checked = 0;
  for (const auto& c : g["cases"]) {
    MockLM m(kVocab, 1024);
    const GenerationConfig cfg = GenerationConfig::from_json(c["config"]);
    const auto prompts = c["prompts"].get<std::vector<std::vector<int64_t>>>();
    const auto r = generate(m, prompts, cfg);
    const auto& want = c["sequences"];
    ASSERT_EQ(r.sequences.size(), want.size()) << c["name"];
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(r.sequences[i].output_ids, want[i]["output_ids"].get<std::vector<int64_t>>())
          << c["name"] << " sequence " << i;
      if (want[i].contains("score")) {
        ASSERT_TRUE(r.sequences[i].score) << c["name"];
        const double w = want[i]["score"];
        EXPECT_NEAR(*r.sequences[i].score, w, 1e-5 * std::max(1.0, std::fabs(w)))
            << c["name"] << " " << i;
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(GenerateGreedy, DefaultMaxLengthIsTwentyNewTokens) {
  MockLM m(kVocab, 1024);
  auto r = generate(m, {std::vector<int64_t>(30, 2)}, GenerationConfig{});
  EXPECT_EQ(r.sequences[0].output_ids.size(), 20u);
}

TEST(GenerateSample, FirstTokenFrequenciesFollowTheWarpedDistribution) {
  MockLM m(kVocab, 64);
  const std::vector<int64_t> prompt = {6, 1};
  // temperature 0.7, top-k 8: the expected distribution from the processors themselves.
  GenerationConfig c = greedy_cfg(1);
  c.do_sample = true;
  c.temperature = 0.7;
  c.top_k = 8;
  const auto l = mock_logits(prompt, kVocab);
  Tensor s = Tensor::from_vector(l, {1, kVocab});
  apply_processors(build_logits_processors(c, 2), {prompt}, s);
  const auto w = s.to_vector<float>();
  std::vector<double> p(kVocab);
  double z = 0;
  for (int64_t v = 0; v < kVocab; ++v) z += p[v] = std::isinf(w[v]) ? 0.0 : std::exp(double(w[v]));
  std::vector<double> freq(kVocab, 0.0);
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    c.seed = 1000 + i;
    freq[generate(m, {prompt}, c).sequences[0].output_ids[0]] += 1.0 / n;
  }
  for (int64_t v = 0; v < kVocab; ++v) {
    EXPECT_NEAR(freq[v], p[v] / z, 0.03) << "token " << v;
    if (p[v] == 0) EXPECT_EQ(freq[v], 0.0) << "token " << v << " was filtered out";
  }
}

TEST(GenerateBeam, BeamSamplingIsSeededAndScoresItsOutputs) {
  MockLM m(kVocab, 64);
  const std::vector<int64_t> prompt = {2, 2, 5};
  GenerationConfig c = greedy_cfg(6);
  c.num_beams = 3;
  c.num_return_sequences = 2;
  c.do_sample = true;
  c.top_k = 0;
  c.seed = 9;
  const auto a = generate(m, {prompt}, c), b = generate(m, {prompt}, c);
  ASSERT_EQ(a.sequences.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(a.sequences[i].output_ids, b.sequences[i].output_ids);
    std::vector<int64_t> seq = prompt;
    double total = 0;
    for (int64_t t : a.sequences[i].output_ids) {
      total += log_softmax(mock_logits(seq, kVocab))[t];
      seq.push_back(t);
    }
    EXPECT_NEAR(*a.sequences[i].score, total / a.sequences[i].output_ids.size(), 1e-4);
  }
}

TEST(GenerateConfig, JsonRoundTrip) {
  GenerationConfig c;
  c.max_new_tokens = 12;
  c.eos_token_id = {2, 9};
  c.early_stopping = EarlyStopping::Never;
  c.min_p = 0.1;
  c.stop_strings = {"\n\n"};
  c.seed = 5;
  const GenerationConfig d = GenerationConfig::from_json(c.to_json());
  EXPECT_EQ(d.to_json(), c.to_json());
  EXPECT_EQ(d.eos_token_id, c.eos_token_id);
  EXPECT_EQ(d.early_stopping, EarlyStopping::Never);
}
