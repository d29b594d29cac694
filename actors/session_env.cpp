#include "actors/session_env.h"

#include "serve/tool_runtime.h"

namespace conclave::actors {

std::shared_ptr<session_env> make_session_env(config::server_config& cfg,
                                              const model::model_config& mc,
                                              std::shared_ptr<serve::server_metrics> metrics) {
  auto text = serve::load_model_text(cfg.tokenizer_path, cfg.chat_template_path,
                                     cfg.engine.max_model_len, mc);
  if (cfg.engine.sampling_vocab_size == 0 &&
      text->tok->vocab_size() < static_cast<size_t>(mc.vocab_size)) {
    cfg.engine.sampling_vocab_size = static_cast<int64_t>(text->tok->vocab_size());
  }
  auto env = std::make_shared<session_env>();
  env->text = std::move(text);
  env->tools = {serve::make_tool_runtime(cfg.tools, metrics), cfg.tools.max_rounds};
  env->failover = {cfg.replicas.failover_attempts, cfg.replicas.failover_timeout_s};
  env->metrics = std::move(metrics);
  env->counters = std::make_shared<serve::session_counters>();
  env->tool_list = std::make_shared<live_actors>();
  return env;
}

}  // namespace conclave::actors
