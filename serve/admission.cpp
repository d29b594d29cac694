// The admission rule (see the header).
#include "serve/admission.h"

namespace conclave::serve {

std::optional<client_event> admission_error(bool draining, bool accepting, int64_t queued,
                                            int64_t max_waiting) {
  if (draining)
    return client_event::error(503, "the server is shutting down", "service_unavailable");
  if (!accepting)
    return client_event::error(503, "the model is still loading; retry shortly",
                               "service_unavailable");
  if (queued >= max_waiting)
    return client_event::error(429, "too many requests are waiting; retry later",
                               "rate_limit_error", {}, "queue_full");
  return std::nullopt;
}

}  // namespace conclave::serve
