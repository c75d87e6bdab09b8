// Pretraining data: text readers and their errors, instance creation invariants (BERT NSP,
// ALBERT SOP, RoBERTa full sentences), MLM masking statistics and whole-word masking.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/train/pretrain.h"
#include "../train_data_util.h"

using namespace lmf;
using namespace lmf::train;
namespace fs = std::filesystem;

namespace {

std::string write_temp(const std::string& name, const std::string& content) {
  return lmf::test::write_temp_file("lmf_pretrain_data_test", name, content);
}

using lmf::test::error_of;

// Fake vocabulary: 0 pad, 1 cls, 2 sep, 3 mask, 4 unk; ids >= 10 are words.
SpecialTokens fake_special(int64_t vocab) {
  SpecialTokens sp;
  sp.pad = 0, sp.cls = 1, sp.sep = 2, sp.mask = 3;
  sp.vocab_size = vocab;
  sp.special.assign(vocab, 0);
  for (int i = 0; i < 5; ++i) sp.special[i] = 1;
  return sp;
}

// Document d, sentence s: every token is 10 + d * 100 + s, so each token names its origin.
constexpr int kDocs = 120;
int32_t tok_id(int d, int s) {
  return 10 + d * 100 + s;
}
int doc_of(int32_t id) {
  return (id - 10) / 100;
}
int sent_of(int32_t id) {
  return (id - 10) % 100;
}

std::vector<TokenizedDocument> origin_corpus(Generator& g, int sent_len_max = 8) {
  std::vector<TokenizedDocument> docs;
  for (int d = 0; d < kDocs; ++d) {
    TokenizedDocument doc;
    const int n = 2 + static_cast<int>(g.next_u64() % 12);
    for (int s = 0; s < n; ++s) {
      TokenizedSentence ts;
      const int len = 2 + static_cast<int>(g.next_u64() % (sent_len_max - 1));
      ts.ids.assign(len, tok_id(d, s));
      ts.word_start.assign(len, 1);
      doc.push_back(ts);
    }
    docs.push_back(doc);
  }
  return docs;
}

// Splits [CLS] A [SEP] B [SEP] checking the special-token placement and token types.
void split_pair(const PretrainInstance& in, const SpecialTokens& sp, std::vector<int32_t>& a,
                std::vector<int32_t>& b) {
  ASSERT_GE(in.size(), 5);
  ASSERT_EQ(in.input_ids.front(), sp.cls);
  ASSERT_EQ(in.input_ids.back(), sp.sep);
  size_t mid = 1;
  while (in.input_ids[mid] != sp.sep) ++mid;
  a.assign(in.input_ids.begin() + 1, in.input_ids.begin() + mid);
  b.assign(in.input_ids.begin() + mid + 1, in.input_ids.end() - 1);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  for (int32_t id : b) ASSERT_NE(id, sp.sep);
  for (size_t j = 0; j < in.input_ids.size(); ++j)
    ASSERT_EQ(in.token_type_ids[j], j <= mid ? 0 : 1) << "position " << j;
  ASSERT_EQ(in.word_start.size(), in.input_ids.size());
}

// Sentences of a segment: one document, in order, contiguous.
void expect_contiguous(const std::vector<int32_t>& seg) {
  for (size_t j = 1; j < seg.size(); ++j) {
    ASSERT_EQ(doc_of(seg[j]), doc_of(seg[0]));
    const int ds = sent_of(seg[j]) - sent_of(seg[j - 1]);
    ASSERT_TRUE(ds == 0 || ds == 1) << "sentences out of order";
  }
}

}  // namespace

TEST(PretrainRead, PlainTextSplitsDocumentsOnBlankLines) {
  const auto p = write_temp("plain.txt", "\xEF\xBB\xBF  First one.\r\nSecond.\n\n\n  \nThird.\n");
  const auto docs = read_text_documents(p);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], (TextDocument{"First one.", "Second."}));
  EXPECT_EQ(docs[1], (TextDocument{"Third."}));
  EXPECT_EQ(read_documents(p).size(), 2u);
}

TEST(PretrainRead, JsonlOneDocumentPerLineWithConfigurableField) {
  const auto p = write_temp("docs.jsonl",
                            "{\"text\": \"a b.\\nc d.\", \"body\": \"x\"}\n\n{\"text\": \"e\"}\n");
  const auto docs = read_jsonl_documents(p);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], (TextDocument{"a b.", "c d."}));
  const std::string e = error_of([&] { read_jsonl_documents(p, "body"); });
  EXPECT_NE(e.find("docs.jsonl:3: no \"body\" field"), std::string::npos) << e;
}

