// xg::inspect::write_report: a GradientMonitor's records as one self-contained
// HTML page, to open in any browser or attach to a bug report. Everything is
// inline (SVG charts, one <style>): no script, no font or file from elsewhere.
//
// Sections, each under a stable id that tests and tools can find:
//   loss-curve             every step's loss (log scale when it spans 1000x)
//   grad-heatmap           log10 gradient norm: a row per parameter, a column
//                          per sampled step (up to 300, evenly picked), a legend
//   update-ratios          log10 update / parameter ratio per parameter over the
//                          sampled steps, with the 1e-3 rule of thumb dashed
//   activation-histograms  each module's output histogram at the last sampled
//                          step that recorded activations, with its mean, std,
//                          zero fraction and range
//   summary                the ModelSummary's table when given, else the
//                          parameters' names, shapes and sizes
//   flagged                each (name, kind) flagged, with its count, first and
//                          last step and last value
// Names are HTML-escaped everywhere they appear.
#pragma once

#include <string>

#include "xgrad/inspect/monitor.hpp"
#include "xgrad/inspect/summary.hpp"

namespace xg::inspect {

std::string report_html(const GradientMonitor& monitor);
std::string report_html(const GradientMonitor& monitor, const ModelSummary& summary);

// Throws xg::Error naming the path when it cannot be written.
void write_report(const GradientMonitor& monitor, const std::string& path);
void write_report(const GradientMonitor& monitor, const ModelSummary& summary,
                  const std::string& path);

}  // namespace xg::inspect
