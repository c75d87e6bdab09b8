// libFuzzer target: arbitrary bytes as a fine-tuning data file. The first byte picks the reader
// (CSV, TSV, JSONL table, CoNLL, NER JSONL, SQuAD JSON, SQuAD JSONL, multiple-choice CSV) and the
// label kind; every failure must be an lmf::Error. Built from the readers' source alone.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "../src/train/finetune_data.cpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* kExt[] = {"csv",       "tsv",  "jsonl",    "conll",
                               "ner.jsonl", "json", "qa.jsonl", "mc.csv"};
  const uint8_t mode = data[0];
  const int reader = mode % 8;
  const auto path = std::filesystem::temp_directory_path() /
                    ("lmf_fuzz_ft_" + std::to_string(::getpid()) + "." + kExt[reader]);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    using namespace lmf::train;
    if (reader <= 2) {
      TextColumns c;
      c.header = (mode & 8) == 0;
      if (mode & 16) c.text = "1";
      if (mode & 32) c.label = "0";
      const TextData d = read_text_data(path.string(), c);
      make_label_space(d, static_cast<LabelKind>((mode >> 6) & 3));
    } else if (reader <= 4) {
      token_label_list(read_token_data(path.string()));
    } else if (reader <= 6) {
      read_squad(path.string());
    } else {
      ChoiceColumns c;
      c.endings = {"ending0", "ending1"};
      read_multiple_choice(path.string(), c);
    }
  } catch (const lmf::Error&) {
  }
  return 0;
}
