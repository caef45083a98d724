#include "progress.hpp"

#include <cstdio>

#include <fmt/format.h>
#include <unistd.h>

namespace xg::examples {

bool stdout_is_tty() { return isatty(fileno(stdout)) != 0; }

ProgressBar::ProgressBar(std::string label, std::size_t total, bool quiet)
    : label_(std::move(label)),
      total_(total),
      quiet_(quiet),
      tty_(stdout_is_tty()),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double ProgressBar::seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(std::size_t done, double loss) {
    if (quiet_ || !tty_) return;
    auto now = std::chrono::steady_clock::now();
    if (done < total_ && now - last_draw_ < std::chrono::milliseconds(50)) return;
    last_draw_ = now;
    constexpr int width = 28;
    int filled = total_ == 0 ? width : static_cast<int>(width * done / total_);
    double rate = static_cast<double>(done) / std::max(seconds(), 1e-9);
    fmt::print("\r{} [{}{}] {}/{}  {:.0f} steps/s  loss {:.4f}\x1b[K", label_,
               std::string(static_cast<std::size_t>(filled), '#'),
               std::string(static_cast<std::size_t>(width - filled), '.'), done, total_, rate,
               loss);
    std::fflush(stdout);
}

void ProgressBar::finish() {
    if (!quiet_ && tty_) fmt::print("\r\x1b[K");
}

}  // namespace xg::examples