TEST(PretrainRead, SplitSentencesOfRunningText) {
  EXPECT_EQ(split_sentences("It rained. Then, e.g. in May, Mr. Smith left! Why? \"Yes.\" OK"),
            (std::vector<std::string>{"It rained.", "Then, e.g. in May, Mr. Smith left!", "Why?",
                                      "\"Yes.\"", "OK"}));
  EXPECT_EQ(split_sentences("version 1.5 is out. it works"),
            (std::vector<std::string>{"version 1.5 is out. it works"}));
  EXPECT_EQ(split_sentences("  J. R. R. Tolkien wrote it.  "),
            (std::vector<std::string>{"J. R. R. Tolkien wrote it."}));
  const auto p = write_temp("para.jsonl", "{\"text\": \"One here. Two there.\\nThree.\"}\n");
  EXPECT_EQ(read_jsonl_documents(p)[0], (TextDocument{"One here.", "Two there.", "Three."}));
}

TEST(PretrainRead, ErrorsNameTheFileAndLine) {
  const auto bad = write_temp("bad.txt", "fine\nbad \xC3\x28 byte\n");
  const std::string e = error_of([&] { read_text_documents(bad); });
  EXPECT_NE(e.find("bad.txt:2"), std::string::npos) << e;
  EXPECT_NE(e.find("UTF-8"), std::string::npos) << e;
  EXPECT_THROW(read_text_documents(write_temp("overlong.txt", "\xC0\xAF")), ValueError);
  EXPECT_THROW(read_text_documents(write_temp("surrogate.txt", "\xED\xA0\x80")), ValueError);

  const std::string empty = error_of([&] { read_text_documents(write_temp("e.txt", "\n \n")); });
  EXPECT_NE(empty.find("no text"), std::string::npos) << empty;
  EXPECT_THROW(read_text_documents("/nonexistent/corpus.txt"), IoError);

  const auto j = write_temp("j.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n");
  const std::string missing = error_of([&] { read_jsonl_documents(j); });
  EXPECT_NE(missing.find("j.jsonl:2"), std::string::npos) << missing;
  EXPECT_NE(missing.find("\"text\""), std::string::npos) << missing;
  const std::string notjson =
      error_of([&] { read_jsonl_documents(write_temp("n.jsonl", "{\"text\": \"a\"}\n{oops\n")); });
  EXPECT_NE(notjson.find("n.jsonl:2"), std::string::npos) << notjson;
  EXPECT_THROW(read_jsonl_documents(write_temp("t.jsonl", "{\"text\": 3}\n")), ValueError);
}

TEST(PretrainInstances, BertNspSegmentsLabelsAndTruncation) {
  Generator g(7);
  const auto docs = origin_corpus(g);
  const SpecialTokens sp = fake_special(20000);
  InstanceOptions o;
  o.max_seq_length = 24;
  o.short_seq_prob = 0.0;  // a short target can force a random B mid-document; tested below
  o.dup_factor = 5;
  Generator rng(11);
  const auto inst = create_instances(docs, sp, o, rng);
  ASSERT_GT(inst.size(), 1000u);
  int64_t next = 0, free_draws = 0;
  for (const auto& in : inst) {
    std::vector<int32_t> a, b;
    ASSERT_NO_FATAL_FAILURE(split_pair(in, sp, a, b));
    ASSERT_LE(in.size(), o.max_seq_length);
    ASSERT_NO_FATAL_FAILURE(expect_contiguous(a));
    ASSERT_NO_FATAL_FAILURE(expect_contiguous(b));
    const int da = doc_of(a[0]), last_a = sent_of(a.back());
    ASSERT_TRUE(in.sentence_label == 0 || in.sentence_label == 1);
    if (in.sentence_label == 0) {  // the true continuation: later sentences of the same document
      ASSERT_EQ(doc_of(b[0]), da);
      ASSERT_GT(sent_of(b[0]), last_a);  // + 1 unless truncation removed a short first sentence
    } else {
      ASSERT_NE(doc_of(b[0]), da);
    }
    // A chunk that ends the document cannot have a true next segment: those draws are forced.
    const bool forced = last_a == static_cast<int>(docs[da].size()) - 1;
    if (!forced) {
      ++free_draws;
      next += in.sentence_label == 0;
    }
  }
  const double p = static_cast<double>(next) / free_draws;
  EXPECT_NEAR(p, 0.5, 4 * std::sqrt(0.25 / free_draws)) << next << " / " << free_draws;

  // short_seq_prob = 1: every document draws a target in [2, max_num_tokens], shorter on average.
  auto mean_len = [&](double short_prob) {
    InstanceOptions so = o;
    so.short_seq_prob = short_prob;
    Generator r(17);
    double total = 0;
    const auto v = create_instances(docs, sp, so, r);
    for (const auto& in : v) total += static_cast<double>(in.size());
    return total / static_cast<double>(v.size());
  };
  EXPECT_LT(mean_len(1.0), mean_len(0.0) - 3);
}

