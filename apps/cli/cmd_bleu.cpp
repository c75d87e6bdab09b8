// lmforge bleu: corpus BLEU and chrF of a line-aligned hypothesis file against one or more
// reference files, equal to sacrebleu's defaults (tasks/bleu.h).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "lmforge/core/error.h"
#include "lmforge/tasks/bleu.h"

namespace lmf::cli {

namespace {

struct BleuCmd {
  std::vector<std::string> refs;
  std::string hyp;
  bool json = false;
};

// Every line of `path` ("-": standard input), empty ones included, without its "\n" or "\r\n";
// a final line without a newline counts. Names the file and line of invalid UTF-8.
std::vector<std::string> read_aligned_lines(const std::string& path) {
  std::stringstream buf;
  std::string name = path;
  if (path == "-") {
    name = "standard input";
    buf << std::cin.rdbuf();
  } else {
    LMF_CHECK(!std::filesystem::is_directory(path), IoError, "'{}' is a folder, not a text file",
              path);
    std::ifstream f(path, std::ios::binary);
    LMF_CHECK(f.good(), IoError, "cannot read '{}': no such file or no permission", path);
    buf << f.rdbuf();
  }
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(buf, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    check_utf8(line, fmt::format("{}:{}", name, lines.size() + 1));
    lines.push_back(std::move(line));
  }
  return lines;
}

int run_bleu(const BleuCmd& o) {
  const std::vector<std::string> hyps = read_aligned_lines(o.hyp);
  LMF_CHECK(!hyps.empty(), ValueError, "'{}' is empty: no hypotheses to score", o.hyp);
  tasks::RefStreams refs;
  for (const auto& path : o.refs) {
    refs.push_back(read_aligned_lines(path));
    const size_t n = refs.back().size(), m = hyps.size();
    if (n != m)
      fail<ValueError>(
          "line counts differ: hypotheses '{}' have {} lines, references '{}' have {} ({}:{} has "
          "no counterpart); the files must be line-aligned",
          o.hyp, m, path, n, n > m ? path : o.hyp, std::min(n, m) + 1);
  }
  const tasks::BleuScore bleu = tasks::corpus_bleu(hyps, refs);
  const tasks::ChrfScore chrf = tasks::corpus_chrf(hyps, refs);
  if (!o.json) {
    fmt::print("{}\n{}\n", tasks::format_score(bleu), tasks::format_score(chrf));
    return 0;
  }
  nlohmann::json j;
  j["bleu"] = bleu.score;
  j["chrf"] = chrf.score;
  j["precisions"] = bleu.precisions;
  j["counts"] = bleu.counts;
  j["totals"] = bleu.totals;
  j["bp"] = bleu.bp;
  j["ratio"] = bleu.ratio;
  j["sys_len"] = bleu.sys_len;
  j["ref_len"] = bleu.ref_len;
  j["chrf_name"] = chrf.name();
  j["chrf_stats"] = chrf.stats;
  j["lines"] = hyps.size();
  j["references"] = refs.size();
  fmt::print("{}\n", j.dump());
  return 0;
}

}  // namespace

void register_bleu_command(CLI::App& app, Commands& out) {
  auto o = std::make_shared<BleuCmd>();
  auto* sub = app.add_subcommand(
      "bleu",
      "Score translations: corpus BLEU and chrF of a hypothesis file against one or more\n"
      "reference files, line by line (line N of each reference file is a reference for line N\n"
      "of the hypotheses; empty lines count). The results equal sacrebleu's corpus_bleu and\n"
      "corpus_chrf with their defaults: BLEU with the 13a (mteval-v13a) tokenizer, exp smoothing,\n"
      "4-grams, case-sensitive; chrF2 (character 6-grams, beta 2, whitespace ignored). With\n"
      "several --ref files each hypothesis is matched against all its references, as sacrebleu\n"
      "does with several reference streams.\n"
      "Examples:\n"
      "  lmforge bleu --ref test.fr --hyp output.fr\n"
      "  lmforge bleu --ref ref1.txt --ref ref2.txt --hyp output.txt --json\n"
      "  some-system < test.en | lmforge bleu --ref test.fr --hyp -");
  sub->add_option("--ref,-r", o->refs,
                  "reference file, one segment per line (repeat for several references)")
      ->required()
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->type_name("FILE");
  sub->add_option("--hyp", o->hyp, "hypothesis (system output) file; '-' for standard input")
      ->required()
      ->type_name("FILE");
  sub->add_flag("--json", o->json,
                "print one JSON object: bleu, chrf, precisions, counts, totals, bp, ratio, "
                "sys_len, ref_len, chrf_name, chrf_stats, lines, references");
  sub->footer(
      "Output (as sacrebleu prints it):\n"
      "  BLEU = 41.23 72.1/50.2/35.0/25.1 (BP = 0.987 ratio = 0.987 hyp_len = 9871 ref_len = "
      "10000)\n"
      "  chrF2 = 63.45\n"
      "  the 1- to 4-gram precisions in percent, the brevity penalty, hypothesis/reference\n"
      "  length ratio and token counts (the closest reference length per line).\n"
      "Exit status: 0 on success, 2 on bad input (a missing file, files whose line counts\n"
      "differ, invalid UTF-8: one line naming the file and line).");
  out.push_back({sub, [o] { return run_bleu(*o); }});
}

}  // namespace lmf::cli
