// decode_pacer: keeps the mean step of decoding streams near a chosen multiple of their
// step without prompt chunks, while long prompts are read next to them (plain class).
//
// A step that carries a prompt chunk next to decodes is longer than a step that only
// decodes: at 128K context even a 16-token chunk moves about twice the bytes (the chunk's
// rows wake most experts, its attention reads the whole prompt's KV). No chunk size brings
// that under 1.5x, so the pacer trades the long prompt's reading time for the decoders'
// pace instead: after a step with a chunk, the scheduler runs decode-only steps until the
// decoders' mean step, over the steps since they were last on pace, is back at `slowdown`
// times the quiet step. A step is timed from its schedule() to its postprocess() (the
// forward pass and sampling: what a stream's client waits between tokens, less the
// server's own hops; time with nothing scheduled never counts), the quiet step is a moving
// average of recent decode-only steps.
#pragma once

#include <cstdint>
#include <functional>

namespace conclave::engine {

class decode_pacer {
 public:
  /// Seconds on a monotonic clock.
  using clock_fn = std::function<double()>;
  /// What a step ran: nothing that decodes (not paced), decodes only, decodes next to at
  /// least one prompt chunk.
  enum class step_kind { other, quiet, busy };

  /// `slowdown` 0: off (every step may carry chunks); else > 1. Throws
  /// std::invalid_argument otherwise. `clock` defaults to std::chrono::steady_clock.
  explicit decode_pacer(double slowdown = 0, clock_fn clock = {});

  bool enabled() const { return slowdown_ > 0; }
  /// The step opened by open_step() ended now; no-op when none is open.
  void close_step();
  /// Whether that step may put prompt chunks next to decodes (after close_step()).
  bool allows_chunks() const;
  /// The step just scheduled runs `kind` from now; `held`: prompt chunks waited in it
  /// because allows_chunks() said no.
  void open_step(step_kind kind, bool held);

  /// Steps in which prompt chunks waited so that the decoders could catch up.
  uint64_t held_steps() const { return held_; }
  /// The decode-only step's moving average in seconds (0 until one was timed).
  double quiet_seconds() const { return quiet_; }
  /// Seconds the decoders are behind `slowdown` times their quiet pace (never negative:
  /// quiet stretches bank no credit for later chunks).
  double debt_seconds() const { return debt_; }

 private:
  double slowdown_;
  clock_fn clock_;
  step_kind kind_ = step_kind::other;
  bool open_ = false;
  double started_ = 0;
  double quiet_ = 0;
  double debt_ = 0;
  /// Busy steps timed before any quiet step was (their count and seconds), charged once
  /// one is.
  uint64_t uncharged_steps_ = 0;
  double uncharged_ = 0;
  uint64_t held_ = 0;
};

}  // namespace conclave::engine