TEST(PretrainInstances, TruncationKeepsMaxLengthWithLongSentences) {
  Generator g(3);
  const auto docs = origin_corpus(g, 40);
  const SpecialTokens sp = fake_special(20000);
  InstanceOptions o;
  o.max_seq_length = 16;
  Generator rng(5);
  const auto inst = create_instances(docs, sp, o, rng);
  int64_t full = 0;
  for (const auto& in : inst) {
    std::vector<int32_t> a, b;
    ASSERT_NO_FATAL_FAILURE(split_pair(in, sp, a, b));
    ASSERT_LE(in.size(), 16);
    full += in.size() == 16;
  }
  EXPECT_GT(full, static_cast<int64_t>(inst.size()) / 2);  // long sentences fill the target
}

TEST(PretrainInstances, AlbertSopConsecutiveSegmentsSwappedHalfTheTime) {
  Generator g(9);
  const auto docs = origin_corpus(g);
  const SpecialTokens sp = fake_special(20000);
  InstanceOptions o;
  o.recipe = Recipe::albert;
  o.max_seq_length = 24;
  o.dup_factor = 10;
  Generator rng(13);
  const auto inst = create_instances(docs, sp, o, rng);
  int64_t swapped = 0;
  for (const auto& in : inst) {
    std::vector<int32_t> a, b;
    ASSERT_NO_FATAL_FAILURE(split_pair(in, sp, a, b));
    ASSERT_EQ(doc_of(a[0]), doc_of(b[0]));  // never another document
    ASSERT_NO_FATAL_FAILURE(expect_contiguous(a));
    ASSERT_NO_FATAL_FAILURE(expect_contiguous(b));
    const auto& first = in.sentence_label == 0 ? a : b;
    const auto& second = in.sentence_label == 0 ? b : a;
    // In order (0 when one sentence was split between them) up to truncation at the edges.
    ASSERT_GE(sent_of(second.front()), sent_of(first.back())) << "segments out of order";
    swapped += in.sentence_label;
  }
  const double n = static_cast<double>(inst.size());
  EXPECT_NEAR(swapped / n, 0.5, 4 * std::sqrt(0.25 / n));
}

TEST(PretrainInstances, RobertaFullSentencesPackAcrossDocuments) {
  Generator g(21);
  const auto docs = origin_corpus(g);
  const SpecialTokens sp = fake_special(20000);
  InstanceOptions o;
  o.recipe = Recipe::roberta;
  o.max_seq_length = 32;
  o.dup_factor = 2;
  Generator rng(1);
  const auto inst = create_instances(docs, sp, o, rng);
  std::multiset<int32_t> seen;
  int64_t crossing = 0;
  for (const auto& in : inst) {
    ASSERT_LE(in.size(), 32);
    ASSERT_EQ(in.input_ids.front(), sp.cls);
    ASSERT_EQ(in.input_ids.back(), sp.sep);
    ASSERT_EQ(in.sentence_label, -1);
    for (auto t : in.token_type_ids) ASSERT_EQ(t, 0);
    int32_t prev = -1;
    for (size_t j = 1; j + 1 < in.input_ids.size(); ++j) {
      const int32_t id = in.input_ids[j];
      if (id == sp.sep) {  // a document boundary: the next token starts a new document
        ++crossing;
        ASSERT_GT(prev, 0);
        ASSERT_EQ(sent_of(prev), static_cast<int>(docs[doc_of(prev)].size()) - 1);
        ASSERT_EQ(sent_of(in.input_ids[j + 1]), 0);  // never a separator ending a block
        prev = -1;
        continue;
      }
      if (prev > 0) {
        ASSERT_EQ(doc_of(id), doc_of(prev));
        ASSERT_TRUE(sent_of(id) - sent_of(prev) == 0 || sent_of(id) - sent_of(prev) == 1);
      }
      seen.insert(id);
      prev = id;
    }
  }
  EXPECT_GT(crossing, 0);
  // Every token of the corpus appears exactly dup_factor times (nothing lost, nothing invented).
  int64_t total = 0;
  for (const auto& d : docs)
    for (const auto& s : d) total += static_cast<int64_t>(s.ids.size());
  EXPECT_EQ(static_cast<int64_t>(seen.size()), 2 * total);
  EXPECT_EQ(seen.count(docs[0][0].ids[0]), 2 * docs[0][0].ids.size());
}

