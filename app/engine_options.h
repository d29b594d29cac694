// Command-line options shared by every subcommand that runs a model (backend, KV cache,
// scheduler), bound to one engine_config.
#pragma once

#include <CLI/CLI.hpp>

#include "config/engine_config.h"

namespace conclave::app {

/// Adds --backend, --threads, --block-size, --kv-cache-mib, --num-kv-blocks,
/// --max-num-seqs, --max-batched-tokens, --max-model-len, --no-prefix-caching.
void add_engine_options(CLI::App& cmd, config::engine_config& cfg);

/// Copies into `to` the engine options that were given on `cmd`'s command line (so they
/// override a config file), taking their values from `from` (what add_engine_options bound).
void apply_given_engine_options(const CLI::App& cmd, const config::engine_config& from,
                                config::engine_config& to);

}  // namespace conclave::app
