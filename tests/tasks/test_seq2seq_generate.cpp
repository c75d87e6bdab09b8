// Seq2seq generation (tasks/seq2seq.h) against transformers 5.25's generate() on tiny Marian
// checkpoints (goldens: scripts/reference/gen_seq2seq_generate_goldens.py ->
// tests/fixtures/seq2seq_generate/golden.json): greedy, beam search, processors, forced tokens,
// lengths, pad suppression, batched and single; seeded sampling; bad input; attention heatmaps.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "lmforge/core/error.h"
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

json golden() {
  std::ifstream f(fixture("seq2seq_generate/golden.json"));
  return json::parse(f);
}

std::unique_ptr<models::EncoderDecoderModel> load(const std::string& rel) {
  auto m =
      models::load_pretrained_as<models::EncoderDecoderModel>(fixture(rel), "an encoder-decoder");
  m->eval();
  m->prepare_inference();
  return m;
}

// The folder's generation config with generate()'s keyword arguments over it; a None argument
// clears the setting, as transformers' generation_config.update(**kwargs) does.
GenerationConfig config_for(const std::string& rel, const json& kwargs) {
  GenerationConfig c = GenerationConfig::from_pretrained(fixture(rel));
  for (const auto& [k, v] : kwargs.items()) {
    if (!v.is_null()) continue;
    if (k == "forced_eos_token_id")
      c.forced_eos_token_id.clear();
    else if (k == "bad_words_ids")
      c.bad_words_ids.clear();
    else
      ADD_FAILURE() << "no None handling for " << k;
  }
  return GenerationConfig::from_json(kwargs, c);
}

const std::vector<std::vector<int64_t>> kSources = {{5, 17, 42, 8, 0}, {33, 61, 0}};

}  // namespace

TEST(Seq2SeqGenerate, FolderGenerationConfigAsTransformersLoadsIt) {
  const GenerationConfig c = GenerationConfig::from_pretrained(fixture("seq2seq_generate/model"));
  EXPECT_EQ(c.bad_words_ids, (std::vector<std::vector<int64_t>>{{99}}));
  EXPECT_EQ(c.num_beams, 4);
  EXPECT_EQ(c.max_length, 64);
  EXPECT_TRUE(c.renormalize_logits);
  EXPECT_EQ(c.decoder_start_token_id, 99);
  EXPECT_EQ(c.forced_eos_token_id, std::vector<int64_t>{0});
  EXPECT_EQ(c.eos_token_id, std::vector<int64_t>{0});
  // No generation_config.json: config.json's token ids (transformers' from_model_config).
  const GenerationConfig m = GenerationConfig::from_pretrained(fixture("marian/marian_base"));
  EXPECT_EQ(m.decoder_start_token_id, 59);
  EXPECT_TRUE(m.bad_words_ids.empty());
  // Round trip of the new keys.
  EXPECT_EQ(GenerationConfig::from_json(c.to_json()).to_json(), c.to_json());
}

TEST(Seq2SeqGenerate, OutputsEqualTransformersGenerate) {
  const json g = golden();
  ASSERT_GE(g.at("cases").size(), 15u);
  std::map<std::string, std::unique_ptr<models::EncoderDecoderModel>> models;
  for (const json& c : g.at("cases")) {
    const std::string name = c.at("name"), rel = c.at("model");
    SCOPED_TRACE(name);
    if (!models.count(rel)) models[rel] = load(rel);
    const GenerationConfig cfg = config_for(rel, c.at("kwargs"));
    const auto src = c.at("sources").get<std::vector<std::vector<int64_t>>>();
    const GenerationResult r = lmf::models::test::expect_generate_case(*models[rel], c, cfg);
    const size_t n = c.at("output_ids").size();
    ASSERT_EQ(r.sequences.size(), n);
    const int64_t per = static_cast<int64_t>(n / src.size());
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(r.sequences[i].prompt_index, static_cast<int64_t>(i) / per);
      EXPECT_EQ(r.sequences[i].prompt_ids, src[i / per]);
    }
  }
}