TEST(PretrainInstances, RejectsBadOptions) {
  const SpecialTokens sp = fake_special(100);
  Generator rng(1);
  InstanceOptions o;
  o.max_seq_length = 4;
  EXPECT_THROW(create_instances({TokenizedDocument{TokenizedSentence{{10}, {1}}}}, sp, o, rng),
               ValueError);
  EXPECT_THROW(create_instances({}, sp, InstanceOptions{}, rng), ValueError);
  EXPECT_THROW(parse_recipe("gpt"), ValueError);
}

TEST(PretrainMasking, HfStatisticsOverManyTokens) {
  const SpecialTokens sp = fake_special(1000);
  MaskingOptions mo;
  Generator rng(99);
  int64_t candidates = 0, chosen = 0, to_mask = 0, unchanged = 0, random = 0;
  for (int r = 0; r < 200; ++r) {
    std::vector<int32_t> ids{sp.cls};
    for (int j = 0; j < 126; ++j) ids.push_back(10 + (r * 131 + j * 7) % 990);
    ids.push_back(sp.sep);
    ids.push_back(sp.pad);
    const std::vector<int32_t> orig = ids;
    std::vector<int32_t> labels;
    mask_tokens(ids, labels, {}, sp, mo, rng);
    ASSERT_EQ(labels.size(), ids.size());
    for (size_t j = 0; j < ids.size(); ++j) {
      if (sp.is_special(orig[j])) {
        ASSERT_EQ(labels[j], -100);  // never special tokens or padding
        ASSERT_EQ(ids[j], orig[j]);
        continue;
      }
      ++candidates;
      if (labels[j] == -100) {
        ASSERT_EQ(ids[j], orig[j]);  // labels only at chosen positions, others untouched
        continue;
      }
      ASSERT_EQ(labels[j], orig[j]);
      ++chosen;
      if (ids[j] == sp.mask)
        ++to_mask;
      else if (ids[j] == orig[j])
        ++unchanged;
      else
        ++random;
    }
  }
  auto within = [](int64_t k, int64_t n, double p) {
    return std::abs(static_cast<double>(k) - n * p) <= 4 * std::sqrt(n * p * (1 - p));
  };
  ASSERT_GT(candidates, 20000);
  EXPECT_TRUE(within(chosen, candidates, 0.15)) << chosen << " of " << candidates;
  // A random replacement equals the original with probability 1/1000: fold that in.
  EXPECT_TRUE(within(to_mask, chosen, 0.8)) << to_mask << " of " << chosen;
  EXPECT_TRUE(within(random, chosen, 0.1 * 0.999)) << random << " of " << chosen;
  EXPECT_TRUE(within(unchanged, chosen, 0.1 + 0.1 * 0.001)) << unchanged << " of " << chosen;
}

TEST(PretrainMasking, SameSeedReproducibleAndEachServeDiffers) {
  const SpecialTokens sp = fake_special(500);
  std::vector<int32_t> base{sp.cls};
  for (int j = 0; j < 100; ++j) base.push_back(10 + j);
  base.push_back(sp.sep);
  auto serve = [&](Generator& g) {
    std::vector<int32_t> ids = base, labels;
    mask_tokens(ids, labels, {}, sp, MaskingOptions{}, g);
    return labels;
  };
  Generator g1(5), g2(5);
  const auto a1 = serve(g1), a2 = serve(g1);
  const auto b1 = serve(g2), b2 = serve(g2);
  EXPECT_EQ(a1, b1);
  EXPECT_EQ(a2, b2);
  EXPECT_NE(a1, a2);
}

