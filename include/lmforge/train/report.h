// User-facing training output: a terminal progress bar with loss, lr, tokens/s and ETA, SVG line
// charts, and a self-contained HTML page of charts (inline SVG, no scripts).
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace lmf::train {

class ProgressBar {
 public:
  // Draws to `out` (stderr by default); redraws in place on a terminal, one line per update
  // otherwise (every `every` steps).
  ProgressBar(int64_t total_steps, std::string label, std::FILE* out = stderr, int64_t every = 10);
  void update(int64_t step, double loss, double lr, double tokens_per_s);
  void finish();

 private:
  int64_t total_;
  std::string label_;
  std::FILE* out_;
  int64_t every_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

struct Series {
  std::string name;
  std::vector<double> x, y;
};
// An SVG line chart (log-scale y when `log_y`) of the series; text is XML-escaped.
std::string svg_plot(const std::string& title, const std::string& x_label,
                     const std::string& y_label, const std::vector<Series>& series, bool log_y);
// Writes svg_plot(...) to `path`; IoError when unwritable.
void write_svg_plot(const std::string& path, const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<Series>& series, bool log_y);

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_y = false;
};
// Writes a self-contained HTML page: `title`, a table of the `summary` (key, value) rows, then each
// chart as inline SVG. No scripts, no external resources. IoError when unwritable.
void write_html_report(const std::string& path, const std::string& title,
                       const std::vector<Chart>& charts,
                       const std::vector<std::pair<std::string, std::string>>& summary = {});

}  // namespace lmf::train
