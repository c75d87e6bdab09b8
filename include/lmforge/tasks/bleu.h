// Corpus and sentence BLEU and chrF as sacrebleu 2.x computes them: the defaults equal sacrebleu's
// corpus_bleu (13a tokenizer, exp smoothing, 4-grams) and corpus_chrf (chrF2, 6 character orders).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmf::tasks {

// sacrebleu's smooth_method: "none", "floor" (default value 0.1), "add-k" (1) or "exp".
enum class BleuSmooth { kNone, kFloor, kAddK, kExp };

struct BleuOptions {
  BleuSmooth smooth = BleuSmooth::kExp;
  std::optional<double> smooth_value;  // floor / add-k value; unset: sacrebleu's default
  int max_ngram_order = 4;
  bool effective_order = false;  // sentence_bleu turns it on, as sacrebleu does
  std::string tokenize = "13a";  // "13a" (mteval-v13a) or "none" (split on whitespace only)
};

// sacrebleu's BLEUScore. counts/totals are the raw matched/total n-grams per order (with add-k
// smoothing sacrebleu reports them with k added for orders >= 2; these are the unsmoothed ones).
struct BleuScore {
  double score = 0;                // 0..100
  std::vector<int64_t> counts;     // matched n-grams, order 1..max_ngram_order
  std::vector<int64_t> totals;     // hypothesis n-grams, order 1..max_ngram_order
  std::vector<double> precisions;  // percent, after smoothing
  double bp = 0;                   // brevity penalty
  int64_t sys_len = 0;             // hypothesis tokens
  int64_t ref_len = 0;             // closest-reference tokens, summed over segments
  double ratio = 0;                // sys_len / ref_len (0 when ref_len is 0)
};

struct ChrfOptions {
  int char_order = 6;
  int word_order = 0;  // 2 is chrF++
  int beta = 2;
  bool whitespace = false;     // keep whitespace in character n-grams
  bool eps_smoothing = false;  // sacrebleu's default is effective-order averaging
};

struct ChrfScore {
  double score = 0;  // 0..100
  int char_order = 6, word_order = 0, beta = 2;
  // Per order (characters 1..char_order, then words 1..word_order): hypothesis n-grams,
  // reference n-grams and matches, summed over the segments' best references.
  std::vector<int64_t> stats;
  std::string name() const;  // "chrF2", "chrF2++", ...
};

// Reference layout as sacrebleu's: refs[k] is the k-th reference stream, refs[k][i] a reference
// of hyps[i]. At least one stream; every stream as long as hyps. Every string must be valid UTF-8.
// ValueError (naming the line) otherwise, or when there are no hypotheses.
using RefStreams = std::vector<std::vector<std::string>>;

BleuScore corpus_bleu(const std::vector<std::string>& hyps, const RefStreams& refs,
                      const BleuOptions& options = {});
ChrfScore corpus_chrf(const std::vector<std::string>& hyps, const RefStreams& refs,
                      const ChrfOptions& options = {});
// One hypothesis against its references; as sacrebleu's sentence_bleu, effective order is on.
BleuScore sentence_bleu(const std::string& hyp, const std::vector<std::string>& refs,
                        BleuOptions options = {.effective_order = true});
ChrfScore sentence_chrf(const std::string& hyp, const std::vector<std::string>& refs,
                        const ChrfOptions& options = {});

// sacrebleu's mteval-v13a tokenization of one (valid UTF-8) line: tokens joined by one space.
std::string tokenize_13a(std::string_view line);

// sacrebleu's printed form: "BLEU = 41.23 72.1/50.2/35.0/25.1 (BP = 0.987 ratio = 0.987 hyp_len
// = 120 ref_len = 121)" and "chrF2 = 58.12" (`width` decimals for the score).
std::string format_score(const BleuScore& s, int width = 2);
std::string format_score(const ChrfScore& s, int width = 2);

}  // namespace lmf::tasks
