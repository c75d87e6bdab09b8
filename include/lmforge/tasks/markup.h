// Escaping for the HTML/SVG writers (attention heatmaps here, training curves in train/report).
#pragma once
#include <string>
#include <string_view>

namespace lmf::tasks {

// `s` with & < > " ' replaced by their XML entities (safe in text and in quoted attributes).
std::string xml_escape(std::string_view s);

}  // namespace lmf::tasks
