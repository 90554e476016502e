// The coupecircuit-health handler: the load balancer's health check.
#include "httpd.h"
#include "http_core.h"
#include "http_protocol.h"
#include "apr_tables.h"

#include "enforcement.hpp"
#include "httpd_module.hpp"

namespace coupecircuit::module::httpd {

int handle_health(request_rec* r) noexcept {
  if (r->method_number != M_GET) return HTTP_METHOD_NOT_ALLOWED;
  const DirSettings& dir = dir_settings_of(r);
  apr_table_setn(r->headers_out, "Cache-Control", "no-store");
  if (dir.health_token && !bearer_token_matches(apr_table_get(r->headers_in, "Authorization"), *dir.health_token)) {
    apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Bearer realm=\"coupecircuit\"");
    return HTTP_UNAUTHORIZED;
  }
  RequestValues values;
  if (const unsigned char* state = state_of(r)) {
    values = values_of_state(*state);
  } else {  // CoupeCircuit Off on this vhost: compute anyway
    g_source.compute(config_of(r->server)->settings, coarse_monotonic_now_ns(), values, nullptr, &g_shared);
  }
  // Known state: this thread's copy is the fresh payload it was computed from.
  const snapshot::Payload* payload = values.verdict != Verdict::inconnu ? &SnapshotSource::thread_payload() : nullptr;
  try {
    const bool json = wants_health_json(r->args);
    const HealthAnswer answer = json ? health_json_answer(values, payload, apr_time_sec(r->request_time))
                                     : health_answer(values, payload);
    r->status = answer.status;
    ap_set_content_type(r, json ? "application/health+json" : "text/plain; charset=utf-8");
    if (!r->header_only) ap_rwrite(answer.body.data(), static_cast<int>(answer.body.size()), r);
  } catch (...) {
    return HTTP_SERVICE_UNAVAILABLE;
  }
  return OK;
}

}  // namespace coupecircuit::module::httpd
