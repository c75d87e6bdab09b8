#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "lmforge/core/error.h"

namespace lmf::cli {

namespace fs = std::filesystem;

void check_model_dir(const std::string& dir) {
  const bool is_default =
      fs::path(dir).lexically_normal() == fs::path(kDefaultModelDir).lexically_normal();
  if (fs::is_directory(dir) && fs::exists(fs::path(dir) / "config.json")) return;
  if (is_default)
    fail<IoError>(
        "the default model is not installed at '{}' (relative to the current directory); run "
        "`bash scripts/setup.sh` (or `bash scripts/install_model.sh`) from the lmforge folder, "
        "or pass --model DIR",
        dir);
  if (!fs::exists(dir)) fail<IoError>("model folder '{}' does not exist", dir);
  if (!fs::is_directory(dir)) fail<IoError>("'{}' is not a folder; pass a model folder", dir);
  fail<IoError>("'{}' has no config.json: pass a Hugging Face model folder", dir);
}

void add_input_options(CLI::App* sub, InputOptions& in) {
  sub->add_option("--file,-f", in.file,
                  "read the texts from FILE (\"-\" : standard input), one per line, or JSONL");
  sub->add_option("--format", in.format,
                  "input format: auto (JSONL when the first line starts with '{'), text or jsonl")
      ->check(CLI::IsMember({"auto", "text", "jsonl"}))
      ->capture_default_str();
  sub->add_option("--field", in.field, "the JSONL field holding the text")->capture_default_str();
}

void check_utf8(const std::string& s, const std::string& where) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      fail<ValueError>("{}: invalid UTF-8 at byte {} (0x{:02x}); convert the input to UTF-8", where,
                       i, c);
    }
    LMF_CHECK(i + len <= n, ValueError, "{}: truncated UTF-8 sequence at byte {}", where, i);
    for (size_t k = 1; k < len; ++k) {
      LMF_CHECK((p[i + k] & 0xC0) == 0x80, ValueError,
                "{}: invalid UTF-8 at byte {}; convert the input to UTF-8", where, i);
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    const bool overlong =
        (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    LMF_CHECK(!overlong && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF), ValueError,
              "{}: invalid UTF-8 at byte {}; convert the input to UTF-8", where, i);
    i += len;
  }
}

std::string ellipsize(const std::string& s, size_t width) {
  size_t cps = 0, cut = std::string::npos;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (cps == (width >= 3 ? width - 3 : 0)) cut = i;
    if (++cps > width) return s.substr(0, cut) + "...";
  }
  return s;
}

namespace {

std::vector<std::string> parse_lines(std::istream& is, const std::string& name,
                                     const std::string& format, const std::string& field,
                                     bool keep_blank_lines) {
  std::vector<std::string> out;
  size_t pending_blank = 0;  // blank lines before the format is known (text keeps them)
  std::string line;
  bool jsonl = format == "jsonl";
  bool decided = format != "auto";
  for (size_t n = 1; std::getline(is, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = fmt::format("{} line {}", name, n);
    check_utf8(line, where);
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (keep_blank_lines && !jsonl) {
        if (decided)
          out.emplace_back();
        else
          ++pending_blank;
      }
      continue;
    }
    if (!decided) {
      jsonl = line[line.find_first_not_of(" \t")] == '{';
      decided = true;
      if (!jsonl) out.resize(out.size() + pending_blank);
    }
    if (!jsonl) {
      out.push_back(line);
      continue;
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail<ValueError>("{}: not a JSON object ({}); use --format text for plain lines", where,
                       e.what());
    }
    LMF_CHECK(j.is_object() && j.contains(field) && j[field].is_string(), ValueError,
              "{}: expected a JSON object with a string \"{}\" field (--field chooses another)",
              where, field);
    out.push_back(j[field].get<std::string>());
  }
  return out;
}

}  // namespace

std::vector<std::string> read_text_file(const std::string& path, const std::string& format,
                                        const std::string& field, bool keep_blank_lines) {
  if (path == "-") return parse_lines(std::cin, "standard input", format, field, keep_blank_lines);
  LMF_CHECK(!fs::is_directory(path), IoError, "'{}' is a folder, not a text file", path);
  std::ifstream f(path, std::ios::binary);
  LMF_CHECK(f.good(), IoError, "cannot read '{}': no such file or no permission", path);
  return parse_lines(f, path, format, field, keep_blank_lines);
}

std::vector<std::string> read_inputs(const InputOptions& in, const std::string& what) {
  std::vector<std::string> texts;
  if (!in.args.empty()) {
    for (size_t i = 0; i < in.args.size(); ++i)
      check_utf8(in.args[i], fmt::format("argument {}", i + 1));
    texts = in.args;
  } else if (!in.file.empty()) {
    texts = read_text_file(in.file, in.format, in.field, in.keep_blank_lines);
  } else if (!isatty(STDIN_FILENO)) {
    texts = read_text_file("-", in.format, in.field, in.keep_blank_lines);
  } else {
    fail<ValueError>("no input: give the {}s as arguments, with --file FILE, or on standard input",
                     what);
  }
  LMF_CHECK(!texts.empty(), ValueError, "empty input: no {} to process (blank lines are skipped)",
            what);
  return texts;
}

}  // namespace lmf::cli
