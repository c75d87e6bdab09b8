// User-facing training output: a terminal progress bar with loss, lr, tokens/s and ETA, and a
// self-contained SVG loss curve.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
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
// Writes an SVG line chart (log-scale y when `log_y`) of the series; IoError when unwritable.
void write_svg_plot(const std::string& path, const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<Series>& series, bool log_y);

}  // namespace lmf::train