TEST(Seq2SeqGenerate, GoldensCoverEosPadSuppressionAndForcedTokens) {
  // The goldens must exercise what they claim: sequences ending in eos at different lengths,
  // the `marian` fixture generating pad tokens unless they are suppressed, forced BOS/EOS.
  std::map<std::string, json> by;
  const json g = golden();
  for (const json& c : g.at("cases")) by[c.at("name").get<std::string>()] = c;
  std::set<size_t> lengths;
  for (const auto& row : by.at("greedy_batched").at("output_ids")) {
    EXPECT_EQ(row.back(), 0);
    lengths.insert(row.size());
  }
  EXPECT_GE(lengths.size(), 3u);
  auto has = [](const json& rows, int64_t t) {
    for (const auto& r : rows)
      for (const auto& x : r)
        if (x == t) return true;
    return false;
  };
  EXPECT_TRUE(has(by.at("marian_pad_not_suppressed").at("output_ids"), 99));
  EXPECT_FALSE(has(by.at("marian_pad_suppressed").at("output_ids"), 99));
  for (const auto& row : by.at("forced_bos").at("output_ids")) EXPECT_EQ(row.front(), 5);
  for (const auto& row : by.at("forced_eos_short").at("output_ids")) EXPECT_EQ(row.back(), 0);
  EXPECT_NE(by.at("forced_eos_short").at("output_ids"), by.at("forced_eos_off").at("output_ids"));
  // The processors change what greedy search picks on these sources.
  for (const char* name : {"no_repeat_ngram2_greedy", "repetition_penalty", "bad_words_two_token",
                           "min_length", "max_length10"})
    EXPECT_NE(by.at(name).at("output_ids"), by.at("greedy_batched").at("output_ids")) << name;
}

TEST(Seq2SeqGenerate, SamplingIsSeededAndReproducible) {
  auto m = load("seq2seq_generate/model");
  GenerationConfig c = config_for("seq2seq_generate/model", json::object());
  c.num_beams = 1;
  c.do_sample = true;
  c.temperature = 1.3;
  c.top_k = 20;
  c.top_p = 0.9;
  c.max_new_tokens = 12;
  c.num_return_sequences = 3;
  c.seed = 11;
  const auto a = generate_seq2seq(*m, kSources, c);
  const auto b = generate_seq2seq(*m, kSources, c);
  ASSERT_EQ(a.sequences.size(), 6u);
  bool differ = false;
  for (size_t i = 0; i < a.sequences.size(); ++i) {
    EXPECT_EQ(a.sequences[i].output_ids, b.sequences[i].output_ids);
    EXPECT_LE(a.sequences[i].output_ids.size(), 12u);
    for (int64_t t : a.sequences[i].output_ids) EXPECT_NE(t, 99) << "pad is a bad word";
    differ = differ || a.sequences[i].output_ids != a.sequences[0].output_ids;
  }
  EXPECT_TRUE(differ) << "three draws per source all equal";
  c.seed = 12;
  const auto d = generate_seq2seq(*m, kSources, c);
  bool any = false;
  for (size_t i = 0; i < d.sequences.size(); ++i)
    any = any || d.sequences[i].output_ids != a.sequences[i].output_ids;
  EXPECT_TRUE(any) << "another seed drew the same tokens";
  // Beam sampling runs too (reproducible).
  c.num_beams = 3;
  c.num_return_sequences = 2;
  EXPECT_EQ(generate_seq2seq(*m, kSources, c).to_json()["sequences"],
            generate_seq2seq(*m, kSources, c).to_json()["sequences"]);
}

TEST(Seq2SeqGenerate, BadInputIsAClearError) {
  auto m = load("seq2seq_generate/model");
  GenerationConfig c = config_for("seq2seq_generate/model", json::object());
  c.max_new_tokens = 4;
  EXPECT_THROW(generate_seq2seq(*m, {}, c), ValueError);
  EXPECT_THROW(generate_seq2seq(*m, {{5, 0}, {}}, c), ValueError);
  EXPECT_THROW(generate_seq2seq(*m, {{5, 100, 0}}, c), ValueError);
  std::vector<int64_t> longsrc(70, 7);
  longsrc.back() = 0;
  try {
    generate_seq2seq(*m, {longsrc}, c);
    ADD_FAILURE() << "no error for a source longer than the positions";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("--truncate"), std::string::npos) << e.what();
  }
  GenerateOptions opt;
  opt.truncate_left = true;
  const auto r = generate_seq2seq(*m, {longsrc}, c, opt);
  EXPECT_EQ(r.sequences[0].prompt_ids.size(), 64u);
  EXPECT_EQ(r.sequences[0].prompt_ids.back(), 0);
  GenerationConfig bad = c;
  bad.do_sample = true;
  bad.top_p = 1.5;
  EXPECT_THROW(generate_seq2seq(*m, kSources, bad), ValueError);
  bad = c;
  bad.decoder_start_token_id = 1000;
  EXPECT_THROW(generate_seq2seq(*m, kSources, bad), ValueError);
  // A MarianModel folder has no LM head.
  auto base = models::load_pretrained_as<models::EncoderDecoderModel>(fixture("marian/marian_base"),
                                                                      "an encoder-decoder");
  EXPECT_THROW(generate_seq2seq(*base, {{5, 0}}, c), ValueError);
}

