// Merging the n choices' events into one response (see the header).
#include "serve/choice_fanout.h"

#include <algorithm>
#include <stdexcept>

namespace conclave::serve {
/// Choice `index`'s sink: tags its events and hands them to the merger it keeps alive.
class member_sink final : public client_sink {
 public:
  member_sink(std::shared_ptr<choice_fanout> fanout, size_t index)
      : fanout_(std::move(fanout)), index_(index) {}
  void push(client_event e) override { fanout_->push(index_, std::move(e)); }

 private:
  std::shared_ptr<choice_fanout> fanout_;
  size_t index_;
};

namespace {

/// SplitMix64's finaliser: seeds of different choices share no simple relation.
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

choice_fanout::choice_fanout(std::shared_ptr<client_sink> client, size_t n)
    : client_(std::move(client)), n_(n) {
  if (n < 1) throw std::invalid_argument("choice_fanout: n must be >= 1");
}

std::shared_ptr<client_sink> choice_fanout::member(size_t i) {
  if (i >= n_) throw std::out_of_range("choice_fanout: no such choice");
  return std::make_shared<member_sink>(shared_from_this(), i);
}

void choice_fanout::on_failure(std::function<void()> f) {
  std::lock_guard lock(mutex_);
  on_failure_ = std::move(f);
}

bool choice_fanout::ended() const {
  std::lock_guard lock(mutex_);
  return ended_;
}

void choice_fanout::push(size_t i, client_event e) {
  using kind = client_event::kind;
  std::function<void()> fail;
  {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    e.choice = i;
    switch (e.type) {
      case kind::started:
        if (std::exchange(started_, true)) return;
        client_->push(std::move(e));
        return;
      case kind::error:
        ended_ = true;
        client_->push(std::move(e));
        fail = std::move(on_failure_);
        break;
      case kind::finished: {
        total_.prompt_tokens = std::max(total_.prompt_tokens, e.tokens.prompt_tokens);
        total_.completion_tokens += e.tokens.completion_tokens;
        engine_seconds_ = std::max(engine_seconds_, e.engine_seconds);
        e.type = kind::choice_end;
        client_->push(std::move(e));
        if (++done_ < n_) return;
        ended_ = true;
        on_failure_ = nullptr;
        client_event last;
        last.type = kind::finished;
        last.tokens = total_;
        last.engine_seconds = engine_seconds_;
        client_->push(std::move(last));
        return;
      }
      default:
        client_->push(std::move(e));
        return;
    }
  }
  if (fail) fail();
}

void choice_handles::add(std::shared_ptr<request_handle> h) {
  if (!h) return;
  std::lock_guard lock(mutex_);
  members_.push_back(std::move(h));
}

void choice_handles::cancel() {
  std::vector<std::shared_ptr<request_handle>> members;
  {
    std::lock_guard lock(mutex_);
    members = members_;
  }
  for (auto& m : members) m->cancel();
}

std::shared_ptr<request_handle> start_choices(
    const generation_request& req, std::shared_ptr<client_sink> sink, uint64_t group,
    const std::function<std::shared_ptr<request_handle>(generation_request,
                                                        std::shared_ptr<client_sink>)>& start) {
  const auto n = static_cast<size_t>(req.n);
  auto fanout = std::make_shared<choice_fanout>(std::move(sink), n);
  auto handles = std::make_shared<choice_handles>();
  // Weak: the choices' sinks keep the fan-out alive, which must not keep them.
  fanout->on_failure([weak = std::weak_ptr(handles)] {
    if (auto h = weak.lock()) h->cancel();
  });
  for (size_t i = 0; i < n; ++i)
    handles->add(start(choice_request(req, i, group), fanout->member(i)));
  return handles;
}

generation_request choice_request(const generation_request& req, size_t i, uint64_t group) {
  generation_request m = req;
  m.n = 1;
  m.sampling.prefill_group = group;
  if (m.sampling.seed && i > 0)
    m.sampling.seed = mix(*m.sampling.seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull);
  return m;
}

}  // namespace conclave::serve
