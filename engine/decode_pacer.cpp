// See decode_pacer.h.
#include "engine/decode_pacer.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace conclave::engine {

namespace {

/// Weight of the newest decode-only step in the quiet average: the decoders' step grows
/// slowly with their contexts and changes when streams come and go.
constexpr double kQuietWeight = 0.25;

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

decode_pacer::decode_pacer(double slowdown, clock_fn clock)
    : slowdown_(slowdown), clock_(clock ? std::move(clock) : clock_fn(steady_seconds)) {
  if (!(slowdown == 0 || slowdown > 1))
    throw std::invalid_argument("decode_slowdown must be 0 (off) or greater than 1");
}

void decode_pacer::close_step() {
  if (!enabled() || !open_) return;
  open_ = false;
  const double dt = std::max(0.0, clock_() - started_);
  switch (kind_) {
    case step_kind::other:
      return;
    case step_kind::quiet:
      quiet_ = quiet_ == 0 ? dt : quiet_ + kQuietWeight * (dt - quiet_);
      if (uncharged_steps_ > 0) {
        debt_ += uncharged_ - slowdown_ * quiet_ * static_cast<double>(uncharged_steps_);
        uncharged_steps_ = 0;
        uncharged_ = 0;
      }
      break;
    case step_kind::busy:
      if (quiet_ == 0) {
        ++uncharged_steps_;
        uncharged_ += dt;
        return;
      }
      break;
  }
  debt_ = std::max(0.0, debt_ + dt - slowdown_ * quiet_);
}

bool decode_pacer::allows_chunks() const {
  if (!enabled()) return true;
  // Without a timed quiet step the first busy step goes, then one quiet step is timed.
  if (quiet_ == 0) return uncharged_steps_ == 0;
  return debt_ <= 0;
}

void decode_pacer::open_step(step_kind kind, bool held) {
  if (!enabled()) return;
  kind_ = kind;
  open_ = true;
  started_ = clock_();
  if (held) ++held_;
}

}  // namespace conclave::engine
