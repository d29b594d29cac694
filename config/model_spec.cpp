// One model of a several-model server (see the header).
#include "config/model_spec.h"

#include <spdlog/fmt/fmt.h>

#include <cctype>
#include <stdexcept>

#include "config/server_config.h"

namespace conclave::config {

bool valid_model_name(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  for (unsigned char c : name) {
    const bool ok = std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '/' ||
                    c == '@' || c == '+';
    if (!ok) return false;
  }
  return true;
}

std::string model_spec::validate() const {
  if (!valid_model_name(name))
    return "name must be 1-128 characters of letters, digits and -_.:/@+";
  for (size_t i = 0; i < aliases.size(); ++i) {
    if (!valid_model_name(aliases[i]))
      return fmt::format("aliases[{}] must be 1-128 characters of letters, digits and -_.:/@+", i);
    if (aliases[i] == name) return fmt::format("aliases[{}] repeats the name", i);
  }
  if (path.empty()) return "path must be given (the checkpoint folder)";
  if (replicas < 0 || replicas > 64) return "replicas must be in [0, 64] (0: [replicas] count)";
  if (!backend.empty() && backend != "cpu" && backend != "cuda")
    return "backend must be cpu or cuda";
  if (device < -1 || device > 1023) return "device must be in [0, 1023]";
  if (kv_cache_mib < 0) return "kv_cache_mib must be >= 0";
  return {};
}

server_config model_config(const server_config& base, const model_spec& m) {
  if (auto e = m.validate(); !e.empty()) throw std::invalid_argument(e);
  server_config c = base;
  c.models.clear();
  c.model_dir = m.path;
  c.served_model_name = m.name;
  c.tokenizer_path = m.tokenizer;
  c.chat_template_path = m.chat_template;
  if (m.replicas > 0) c.replicas.count = m.replicas;
  if (!m.backend.empty()) c.engine.backend.kind = m.backend;
  if (m.device >= 0) c.engine.backend.device = m.device;
  if (m.kv_cache_mib > 0) {
    c.engine.backend.kv_cache_bytes = static_cast<size_t>(m.kv_cache_mib) << 20;
    c.engine.backend.kv_cache_bytes_given = true;
  }
  return c;
}

}  // namespace conclave::config
