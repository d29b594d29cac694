// Tokens -> client events (see the header).
#include "serve/text_pipeline.h"

#include <xxhash.h>

#include <spdlog/spdlog.h>

#include "serve/request_setup.h"

namespace conclave::serve {
namespace {

logprob_entry logprob_entry_of(const tokenizer::tokenizer& tok, int32_t id,
                               const engine::token_logprobs& lp) {
  logprob_entry e{token_text(tok, id), lp.logprob, {}};
  e.top.reserve(lp.top.size());
  for (const auto& [alt, v] : lp.top) e.top.push_back({token_text(tok, alt), v});
  return e;
}

}  // namespace

std::string token_text(const tokenizer::tokenizer& tok, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size()) return {};
  try {
    return std::string(tok.token_bytes(id));
  } catch (const std::invalid_argument&) {
    return {};
  }
}

text_pipeline::text_pipeline(std::shared_ptr<const tokenizer::tokenizer> tok,
                             std::string request_id)
    : tok_(std::move(tok)), request_id_(std::move(request_id)) {}

void text_pipeline::begin(const std::vector<model::tool_spec>& tools, bool parse_tools,
                          const std::vector<std::string>& stop, server_rounds* rounds,
                          output_format format) {
  if (format.reasoning == reasoning_mode::off) {
    reasoning_.reset();
  } else {
    reasoning_.emplace(format.reasoning == reasoning_mode::open);
  }
  if (parse_tools) {
    toolcall::parser_options opts;
    if (ids_rng_) opts.random = [this] { return (*ids_rng_)(); };
    parser_.emplace(format.tools, tools, std::move(opts));
  } else {
    parser_.reset();
  }
  one_call_ = format.one_call;
  call_done_ = false;
  detok_.emplace(*tok_);
  stops_.emplace(stop);
  rounds_ = rounds;
}

void text_pipeline::begin(const generation_request& req, server_rounds* rounds) {
  // A seeded request's tool-call ids follow from its seed and id: a resumed stream (run
  // again under the same id and seed) regenerates the same ids; other requests differ.
  if (req.sampling.seed && !ids_rng_) {
    ids_rng_.emplace(XXH64(request_id_.data(), request_id_.size(), *req.sampling.seed));
  }
  begin(req.tools, parses_tool_calls(req), req.stop, rounds, req.output);
}

void text_pipeline::echo(const std::string& text, client_sink& out) {
  emit_text(text, out);
}

bool text_pipeline::push(int32_t token, bool ends, const engine::token_logprobs* lp,
                         client_sink& out) {
  if (lp) pending_logprobs_.push_back(logprob_entry_of(*tok_, token, *lp));
  if (ends || tok_->is_special(token)) return false;
  const auto r = stops_->feed(detok_->push(token));
  emit_text(r.text, out);
  return r.stopped || call_done_;
}

std::string text_pipeline::finish(std::string reason, client_sink& out) {
  emit_text(stops_->feed(detok_->flush()).text, out);
  emit_text(stops_->finish(), out);
  if (reasoning_) emit_pieces(reasoning_->finish(), out);
  if (parser_) {
    emit_parser_events(parser_->finish(), out);
    if (parser_->any_calls() && (!rounds_ || rounds_->client_calls())) reason = "tool_calls";
  }
  return reason;
}

void text_pipeline::emit_text(const std::string& text, client_sink& out) {
  if (text.empty()) return;
  if (reasoning_) return emit_pieces(reasoning_->feed(text), out);
  emit_content(text, out);
}

void text_pipeline::emit_pieces(std::vector<chat::reasoning_parser::piece> pieces,
                                client_sink& out) {
  for (auto& p : pieces) {
    if (!p.reasoning) {
      emit_content(p.text, out);
      continue;
    }
    client_event c;
    c.type = client_event::kind::reasoning;
    c.text = std::move(p.text);
    c.logprobs = std::exchange(pending_logprobs_, {});
    if (rounds_ && !rounds_->route(c)) continue;
    out.push(std::move(c));
  }
}

void text_pipeline::emit_content(const std::string& text, client_sink& out) {
  if (text.empty()) return;
  if (parser_) return emit_parser_events(parser_->feed(text), out);
  client_event c;
  c.type = client_event::kind::content;
  c.text = text;
  c.logprobs = std::exchange(pending_logprobs_, {});
  out.push(std::move(c));
}

void text_pipeline::emit_parser_events(const std::vector<toolcall::event>& events,
                                       client_sink& out) {
  for (const auto& ev : events) {
    if (call_done_) return;  // parallel_tool_calls: false, and the one call is complete
    client_event c;
    switch (ev.type) {
      case toolcall::event::kind::content:
        c.type = client_event::kind::content;
        c.text = ev.text;
        c.logprobs = std::exchange(pending_logprobs_, {});
        break;
      case toolcall::event::kind::tool_call_start:
        c.type = client_event::kind::tool_call_start;
        c.index = ev.index;
        c.call_id = ev.id;
        c.name = ev.name;
        break;
      case toolcall::event::kind::tool_call_arguments:
        c.type = client_event::kind::tool_call_arguments;
        c.index = ev.index;
        c.text = ev.text;
        break;
      case toolcall::event::kind::tool_call_end:
        c.type = client_event::kind::tool_call_end;
        c.index = ev.index;
        call_done_ = one_call_;
        break;
      case toolcall::event::kind::rejected_tool:
        spdlog::info("request {}: model called unknown tool \"{}\"", request_id_, ev.name);
        continue;
    }
    if (rounds_ && !rounds_->route(c)) continue;
    out.push(std::move(c));
  }
}

}  // namespace conclave::serve
