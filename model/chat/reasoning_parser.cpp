// Reasoning / answer split of a thinking model's output (see reasoning_parser.h).
//
// Whitespace rules (as SGLang trims): the reasoning loses its leading whitespace and the
// whitespace before `</think>`; the answer loses the whitespace right after `</think>`.
#include "model/chat/reasoning_parser.h"

namespace conclave::chat {
namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t partial_tag_suffix(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n) {
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

}  // namespace

bool prompt_opens_thinking(std::string_view prompt) {
  const size_t open = prompt.rfind(kOpen);
  if (open == std::string_view::npos) return false;
  if (prompt.find(kClose, open) != std::string_view::npos) return false;
  // Only the generation prompt's own block counts: nothing but whitespace after it.
  for (char c : prompt.substr(open + kOpen.size()))
    if (!is_space(c)) return false;
  return true;
}

reasoning_parser::reasoning_parser(bool in_thinking)
    : state_(in_thinking ? state::reasoning : state::start) {}

void reasoning_parser::emit(std::vector<piece>& out, bool reasoning, std::string text) {
  if (text.empty()) return;
  if (!out.empty() && out.back().reasoning == reasoning) {
    out.back().text += text;
  } else {
    out.push_back(piece{reasoning, std::move(text)});
  }
}

std::vector<reasoning_parser::piece> reasoning_parser::feed(std::string_view text) {
  std::vector<piece> out;
  held_ += text;
  while (!held_.empty()) {
    switch (state_) {
      case state::start: {
        size_t i = 0;
        while (i < held_.size() && is_space(held_[i])) ++i;
        const std::string_view rest = std::string_view(held_).substr(i);
        if (rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest) return out;
        if (rest.substr(0, kOpen.size()) == kOpen) {
          held_.erase(0, i + kOpen.size());
          state_ = state::reasoning;
        } else {
          state_ = state::content;
        }
        break;
      }
      case state::reasoning: {
        if (!reasoning_started_) {  // leading whitespace is not reasoning
          size_t i = 0;
          while (i < held_.size() && is_space(held_[i])) ++i;
          held_.erase(0, i);
          if (held_.empty()) return out;
        }
        const size_t close = held_.find(kClose);
        if (close != std::string::npos) {
          std::string body = held_.substr(0, close);
          while (!body.empty() && is_space(body.back())) body.pop_back();
          emit(out, true, std::move(body));
          held_.erase(0, close + kClose.size());
          state_ = state::after_reasoning;
          break;
        }
        // Send all but a possible partial `</think>` and the whitespace before it.
        size_t keep = partial_tag_suffix(held_, kClose);
        size_t cut = held_.size() - keep;
        while (cut > 0 && is_space(held_[cut - 1])) --cut;
        if (cut > 0) {
          emit(out, true, held_.substr(0, cut));
          held_.erase(0, cut);
          reasoning_started_ = true;
        }
        return out;
      }
      case state::after_reasoning: {
        size_t i = 0;
        while (i < held_.size() && is_space(held_[i])) ++i;
        held_.erase(0, i);
        if (held_.empty()) return out;
        state_ = state::content;
        break;
      }
      case state::content:
        emit(out, false, std::move(held_));
        held_.clear();
        return out;
    }
  }
  return out;
}

std::vector<reasoning_parser::piece> reasoning_parser::finish() {
  std::vector<piece> out;
  switch (state_) {
    case state::start:  // only whitespace or a partial `<think>`: plain content
      emit(out, false, std::move(held_));
      break;
    case state::reasoning:  // cut off while thinking (max_tokens): all of it is reasoning
      while (!held_.empty() && is_space(held_.back())) held_.pop_back();
      emit(out, true, std::move(held_));
      break;
    case state::after_reasoning:
    case state::content:
      emit(out, false, std::move(held_));
      break;
  }
  held_.clear();
  return out;
}

}  // namespace conclave::chat
