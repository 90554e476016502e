// The coupecircuit-status handler (HTML, ?json, ?prometheus) and the section
// in mod_status' /server-status. The pages themselves are rendered by
// status_report.* (plain C++); this file gathers the report from httpd.
#include <cstdlib>
#include <string>

#include "httpd.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "http_protocol.h"
#include "mod_status.h"
#include "apr_tables.h"

#include "httpd_module.hpp"
#include "status_report.hpp"

APLOG_USE_MODULE(coupecircuit);

namespace coupecircuit::module::httpd {
namespace {

StatusReport build_status_report(request_rec* r, bool with_page_details) {
  StatusReport report;
  report.snapshot_path = g_source.path();
  for (server_rec* server = ap_server_conf; server != nullptr; server = server->next) {
    const ServerSettings& settings = config_of(server)->settings;
    VhostStatus vhost;
    vhost.name = settings.vhost_name[0] != '\0' ? settings.vhost_name : "(default)";
    g_source.compute(settings, coarse_monotonic_now_ns(), vhost.values, nullptr, &g_shared);
    vhost.trips = g_shared.trips(settings.verdict_slot);
    if (server == ap_server_conf || server == r->server) {
      report.health = vhost.values.health;
      report.has_payload = vhost.values.has(Variable::age);
      if (report.has_payload) {
        report.payload = SnapshotSource::thread_payload();
        report.age_seconds = std::strtoull(vhost.values.get(Variable::age), nullptr, 10);
      }
    }
    if (with_page_details) add_page_details(vhost, settings, vhost.values.has(Variable::age), g_shared);
    report.vhosts.push_back(std::move(vhost));
  }
  if (with_page_details) add_history(report);
  report.shed[0] = g_shared.shed_count(ShedReason::coupure);
  report.shed[1] = g_shared.shed_count(ShedReason::surcharge);
  return report;
}

}  // namespace

int handle_status(request_rec* r) noexcept {
  if (r->method_number != M_GET) return HTTP_METHOD_NOT_ALLOWED;
  try {
    const std::string query = r->args != nullptr ? r->args : "";
    std::string body;
    if (query == "json") {
      ap_set_content_type(r, "application/json");
      body = render_status_json(build_status_report(r, false));
    } else if (query == "prometheus") {
      ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
      body = render_status_prometheus(build_status_report(r, false));
    } else {
      StatusReport report = build_status_report(r, true);
      report.refresh_seconds = parse_refresh(query);
      ap_set_content_type(r, "text/html; charset=utf-8");
      body = render_status_html(report);
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only) ap_rwrite(body.data(), static_cast<int>(body.size()), r);
  } catch (...) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "%s: cannot render the status page",
                  message_id(log::id::kModuleStatusRenderFailed));
    return HTTP_INTERNAL_SERVER_ERROR;
  }
  return OK;
}

// A section in mod_status's /server-status.
int on_server_status(request_rec* r, int flags) noexcept {
  try {
    const StatusReport report = build_status_report(r, false);
    const bool known = report.has_payload && snapshot::sessions_known(report.payload);
    if ((flags & AP_STATUS_SHORT) != 0) {
      ap_rprintf(r, "CoupeCircuitSnapshot: %s\n", to_string(report.health));
      if (known) {
        ap_rprintf(r, "CoupeCircuitSessionsActives: %" APR_UINT64_T_FMT "\n",
                   static_cast<apr_uint64_t>(report.payload.sessions_active));
      }
      for (const auto& vhost : report.vhosts) {
        ap_rprintf(r, "CoupeCircuitVhost: %s %s\n", vhost.name.c_str(), verdict_text(vhost.values.verdict));
      }
      return OK;
    }
    ap_rputs("<hr />\n<h2>CoupeCircuit</h2>\n", r);
    ap_rprintf(r, "<p>Snapshot %s: %s", ap_escape_html(r->pool, report.snapshot_path.c_str()), to_string(report.health));
    if (known) {
      ap_rprintf(r, ", %" APR_UINT64_T_FMT " active authenticated sessions",
                 static_cast<apr_uint64_t>(report.payload.sessions_active));
    } else if (report.has_payload) {
      ap_rputs(", sessions unknown (the helper cannot read the session store)", r);
    }
    ap_rputs("</p>\n<table><tr><th>vhost</th><th>state</th></tr>\n", r);
    for (const auto& vhost : report.vhosts) {
      ap_rprintf(r, "<tr><td>%s</td><td>%s</td></tr>\n", ap_escape_html(r->pool, vhost.name.c_str()),
                 verdict_text(vhost.values.verdict));
    }
    ap_rputs("</table>\n", r);
  } catch (...) {
    ap_rputs("<p>CoupeCircuit: status unavailable</p>\n", r);
  }
  return OK;
}

}  // namespace coupecircuit::module::httpd
