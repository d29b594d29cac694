// The client API's helpers (see the header).
#include "serve/client_api.h"

#include "engine/logprobs.h"

namespace conclave::serve {

static_assert(max_top_logprobs == engine::max_top_logprobs);

client_event client_event::error(int status, std::string message, std::string type,
                                 std::string param, std::string code) {
  client_event e;
  e.type = kind::error;
  e.status = status;
  e.text = std::move(message);
  e.error_type = std::move(type);
  e.error_param = std::move(param);
  e.error_code = std::move(code);
  return e;
}

}  // namespace conclave::serve
