// Fine-tuning data readers: CSV/TSV/JSONL tables, CoNLL/JSONL token tags, SQuAD JSON/JSONL.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/io/json.h"
#include "lmforge/tokenizers/unicode.h"
#include "lmforge/train/finetune.h"

namespace lmf::train {
namespace {

using ojson = nlohmann::ordered_json;

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LMF_CHECK(in.good(), IoError, "cannot open data file '{}'", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  const bool blank = std::all_of(
      s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
  LMF_CHECK(!blank, IoError, "data file '{}' is empty", path);
  // A UTF-8 byte order mark is not data.
  if (s.size() >= 3 && s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3);
  return s;
}

void check_utf8(const std::string& s, const std::string& path, int64_t line) {
  LMF_CHECK(tok::is_valid_utf8(s), IoError,
            "{}:{}: not valid UTF-8; convert the file to UTF-8 (e.g. iconv -t UTF-8)", path, line);
}

std::string extension(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string e = path.substr(dot + 1);
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

struct Record {
  std::vector<std::string> fields;
  int64_t line = 0;
};

// RFC 4180: separator-delimited fields, quoted fields with "" escapes and embedded newlines,
// CRLF or LF line ends. A quote inside an unquoted field is kept literally (as Python's csv).
std::vector<Record> parse_csv(const std::string& s, char sep, bool quoting,
                              const std::string& path) {
  std::vector<Record> out;
  size_t i = 0;
  int64_t line = 1;
  while (i < s.size()) {
    Record rec;
    rec.line = line;
    std::string field;
    bool end_of_record = false;
    while (!end_of_record) {
      if (quoting && i < s.size() && s[i] == '"') {
        const int64_t open_line = line;
        ++i;
        while (true) {
          LMF_CHECK(i < s.size(), IoError, "{}:{}: a quoted field is never closed (missing '\"')",
                    path, open_line);
          if (s[i] == '"') {
            if (i + 1 < s.size() && s[i + 1] == '"') {
              field.push_back('"');
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (s[i] == '\n') ++line;
          field.push_back(s[i++]);
        }
        const bool ok = i >= s.size() || s[i] == sep || s[i] == '\n' ||
                        (s[i] == '\r' && (i + 1 >= s.size() || s[i + 1] == '\n'));
        LMF_CHECK(ok, IoError,
                  "{}:{}: unexpected character '{}' after a closing quote (a quote inside a "
                  "quoted field must be doubled: \"\")",
                  path, line, s[i]);
      } else {
        while (i < s.size() && s[i] != sep && s[i] != '\n') {
          if (s[i] == '\r' && (i + 1 >= s.size() || s[i + 1] == '\n')) break;
          field.push_back(s[i++]);
        }
      }
      rec.fields.push_back(std::move(field));
      field.clear();
      if (i < s.size() && s[i] == sep) {
        ++i;
        continue;
      }
      if (i < s.size() && s[i] == '\r') ++i;
      if (i < s.size() && s[i] == '\n') ++i;
      ++line;
      end_of_record = true;
    }
    const bool blank = rec.fields.size() == 1 && rec.fields[0].empty();
    if (!blank) out.push_back(std::move(rec));
  }
  return out;
}

// A column spec -> index: a header name, else a 0-based index.
int64_t resolve_column(const std::string& spec, const std::vector<std::string>& names,
                       const std::string& path, const char* role) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == spec) return static_cast<int64_t>(i);
  int64_t idx = -1;
  const auto [p, ec] = std::from_chars(spec.data(), spec.data() + spec.size(), idx);
  if (ec == std::errc() && p == spec.data() + spec.size() && idx >= 0 &&
      idx < static_cast<int64_t>(names.size()))
    return idx;
  fail<ValueError>("{}: no {} column '{}'; the columns are: {} (or give a 0-based index)", path,
                   role, spec, fmt::join(names, ", "));
}

struct ResolvedColumns {
  int64_t text = -1, pair = -1, label = -1;
};

ResolvedColumns resolve_columns(const TextColumns& c, const std::vector<std::string>& names,
                                const std::string& path, TextData& data) {
  ResolvedColumns r;
  // The default "label" column may be absent (pairs for MNRL, prediction data); a named one not.
  const bool default_absent =
      c.label == "label" && std::find(names.begin(), names.end(), "label") == names.end();
  if (!c.label.empty() && !default_absent) r.label = resolve_column(c.label, names, path, "label");
  if (!c.text.empty()) {
    r.text = resolve_column(c.text, names, path, "text");
  } else {
    for (const char* n : {"sentence1", "sentence", "text"}) {
      auto it = std::find(names.begin(), names.end(), n);
      if (it != names.end()) {
        r.text = it - names.begin();
        break;
      }
    }
    for (int64_t i = 0; r.text < 0 && i < static_cast<int64_t>(names.size()); ++i)
      if (i != r.label) r.text = i;
    LMF_CHECK(r.text >= 0, ValueError, "{}: no text column (columns: {})", path,
              fmt::join(names, ", "));
  }
  if (!c.text_pair.empty()) {
    r.pair = resolve_column(c.text_pair, names, path, "text_pair");
  } else if (names[r.text] == "sentence1") {
    auto it = std::find(names.begin(), names.end(), "sentence2");
    if (it != names.end()) r.pair = it - names.begin();
  }
  data.text_column = names[r.text];
  data.text_pair_column = r.pair >= 0 ? names[r.pair] : "";
  data.label_column = r.label >= 0 ? names[r.label] : "";
  data.has_pair = r.pair >= 0;
  data.has_label = r.label >= 0;
  return r;
}

TextData read_table(const std::string& path, const std::string& s, char sep, bool quoting,
                    const TextColumns& c) {
  std::vector<Record> recs = parse_csv(s, sep, quoting, path);
  LMF_CHECK(!recs.empty(), IoError, "data file '{}' is empty", path);
  std::vector<std::string> names;
  size_t first = 0;
  if (c.header) {
    names = recs[0].fields;
    for (auto& n : names) check_utf8(n, path, recs[0].line);
    first = 1;
  } else {
    for (size_t i = 0; i < recs[0].fields.size(); ++i) names.push_back(std::to_string(i));
  }
  LMF_CHECK(recs.size() > first, IoError, "{}: has a header but no data rows", path);
  TextData data;
  const ResolvedColumns r = resolve_columns(c, names, path, data);
  for (size_t k = first; k < recs.size(); ++k) {
    const Record& rec = recs[k];
    LMF_CHECK(rec.fields.size() == names.size(), IoError,
              "{}:{}: the row has {} fields but the {} has {}{}", path, rec.line, rec.fields.size(),
              c.header ? "header" : "first row", names.size(),
              sep == '\t' ? " (TSV fields may not contain tabs)" : "");
    for (const auto& f : rec.fields) check_utf8(f, path, rec.line);
    TextRow row;
    row.where = fmt::format("{}:{}", path, rec.line);
    row.text = rec.fields[r.text];
    if (r.pair >= 0) row.text_pair = rec.fields[r.pair];
    if (r.label >= 0) {
      LMF_CHECK(!rec.fields[r.label].empty(), IoError, "{}: the label is empty", row.where);
      row.labels.push_back(rec.fields[r.label]);
    }
    data.rows.push_back(std::move(row));
  }
  return data;
}

std::string json_label_text(const ojson& v, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer() || v.is_number_unsigned() || v.is_number_float() || v.is_boolean())
    return v.dump();
  fail<IoError>("{}: a label must be a string, a number or a list of them, got {}", where,
                v.type_name());
}

// Splits JSONL text into (line number, line) pairs, skipping blank lines.
std::vector<std::pair<int64_t, std::string>> jsonl_lines(const std::string& s) {
  std::vector<std::pair<int64_t, std::string>> out;
  size_t i = 0;
  int64_t line = 1;
  while (i <= s.size()) {
    size_t j = s.find('\n', i);
    if (j == std::string::npos) j = s.size();
    std::string l = s.substr(i, j - i);
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (l.find_first_not_of(" \t") != std::string::npos) out.emplace_back(line, std::move(l));
    ++line;
    i = j + 1;
  }
  return out;
}

ojson parse_json_line(const std::string& l, const std::string& path, int64_t line) {
  check_utf8(l, path, line);
  ojson j;
  try {
    j = ojson::parse(l);
  } catch (const nlohmann::json::exception& e) {
    fail<IoError>("{}:{}: not valid JSON ({})", path, line, e.what());
  }
  LMF_CHECK(j.is_object(), IoError, "{}:{}: each line must be a JSON object, got {}", path, line,
            j.type_name());
  return j;
}

TextData read_jsonl_table(const std::string& path, const std::string& s, const TextColumns& c) {
  const auto lines = jsonl_lines(s);
  LMF_CHECK(!lines.empty(), IoError, "data file '{}' is empty", path);
  TextData data;
  ResolvedColumns r;
  std::vector<std::string> names;
  for (const auto& [line, text] : lines) {
    const ojson j = parse_json_line(text, path, line);
    if (names.empty()) {
      for (auto it = j.begin(); it != j.end(); ++it) names.push_back(it.key());
      LMF_CHECK(!names.empty(), IoError, "{}:{}: the first object has no keys", path, line);
      r = resolve_columns(c, names, path, data);
    }
    const std::string where = fmt::format("{}:{}", path, line);
    const auto field = [&](int64_t col, const char* role) -> const ojson& {
      auto it = j.find(names[col]);
      LMF_CHECK(it != j.end(), IoError, "{}: no '{}' key (the {} column)", where, names[col], role);
      return *it;
    };
    TextRow row;
    row.where = where;
    const auto text_of = [&](int64_t col, const char* role) {
      const ojson& v = field(col, role);
      LMF_CHECK(v.is_string(), IoError, "{}: the {} column '{}' must be a string, got {}", where,
                role, names[col], v.type_name());
      return v.get<std::string>();
    };
    row.text = text_of(r.text, "text");
    if (r.pair >= 0) row.text_pair = text_of(r.pair, "text_pair");
    if (r.label >= 0) {
      const ojson& lab = field(r.label, "label");
      if (lab.is_array()) {
        row.label_is_list = true;
        for (const auto& v : lab) row.labels.push_back(json_label_text(v, where));
      } else {
        row.labels.push_back(json_label_text(lab, where));
      }
    }
    data.rows.push_back(std::move(row));
  }
  return data;
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && errno == 0;
}

bool parse_int(const std::string& s, int64_t& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Python sorted() of the label values as datasets types them: integers numerically, floats
// numerically, strings by code point (= UTF-8 byte order).
std::vector<std::string> sorted_labels(const std::set<std::string>& unique) {
  std::vector<std::string> names(unique.begin(), unique.end());
  bool all_num = true;
  for (const auto& n : names) {
    double d;
    all_num = all_num && parse_double(n, d);
  }
  if (all_num) {
    std::stable_sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
      double x = 0, y = 0;
      parse_double(a, x);
      parse_double(b, y);
      return x < y;
    });
  }
  return names;
}

}  // namespace

namespace {

DataFormat resolve_format(const std::string& path, DataFormat f) {
  if (f != DataFormat::automatic) return f;
  const std::string e = extension(path);
  if (e == "csv") return DataFormat::csv;
  if (e == "tsv" || e == "tab") return DataFormat::tsv;
  if (e == "jsonl" || e == "json" || e == "ndjson") return DataFormat::jsonl;
  fail<ValueError>(
      "{}: cannot tell the format from the extension '.{}'; use .csv, .tsv or .jsonl or give the "
      "format",
      path, e);
}

// Any table as column names + rows of strings (JSON values other than strings as their JSON
// text), each row with its line.
std::pair<std::vector<std::string>, std::vector<Record>> read_string_table(const std::string& path,
                                                                           DataFormat f,
                                                                           bool header) {
  f = resolve_format(path, f);
  const std::string s = read_whole_file(path);
  std::vector<std::string> names;
  std::vector<Record> rows;
  if (f == DataFormat::jsonl) {
    for (const auto& [line, text] : jsonl_lines(s)) {
      const ojson j = parse_json_line(text, path, line);
      if (names.empty())
        for (auto it = j.begin(); it != j.end(); ++it) names.push_back(it.key());
      Record r;
      r.line = line;
      for (const auto& n : names) {
        auto it = j.find(n);
        LMF_CHECK(it != j.end(), IoError, "{}:{}: no '{}' key", path, line, n);
        r.fields.push_back(it->is_string() ? it->get<std::string>() : it->dump());
      }
      rows.push_back(std::move(r));
    }
  } else {
    rows = parse_csv(s, f == DataFormat::csv ? ',' : '\t', f == DataFormat::csv, path);
    LMF_CHECK(!rows.empty(), IoError, "data file '{}' is empty", path);
    if (header) {
      names = rows.front().fields;
      rows.erase(rows.begin());
    } else {
      for (size_t i = 0; i < rows.front().fields.size(); ++i) names.push_back(std::to_string(i));
    }
    for (const auto& r : rows) {
      LMF_CHECK(r.fields.size() == names.size(), IoError,
                "{}:{}: the row has {} fields but the header has {}", path, r.line, r.fields.size(),
                names.size());
      for (const auto& fld : r.fields) check_utf8(fld, path, r.line);
    }
  }
  LMF_CHECK(!rows.empty(), IoError, "{}: no data rows", path);
  return {std::move(names), std::move(rows)};
}

}  // namespace

std::vector<ChoiceRow> read_multiple_choice(const std::string& path, const ChoiceColumns& c) {
  const auto [names, rows] = read_string_table(path, c.format, c.header);
  const int64_t ctx = resolve_column(c.context, names, path, "context");
  const int64_t q = c.question.empty() ? -1 : resolve_column(c.question, names, path, "question");
  const int64_t lab = c.label.empty() ? -1 : resolve_column(c.label, names, path, "label");
  LMF_CHECK(c.endings.size() >= 2, ValueError, "multiple choice needs at least 2 ending columns");
  std::vector<int64_t> ends;
  for (const auto& e : c.endings) ends.push_back(resolve_column(e, names, path, "ending"));
  std::vector<ChoiceRow> out;
  for (const auto& r : rows) {
    ChoiceRow row;
    row.where = fmt::format("{}:{}", path, r.line);
    row.context = r.fields[ctx];
    if (q >= 0) row.question = r.fields[q];
    for (int64_t e : ends) row.endings.push_back(r.fields[e]);
    if (lab >= 0) {
      int64_t v = -1;
      LMF_CHECK(parse_int(r.fields[lab], v) && v >= 0 && v < static_cast<int64_t>(ends.size()),
                ValueError, "{}: the label '{}' is not a choice index 0..{}", row.where,
                r.fields[lab], ends.size() - 1);
      row.label = v;
    }
    out.push_back(std::move(row));
  }
  return out;
}

TextData read_text_data(const std::string& path, const TextColumns& columns) {
  DataFormat f = columns.format;
  if (f == DataFormat::automatic) {
    const std::string e = extension(path);
    if (e == "csv")
      f = DataFormat::csv;
    else if (e == "tsv" || e == "tab")
      f = DataFormat::tsv;
    else if (e == "jsonl" || e == "json" || e == "ndjson")
      f = DataFormat::jsonl;
    else
      fail<ValueError>(
          "{}: cannot tell the format from the extension '.{}'; use .csv, .tsv or "
          ".jsonl or give the format",
          path, e);
  }
  const std::string s = read_whole_file(path);
  switch (f) {
    case DataFormat::csv:
      return read_table(path, s, ',', true, columns);
    case DataFormat::tsv:
      return read_table(path, s, '\t', false, columns);
    default:
      return read_jsonl_table(path, s, columns);
  }
}

int64_t LabelSpace::id(const std::string& name, const std::string& where) const {
  auto it = std::find(names.begin(), names.end(), name);
  LMF_CHECK(it != names.end(), ValueError, "{}: unknown label '{}'; the labels are: {}", where,
            name, fmt::join(names, ", "));
  return it - names.begin();
}

LabelSpace make_label_space(const TextData& data, LabelKind kind) {
  LMF_CHECK(data.has_label, ValueError,
            "the data has no label column; name it (e.g. --label-column) to train a classifier");
  LabelSpace ls;
  if (kind == LabelKind::automatic) {
    bool any_list = false, all_num = true, any_fraction = false;
    for (const auto& r : data.rows) {
      any_list = any_list || r.label_is_list;
      for (const auto& l : r.labels) {
        double d;
        int64_t i;
        all_num = all_num && parse_double(l, d);
        any_fraction = any_fraction || !parse_int(l, i);
      }
    }
    kind = any_list                    ? LabelKind::multi_label
           : (all_num && any_fraction) ? LabelKind::regression
                                       : LabelKind::single_label;
  }
  ls.kind = kind;
  if (kind == LabelKind::regression) {
    for (const auto& r : data.rows) {
      LMF_CHECK(r.labels.size() == 1, ValueError, "{}: a regression label must be one number",
                r.where);
      double d;
      LMF_CHECK(parse_double(r.labels[0], d), ValueError,
                "{}: the regression label '{}' is not a number", r.where, r.labels[0]);
    }
    return ls;
  }
  std::set<std::string> unique;
  for (const auto& r : data.rows) {
    LMF_CHECK(kind == LabelKind::multi_label || r.labels.size() == 1, ValueError,
              "{}: a list of labels in single-label data (use multi-label)", r.where);
    unique.insert(r.labels.begin(), r.labels.end());
  }
  ls.names = sorted_labels(unique);
  LMF_CHECK(!ls.names.empty(), ValueError, "the data has no labels");
  return ls;
}

// ---- token classification -----------------------------------------------------------------------

TokenData read_token_data(const std::string& path) {
  const std::string s = read_whole_file(path);
  const std::string e = extension(path);
  TokenData d;
  if (e == "json" || e == "jsonl") {
    for (const auto& [line, text] : jsonl_lines(s)) {
      const ojson j = parse_json_line(text, path, line);
      const std::string where = fmt::format("{}:{}", path, line);
      auto toks = j.find("tokens");
      LMF_CHECK(toks != j.end() && toks->is_array(), IoError,
                "{}: needs a \"tokens\" list of words", where);
      auto tags = j.find("ner_tags");
      if (tags == j.end()) tags = j.find("tags");
      LMF_CHECK(tags != j.end() && tags->is_array(), IoError,
                "{}: needs a \"ner_tags\" (or \"tags\") list", where);
      LMF_CHECK(toks->size() == tags->size(), IoError, "{}: {} tokens but {} tags", where,
                toks->size(), tags->size());
      std::vector<std::string> w, t;
      for (const auto& v : *toks) {
        LMF_CHECK(v.is_string(), IoError, "{}: every token must be a string", where);
        w.push_back(v.get<std::string>());
      }
      for (const auto& v : *tags) t.push_back(json_label_text(v, where));
      if (w.empty()) continue;
      d.words.push_back(std::move(w));
      d.tags.push_back(std::move(t));
      d.where.push_back(where);
    }
  } else {
    std::vector<std::string> w, t;
    int64_t start = 0;
    const auto flush = [&]() {
      if (!w.empty()) {
        d.words.push_back(std::move(w));
        d.tags.push_back(std::move(t));
        d.where.push_back(fmt::format("{}:{}", path, start));
      }
      w.clear();
      t.clear();
    };
    std::istringstream in(s);
    std::string l;
    int64_t line = 0;
    while (std::getline(in, l)) {
      ++line;
      if (!l.empty() && l.back() == '\r') l.pop_back();
      check_utf8(l, path, line);
      std::vector<std::string> cols;
      std::istringstream ls(l);
      for (std::string c; ls >> c;) cols.push_back(c);
      if (cols.empty()) {
        flush();
        continue;
      }
      if (cols[0] == "-DOCSTART-") {
        flush();
        continue;
      }
      LMF_CHECK(cols.size() >= 2, IoError,
                "{}:{}: expected a token and a tag separated by whitespace, got '{}'", path, line,
                l);
      if (w.empty()) start = line;
      w.push_back(cols.front());
      t.push_back(cols.back());
    }
    flush();
  }
  LMF_CHECK(!d.words.empty(), IoError, "{}: no sentences found", path);
  return d;
}

std::vector<std::string> token_label_list(const TokenData& data) {
  std::set<std::string> unique;
  for (const auto& s : data.tags) unique.insert(s.begin(), s.end());
  return sorted_labels(unique);
}

// ---- SQuAD --------------------------------------------------------------------------------------

namespace {

QaExample qa_from_json(const ojson& q, const std::string& context, const std::string& where) {
  QaExample ex;
  const auto str = [&](const char* key) {
    auto it = q.find(key);
    LMF_CHECK(it != q.end() && it->is_string(), IoError, "{}: needs a string \"{}\"", where, key);
    return it->get<std::string>();
  };
  ex.question = str("question");
  ex.context = context;
  auto id = q.find("id");
  ex.id = id == q.end() ? "" : id->is_string() ? id->get<std::string>() : id->dump();
  const size_t context_len = tok::utf8_char_count(context);
  const auto add = [&](const ojson& text, const ojson& start) {
    LMF_CHECK(text.is_string() && start.is_number_integer(), IoError,
              "{}: an answer needs a string text and an integer answer_start", where);
    const int64_t s = start.get<int64_t>();
    const std::string t = text.get<std::string>();
    LMF_CHECK(s >= 0 && s + static_cast<int64_t>(tok::utf8_char_count(t)) <=
                            static_cast<int64_t>(context_len),
              IoError, "{}: answer_start {} (+ {} chars) lies outside the context ({} chars)",
              where, s, tok::utf8_char_count(t), context_len);
    ex.answer_texts.push_back(t);
    ex.answer_starts.push_back(s);
  };
  auto answers = q.find("answers");
  const bool impossible = q.value("is_impossible", false);
  if (answers != q.end() && !impossible) {
    if (answers->is_array()) {
      for (const auto& a : *answers) {
        LMF_CHECK(a.is_object() && a.contains("text") && a.contains("answer_start"), IoError,
                  "{}: each answer needs \"text\" and \"answer_start\"", where);
        add(a["text"], a["answer_start"]);
      }
    } else if (answers->is_object()) {
      const ojson& t = (*answers)["text"];
      const ojson& s = (*answers)["answer_start"];
      LMF_CHECK(t.is_array() && s.is_array() && t.size() == s.size(), IoError,
                "{}: \"answers\" needs lists \"text\" and \"answer_start\" of one length", where);
      for (size_t i = 0; i < t.size(); ++i) add(t[i], s[i]);
    } else {
      fail<IoError>("{}: \"answers\" must be a list or an object", where);
    }
  }
  return ex;
}

}  // namespace

std::vector<QaExample> read_squad(const std::string& path) {
  std::vector<QaExample> out;
  const std::string e = extension(path);
  if (e == "jsonl") {
    const std::string s = read_whole_file(path);
    for (const auto& [line, text] : jsonl_lines(s)) {
      const ojson j = parse_json_line(text, path, line);
      const std::string where = fmt::format("{}:{}", path, line);
      auto ctx = j.find("context");
      LMF_CHECK(ctx != j.end() && ctx->is_string(), IoError, "{}: needs a string \"context\"",
                where);
      out.push_back(qa_from_json(j, ctx->get<std::string>(), where));
    }
  } else {
    const std::string text = read_whole_file(path);
    check_utf8(text, path, 1);
    ojson root;
    try {
      root = ojson::parse(text);
    } catch (const nlohmann::json::exception& ex) {
      fail<IoError>("{}: not valid JSON ({})", path, ex.what());
    }
    LMF_CHECK(root.is_object() && root.contains("data") && root["data"].is_array(), IoError,
              "{}: not SQuAD format (expected {{\"data\": [{{\"paragraphs\": [...]}}]}})", path);
    for (size_t a = 0; a < root["data"].size(); ++a) {
      const ojson& art = root["data"][a];
      LMF_CHECK(art.contains("paragraphs") && art["paragraphs"].is_array(), IoError,
                "{}: data[{}] has no \"paragraphs\" list", path, a);
      for (size_t p = 0; p < art["paragraphs"].size(); ++p) {
        const ojson& par = art["paragraphs"][p];
        const std::string where = fmt::format("{}: data[{}].paragraphs[{}]", path, a, p);
        LMF_CHECK(par.contains("context") && par["context"].is_string() && par.contains("qas") &&
                      par["qas"].is_array(),
                  IoError, "{} needs a string \"context\" and a \"qas\" list", where);
        const std::string ctx = par["context"].get<std::string>();
        for (size_t q = 0; q < par["qas"].size(); ++q)
          out.push_back(qa_from_json(par["qas"][q], ctx, fmt::format("{}.qas[{}]", where, q)));
      }
    }
  }
  LMF_CHECK(!out.empty(), IoError, "{}: no questions found", path);
  return out;
}

}  // namespace lmf::train
