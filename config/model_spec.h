// model_spec: one model of a server that serves several (`[[models]]` in the config, or
// POST /admin/models at run time): its name and aliases, its checkpoint, and what it may
// set apart from the server's [engine] and [replicas].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace conclave::config {

struct server_config;

struct model_spec {
  std::string name;                  ///< what requests name in `model` (required)
  std::vector<std::string> aliases;  ///< other names routed to it
  std::string path;                  ///< the checkpoint folder (required)
  std::string tokenizer;             ///< empty: PATH/tokenizer.json
  std::string chat_template;         ///< empty: the tokenizer folder's own
  int32_t replicas = 0;              ///< 0: [replicas] count
  std::string backend;               ///< empty: [engine] backend ("cpu" or "cuda")
  int32_t device = -1;               ///< CUDA device; -1: [engine] device
  int64_t kv_cache_mib = 0;          ///< 0: [engine] kv_cache_mib

  /// Empty when valid, else one line naming the key (relative to the spec).
  std::string validate() const;
};

/// True for a name requests may use for a model: 1-128 characters of letters, digits and
/// `-_.:/@+`.
bool valid_model_name(const std::string& name);

/// The configuration one model of `base` runs with: [model] from the spec, its overrides
/// applied, no [[models]] of its own. Throws std::invalid_argument for an invalid spec.
server_config model_config(const server_config& base, const model_spec& m);

}  // namespace conclave::config