TEST(Seq2SeqAttentionHeatmap, ValuesAreTheModelsAndTheHtmlHasTheTokens) {
  auto m = load("seq2seq_generate/model");
  const std::vector<int64_t> src = {5, 17, 42, 8, 0}, dec = {99, 5, 17, 42};
  const Seq2SeqAttention a = seq2seq_attention(*m, src, dec);
  ASSERT_EQ(a.encoder.size(), 2u);
  ASSERT_EQ(a.decoder.size(), 2u);
  ASSERT_EQ(a.cross.size(), 2u);
  EXPECT_EQ(a.encoder[0].shape(), (Shape{4, 5, 5}));
  EXPECT_EQ(a.decoder[1].shape(), (Shape{4, 4, 4}));
  EXPECT_EQ(a.cross[1].shape(), (Shape{4, 4, 5}));
  // The model's own attentions, from a plain forward.
  models::Seq2SeqInputs in;
  in.input_ids = Tensor::from_vector(src, {1, 5});
  in.decoder_input_ids = Tensor::from_vector(dec, {1, 4});
  in.output_attentions = true;
  const models::Seq2SeqOutput out = m->forward(in);
  const std::vector<std::string> st = {"<s>", "a&b", "c", "d", "</s>"},
                                 tt = {"<pad>", "x", "y", "z\"q"};
  const std::string html = attention_heatmap_html(a, st, tt, "test");
  for (const char* tok : {"&lt;s&gt;", "a&amp;b", "&lt;/s&gt;", "&lt;pad&gt;", "z&quot;q"})
    EXPECT_NE(html.find(tok), std::string::npos) << tok;
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("http://") == std::string::npos ||
                html.find("http://") == html.find("http://www.w3.org/2000/svg"),
            true);
  const std::string open = "<script type=\"application/json\" id=\"attention-data\">";
  const size_t b = html.find(open), e = html.find("</script>", b);
  ASSERT_NE(b, std::string::npos);
  std::string js = html.substr(b + open.size(), e - b - open.size());
  for (size_t i = 0; (i = js.find("<\\/", i)) != std::string::npos;) js.replace(i, 3, "</");
  const json data = json::parse(js);
  EXPECT_EQ(data.at("source_tokens").get<std::vector<std::string>>(), st);
  // The page holds seq2seq_attention's values exactly, and those are the model's (a second
  // forward may take another GEMM path: 1e-6).
  struct Kind {
    const char* key;
    const std::vector<Tensor>* written;
    const std::vector<Tensor>* model_maps;
  };
  const Kind kinds[] = {{"encoder", &a.encoder, &out.encoder_attentions},
                        {"decoder", &a.decoder, &out.decoder_attentions},
                        {"cross", &a.cross, &out.cross_attentions}};
  for (const auto& [key, written, model_maps] : kinds) {
    ASSERT_EQ(data.at(key).size(), model_maps->size()) << key;
    for (size_t l = 0; l < model_maps->size(); ++l) {
      const Tensor t = (*model_maps)[l].select(0, 0).to(DType::f32).contiguous();
      const std::vector<float> want = t.to_vector<float>();
      const std::vector<float> exact = (*written)[l].to_vector<float>();
      const int64_t H = t.size(0), Q = t.size(1), K = t.size(2);
      for (int64_t h = 0; h < H; ++h) {
        const auto got = data.at(key)[l][h].get<std::vector<float>>();
        ASSERT_EQ(static_cast<int64_t>(got.size()), Q * K);
        for (int64_t q = 0; q < Q; ++q) {
          double sum = 0;
          for (int64_t k = 0; k < K; ++k) {
            EXPECT_EQ(got[q * K + k], exact[(h * Q + q) * K + k]);
            EXPECT_NEAR(got[q * K + k], want[(h * Q + q) * K + k], 1e-6);
            sum += got[q * K + k];
          }
          EXPECT_NEAR(sum, 1.0, 1e-5) << key << " layer " << l << " head " << h << " row " << q;
        }
      }
    }
  }
  // Causal decoder self-attention: nothing on later positions.
  EXPECT_EQ(data.at("decoder")[0][0][0 * 4 + 3].get<float>(), 0.0f);
  EXPECT_THROW(attention_heatmap_html(a, st, {"x"}), ValueError);
}
