// The grammar of Qwen3-Coder tool calls (docs: qwen3-coder-format.md), typed by each
// tool's JSON schema, as a byte DFA; and a cache of compiled tool constraints keyed by
// the tools' schemas, so a tool list is compiled once and shared by every request.
//
// One call, exactly as the chat template renders it and the tool parser reads it:
//   <tool_call>\n<function=NAME>\n
//   <parameter=P>\nVALUE\n</parameter>\n      (declared properties in schema order;
//   ...                                         required ones always, optional ones may
//   </function>\n</tool_call>                  be left out)
// `required`: one or more calls to any tool, separated by "\n"; a named function:
// exactly one call to it. VALUE by the property's schema: `enum`/`const` (one of the
// values), `integer` (-?(0|[1-9][0-9]{0,17})), `number` (JSON syntax, at most 16+15
// digits and a 2-digit exponent), `boolean`, `null`, `object`/`array` (compact JSON
// after the schema: every declared property in order, or any JSON up to depth 3 where
// the schema says nothing), `anyOf`/`oneOf`/type lists (any branch); strings and
// undeclared types are well-formed UTF-8 text (tab and newline the only controls) in
// which `<` is never followed by `/`, `<`, `p`, `f` or `t`, so a value cannot contain a
// closing tag or start one that the parser would take for structure.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/constrained/byte_automaton.h"
#include "engine/constrained/token_constraint.h"
#include "model/tool_spec.h"

namespace conclave::engine::constrained {

/// A tool's name and arguments schema (its description plays no part in the grammar).
using model::tool_spec;

/// The DFA of the calls above. `only` empty: one or more calls to any of `tools`; else
/// exactly one call to the tool named `only`. Throws std::invalid_argument for an empty
/// tool list, an unknown `only`, or a schema nested deeper than 8 levels.
/// `format` hermes_json: the same calls as JSON (Qwen3 / Hermes), one per
/// `<tool_call>\n{"name": "NAME", "arguments": {...}}\n</tool_call>`, members in schema
/// order, optional ones may be left out, values by the same rules as object members above.
/// `one_call` (parallel_tool_calls: false): exactly one call even when `only` is empty.
dfa tool_call_dfa(const std::vector<tool_spec>& tools, const std::string& only,
                  model::tool_call_format format = model::tool_call_format::qwen3_coder_xml,
                  bool one_call = false);

/// One JSON value for structured outputs: `schema` empty is any JSON object
/// (`response_format: json_object`); else a value valid under the schema (JSON text),
/// written compactly (`{"a": 1, "b": [2, 3]}`), every declared property in schema order.
/// Throws unsupported_schema (schema_check.h) for keywords it cannot enforce, and
/// std::invalid_argument for schema text that is not JSON.
dfa json_value_dfa(const std::string& schema);

/// Compiled constraints by (vocabulary, tools, choice), least recently used dropped past
/// `capacity`. Thread-safe. Tools are keyed by name and schema text, so a hit needs the
/// same text: set_parameters writes it canonically.
class constraint_cache {
 public:
  explicit constraint_cache(size_t capacity = 32) : capacity_(capacity) {}

  std::shared_ptr<const token_constraint> get(
      std::shared_ptr<const vocabulary> vocab, const std::vector<tool_spec>& tools,
      const std::string& only, const std::vector<int32_t>& end_tokens,
      model::tool_call_format format = model::tool_call_format::qwen3_coder_xml,
      bool one_call = false);
  /// The constraint of json_value_dfa(schema), cached the same way.
  std::shared_ptr<const token_constraint> get_json(std::shared_ptr<const vocabulary> vocab,
                                                   const std::string& schema,
                                                   const std::vector<int32_t>& end_tokens);
  size_t size() const;
  uint64_t compiles() const;

 private:
  struct entry {
    std::string key;
    std::shared_ptr<const token_constraint> value;
  };
  std::shared_ptr<const token_constraint> lookup(
      const std::string& key, const std::function<std::shared_ptr<const token_constraint>()>& make);

  size_t capacity_;
  mutable std::mutex mu_;
  std::list<entry> entries_;  ///< most recently used first
  uint64_t compiles_ = 0;
};

}  // namespace conclave::engine::constrained
