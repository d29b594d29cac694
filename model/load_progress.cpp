#include "model/load_progress.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace conclave::model {
namespace {

constexpr double gib = 1024.0 * 1024.0 * 1024.0;

}  // namespace

load_progress::load_progress(std::string what, size_t total_bytes)
    : load_progress(std::move(what), total_bytes, isatty(STDERR_FILENO) != 0) {}

load_progress::load_progress(std::string what, size_t total_bytes, bool interactive)
    : what_(std::move(what)),
      total_(total_bytes),
      interactive_(interactive),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

load_progress::~load_progress() {
  finish();
}

std::string load_progress::render() const {
  const size_t done = std::min(done_.load(), total_);
  const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  constexpr int width = 30;
  const int filled = static_cast<int>(frac * width);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / gib / secs : 0.0;
  return fmt::format("{} [{}{}] {:3.0f}%  {:.2f}/{:.2f} GiB  {:.2f} GiB/s", what_,
                     std::string(static_cast<size_t>(filled), '#'),
                     std::string(static_cast<size_t>(width - filled), ' '), frac * 100.0,
                     static_cast<double>(done) / gib, static_cast<double>(total_) / gib, rate);
}

void load_progress::advance(size_t bytes) {
  done_.fetch_add(bytes);
  draw(false);
}

void load_progress::draw(bool force) {
  if (total_ == 0) return;
  std::lock_guard lock(mutex_);
  if (finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (interactive_) {
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    std::fprintf(stderr, "\r%s", render().c_str());
    std::fflush(stderr);
    return;
  }
  const size_t done = std::min(done_.load(), total_);
  const int quarter = static_cast<int>(4 * done / total_);
  if (quarter > last_quarter_ && quarter < 4) {
    last_quarter_ = quarter;
    spdlog::info("{}", render());
  }
}

void load_progress::finish() {
  if (total_ == 0) return;
  std::lock_guard lock(mutex_);
  if (finished_) return;
  finished_ = true;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (interactive_) {
    std::fprintf(stderr, "\r%s\n", render().c_str());
    std::fflush(stderr);
  }
  spdlog::info("{}: {:.2f} GiB in {:.1f} s", what_, static_cast<double>(done_.load()) / gib, secs);
}

}  // namespace conclave::model