TEST(PretrainMasking, WholeWordMaskingNeverSplitsAWord) {
  const SpecialTokens sp = fake_special(1000);
  MaskingOptions mo;
  mo.whole_word_mask = true;
  Generator rng(3);
  int64_t total_chosen = 0, total_tokens = 0;
  for (int r = 0; r < 300; ++r) {
    std::vector<int32_t> ids{sp.cls};
    std::vector<uint8_t> ws{0};
    std::vector<int> word_of{-1};
    int words = 0;
    while (ids.size() < 60) {  // words of 1-4 pieces
      const int len = 1 + (r + words) % 4;
      for (int k = 0; k < len; ++k) {
        ids.push_back(10 + (words * 17 + k) % 900);
        ws.push_back(k == 0);
        word_of.push_back(words);
      }
      ++words;
    }
    ids.push_back(sp.sep);
    ws.push_back(0);
    word_of.push_back(-1);
    std::vector<int32_t> labels;
    mask_tokens(ids, labels, ws, sp, mo, rng);
    std::map<int, std::pair<int, int>> per_word;  // word -> (chosen, size)
    int64_t chosen = 0;
    for (size_t j = 0; j < ids.size(); ++j) {
      if (word_of[j] < 0) {
        ASSERT_EQ(labels[j], -100);
        continue;
      }
      auto& pw = per_word[word_of[j]];
      pw.second++;
      if (labels[j] != -100) pw.first++, chosen++;
    }
    for (const auto& [w, cs] : per_word)
      ASSERT_TRUE(cs.first == 0 || cs.first == cs.second) << "word " << w << " split";
    const auto budget = static_cast<int64_t>(std::max(1.0, std::round(ids.size() * 0.15)));
    ASSERT_LE(chosen, budget);
    total_chosen += chosen;
    total_tokens += static_cast<int64_t>(ids.size());
  }
  EXPECT_NEAR(static_cast<double>(total_chosen) / total_tokens, 0.15, 0.02);
}

TEST(PretrainTokens, WordStartsFromWordPieceVocabulary) {
  const auto t =
      tok::Tokenizer::from_file(std::string(LMF_FIXTURES_DIR) + "/tokenizers/wp_trained_a.json");
  const SpecialTokens sp = SpecialTokens::from_tokenizer(t);
  EXPECT_EQ(sp.cls, static_cast<int32_t>(*t.token_to_id("[CLS]")));
  EXPECT_EQ(sp.mask, static_cast<int32_t>(*t.token_to_id("[MASK]")));
  EXPECT_TRUE(sp.is_special(sp.pad));
  const auto enc = t.encode("unbelievably tokenization", false);
  const std::vector<int32_t> ids(enc.ids.begin(), enc.ids.end());
  const auto ws = word_starts(t, ids);
  ASSERT_EQ(ws.size(), ids.size());
  for (size_t j = 0; j < ids.size(); ++j)
    EXPECT_EQ(ws[j], enc.tokens[j].rfind("##", 0) == 0 ? 0 : 1) << enc.tokens[j];
  const auto docs = tokenize_documents(t, {{"hello there", "", "general kenobi"}, {""}});
  ASSERT_EQ(docs.size(), 1u);  // empty sentences and documents dropped
  EXPECT_EQ(docs[0].size(), 2u);
}

TEST(PretrainTokens, WordStartsFromByteLevelVocabulary) {
  const auto t =
      tok::Tokenizer::from_file(std::string(LMF_FIXTURES_DIR) + "/tokenizers/bpe_tokenizer.json");
  const SpecialTokens sp = SpecialTokens::from_tokenizer(t);
  EXPECT_EQ(sp.mask, static_cast<int32_t>(*t.token_to_id("<mask>")));
  const auto enc = t.encode("hello wonderful worlds", false);
  const std::vector<int32_t> ids(enc.ids.begin(), enc.ids.end());
  const auto ws = word_starts(t, ids);
  for (size_t j = 1; j < ids.size(); ++j)
    EXPECT_EQ(ws[j], enc.tokens[j].rfind("\xC4\xA0", 0) == 0 ? 1 : 0) << enc.tokens[j];
  EXPECT_EQ(ws[0], 1);
}

TEST(PretrainTokens, WordStartsFromSentencePieceVocabulary) {
  const auto t = tok::Tokenizer::from_file(std::string(LMF_FIXTURES_DIR) +
                                           "/tokenizers/unigram_tokenizer.json");
  const auto enc = t.encode("hello wonderful worlds", false);
  const std::vector<int32_t> ids(enc.ids.begin(), enc.ids.end());
  const auto ws = word_starts(t, ids);
  int64_t starts = 0;
  for (size_t j = 1; j < ids.size(); ++j) {
    EXPECT_EQ(ws[j], enc.tokens[j].rfind("\xE2\x96\x81", 0) == 0 ? 1 : 0) << enc.tokens[j];
    starts += ws[j];
  }
  EXPECT_EQ(starts, 2);  // "wonderful" and "worlds" start words after the first
}
