#include "lmforge/train/report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "lmforge/core/error.h"
#include "lmforge/tasks/markup.h"

namespace lmf::train {

namespace {
std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const auto t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
  return fmt::format("{:02}:{:02}", t / 60, t % 60);
}
}  // namespace

ProgressBar::ProgressBar(int64_t total_steps, std::string label, std::FILE* out, int64_t every)
    : total_(std::max<int64_t>(total_steps, 1)),
      label_(std::move(label)),
      out_(out),
      every_(std::max<int64_t>(every, 1)),
      tty_(isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int64_t step, double loss, double lr, double tokens_per_s) {
  if (!tty_ && step % every_ != 0 && step != total_) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = static_cast<double>(step) / static_cast<double>(total_);
  const double eta = step > 0 ? elapsed * (1.0 - frac) / frac : NAN;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  fmt::print(out_, "{}{} [{}] {:>5}/{} loss {:.4f} lr {:.2e} {:.0f} tok/s elapsed {} eta {}{}",
             tty_ ? "\r" : "", label_, bar, step, total_, loss, lr, tokens_per_s,
             fmt_duration(elapsed), fmt_duration(eta), tty_ ? "" : "\n");
  std::fflush(out_);
}

void ProgressBar::finish() {
  if (tty_) fmt::print(out_, "\n");
}

namespace {
using tasks::xml_escape;

void write_text(const std::string& path, const std::string& text, const char* what) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f)
    fail<IoError>("cannot write {} to '{}': check the folder exists and is writable", what, path);
  f << text;
  f.flush();
  if (!f) fail<IoError>("writing {} to '{}' failed (disk full?)", what, path);
}
}  // namespace

std::string svg_plot(const std::string& title, const std::string& x_label,
                     const std::string& y_label, const std::vector<Series>& series, bool log_y) {
  constexpr double kW = 720, kH = 420, kL = 70, kR = 20, kT = 40, kB = 50;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  auto ty = [&](double y) { return log_y ? std::log10(std::max(y, 1e-12)) : y; };
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1;
  if (!std::isfinite(y0)) y0 = 0, y1 = 1;
  if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > y0)) {
    const double pad = std::max(std::abs(y0) * 0.05, 1e-9);
    y0 -= pad, y1 += pad;
  }
  auto px = [&](double x) { return kL + (x - x0) / (x1 - x0) * (kW - kL - kR); };
  auto py = [&](double y) { return kH - kB - (ty(y) - y0) / (y1 - y0) * (kH - kT - kB); };
  std::string out = fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-family='sans-serif' "
      "font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n"
      "<text x='{}' y='22' font-size='15' text-anchor='middle'>{}</text>\n"
      "<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='black'/>\n"
      "<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='black'/>\n"
      "<text x='{}' y='{}' text-anchor='middle'>{}</text>\n"
      "<text x='16' y='{}' text-anchor='middle' transform='rotate(-90 16 {})'>{}</text>\n",
      kW, kH, kW / 2, xml_escape(title), kL, kH - kB, kW - kR, kH - kB, kL, kT, kL, kH - kB,
      (kL + kW - kR) / 2, kH - 12, xml_escape(x_label), (kT + kH - kB) / 2, (kT + kH - kB) / 2,
      xml_escape(y_label + (log_y ? " (log scale)" : "")));
  for (int i = 0; i <= 4; ++i) {  // axis ticks
    const double fy = y0 + (y1 - y0) * i / 4, fx = x0 + (x1 - x0) * i / 4;
    const double yv = log_y ? std::pow(10.0, fy) : fy;
    const double ypix = kH - kB - (fy - y0) / (y1 - y0) * (kH - kT - kB);
    out +=
        fmt::format("<text x='{}' y='{}' text-anchor='end'>{:.3g}</text>\n", kL - 6, ypix + 4, yv);
    out += fmt::format("<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='#ddd'/>\n", kL, ypix, kW - kR,
                       ypix);
    out += fmt::format("<text x='{}' y='{}' text-anchor='middle'>{:.4g}</text>\n", px(fx),
                       kH - kB + 16, fx);
  }
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    std::string pts;
    int64_t npts = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i]) && std::isfinite(s.x[i])) {
        pts += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
        ++npts;
      }
    out += fmt::format("<polyline fill='none' stroke='{}' stroke-width='1.5' points='{}'/>\n",
                       colors[k % 4], pts);
    if (npts == 1)  // a single point draws no line: mark it
      out += fmt::format("<circle cx='{:.1f}' cy='{:.1f}' r='3' fill='{}'/>\n", px(s.x.front()),
                         py(s.y.front()), colors[k % 4]);
    out += fmt::format("<text x='{}' y='{}' fill='{}'>{}</text>\n", kW - kR - 150,
                       kT + 16 * (k + 1), colors[k % 4], xml_escape(s.name));
  }
  out += "</svg>\n";
  return out;
}

void write_svg_plot(const std::string& path, const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<Series>& series, bool log_y) {
  write_text(path, svg_plot(title, x_label, y_label, series, log_y), "plot");
}

void write_html_report(const std::string& path, const std::string& title,
                       const std::vector<Chart>& charts,
                       const std::vector<std::pair<std::string, std::string>>& summary) {
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{0}</title>\n"
      "<style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 12px}}"
      "svg{{display:block;margin:1em 0;border:1px solid #eee}}</style></head>\n"
      "<body><h1>{0}</h1>\n",
      xml_escape(title));
  if (!summary.empty()) {
    html += "<table>\n";
    for (const auto& [k, v] : summary)
      html += fmt::format("<tr><td>{}</td><td>{}</td></tr>\n", xml_escape(k), xml_escape(v));
    html += "</table>\n";
  }
  for (const Chart& c : charts) html += svg_plot(c.title, c.x_label, c.y_label, c.series, c.log_y);
  html += "</body></html>\n";
  write_text(path, html, "HTML report");
}

}  // namespace lmf::train
