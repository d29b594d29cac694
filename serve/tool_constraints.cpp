// Per-tokenizer vocabulary tries and the process-wide cache of compiled tool grammars.
#include "serve/tool_constraints.h"

#include <map>
#include <mutex>

#include "engine/constrained/tool_grammar.h"

namespace conclave::serve {
namespace {

using tokenizer_ptr = std::shared_ptr<const tokenizer::tokenizer>;

struct registry {
  std::mutex mu;
  std::map<std::weak_ptr<const tokenizer::tokenizer>,
           std::shared_ptr<const engine::constrained::vocabulary>, std::owner_less<>>
      vocabs;
  engine::constrained::constraint_cache cache{64};
};

registry& the_registry() {
  static registry r;
  return r;
}

}  // namespace

std::shared_ptr<const engine::constrained::vocabulary> constraint_vocabulary(
    const tokenizer_ptr& tok) {
  auto& r = the_registry();
  {
    std::lock_guard lock(r.mu);
    std::erase_if(r.vocabs, [](const auto& e) { return e.first.expired(); });
    if (auto it = r.vocabs.find(tok); it != r.vocabs.end()) return it->second;
  }
  std::vector<std::string> bytes(tok->vocab_size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    if (tok->contains(id) && !tok->is_special(id)) bytes[i] = std::string(tok->token_bytes(id));
  }
  auto v = std::make_shared<const engine::constrained::vocabulary>(bytes);
  std::lock_guard lock(r.mu);
  return r.vocabs.emplace(tok, std::move(v)).first->second;
}

std::shared_ptr<const engine::constrained::token_constraint> tool_constraint_for(
    const generation_request& req, const tokenizer_ptr& tok,
    const std::vector<int32_t>& end_tokens) {
  if (req.type != generation_request::kind::chat || req.tools.empty() || end_tokens.empty() ||
      (req.tool_choice != tool_choice_mode::required &&
       req.tool_choice != tool_choice_mode::function))
    return nullptr;
  const std::string only =
      req.tool_choice == tool_choice_mode::function ? req.tool_choice_name : std::string();
  return the_registry().cache.get(constraint_vocabulary(tok), req.tools, only, end_tokens,
                                  req.output.tools);
}

std::shared_ptr<const engine::constrained::token_constraint> response_constraint_for(
    const generation_request& req, const tokenizer_ptr& tok,
    const std::vector<int32_t>& end_tokens) {
  if (req.response_format == generation_request::response_kind::text || end_tokens.empty())
    return nullptr;
  const std::string schema = req.response_format == generation_request::response_kind::json_schema
                                 ? req.response_schema
                                 : std::string();
  return the_registry().cache.get_json(constraint_vocabulary(tok), schema, end_tokens);
}

}  // namespace conclave::serve
