// CoupeCircuitAction: refusing requests while the vhost is tripped or cut.
//
// Enforcement would cost every request a hook call: its hook is registered
// only once a CoupeCircuitAction that refuses appears in the configuration
// (httpd sorts the hooks again after reading it, for modules that add hooks
// from their directives). Hooks go with each configuration: so does this.
//
// It runs last among the fixups, when what will be served is known: after
// core's SetHandler, per-directory rewriting and mod_dir's DirectoryIndex
// and FallbackResource. Exemptions are matched against the path of what is
// served (served_path()), never against PATH_INFO, and the new request of an
// internal redirect (a RewriteRule to a front controller) is judged again.
#include <cstring>
#include <string_view>

#include "httpd.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"

#include "enforcement.hpp"
#include "httpd_module.hpp"

namespace coupecircuit::module::httpd {
namespace {

constexpr const char* kRefusalNote = "coupecircuit";

bool g_enforcement_hooked = false;

bool regex_matches(const void* regex, std::string_view path) noexcept {
  return ap_regexec_len(static_cast<const ap_regex_t*>(regex), path.data(), path.size(), 0, nullptr, 0) == 0;
}

// The URL path of what the request serves:
//   * mapped to a file of the DocumentRoot (by the URL, or by a rewrite that
//     left the URL as it was), that file's path under the DocumentRoot;
//   * else (Alias, a proxy, a per-directory rewrite in progress) the URL path
//     without PATH_INFO: "/index.php/a.css" serves /index.php.
std::string_view served_path(request_rec* r) noexcept {
  const char* root = ap_document_root(r);
  if (r->filename != nullptr && root != nullptr && root[0] == '/') {
    std::size_t length = std::strlen(root);
    while (length > 1 && root[length - 1] == '/') --length;
    if (std::strncmp(r->filename, root, length) == 0 && r->filename[length] == '/') {
      return r->filename + length;
    }
  }
  std::string_view path = r->uri != nullptr ? r->uri : "";
  const std::string_view extra = r->path_info != nullptr ? r->path_info : "";
  if (!extra.empty() && path.size() > extra.size() && path.substr(path.size() - extra.size()) == extra) {
    path.remove_suffix(extra.size());
  }
  return path;
}

bool is_monitoring(const request_rec* r) noexcept {
  return r->handler != nullptr && (std::strcmp(r->handler, kHealthHandler) == 0 ||
                                   std::strcmp(r->handler, kStatusHandler) == 0 ||
                                   std::strcmp(r->handler, "server-status") == 0);
}

// A previous request of this internal-redirect chain was refused: this one
// is its error page, never refused again.
bool follows_a_refusal(const request_rec* r) noexcept {
  for (const request_rec* previous = r->prev; previous != nullptr; previous = previous->prev) {
    if (apr_table_get(previous->notes, kRefusalNote) != nullptr) return true;
  }
  return false;
}

// A request refused while its vhost is tripped or cut.
[[gnu::noinline]] int enforce(request_rec* r, const DirSettings& dir, Verdict verdict) noexcept {
  // Monitoring is never shed: our health and status handlers, mod_status.
  if (is_monitoring(r) || follows_a_refusal(r)) return DECLINED;
  bool has_session = false;
  if (dir.action_or_default() == Action::refuse_new) {
    const char* cookies = apr_table_get(r->headers_in, "Cookie");
    has_session = cookies != nullptr && has_cookie(cookies, dir.session_cookie_or_default());
  }
  const bool exempt = is_exempt(dir.exempt, served_path(r), regex_matches);
  if (!should_shed(dir.action_or_default(), verdict, has_session, exempt)) return DECLINED;

  const char* reason = shed_reason(verdict);
  g_shared.count_shed(verdict == Verdict::coupure ? ShedReason::coupure : ShedReason::surcharge);
  apr_table_setn(r->notes, kRefusalNote, reason);
  apr_table_setn(r->err_headers_out, "X-CoupeCircuit", reason);
  apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
  if (dir.retry_after) {
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, static_cast<apr_uint64_t>(*dir.retry_after)));
  }
  const int status = dir.shed_status_or_default();
  if (!dir.error_body) return status;  // Apache's ErrorDocument for the status
  // The maintenance page is sent as is, by the module: ap_custom_response()
  // would take a page starting with "/" or "word:" for a redirect, and would
  // label it iso-8859-1.
  const char* body = *dir.error_body;
  r->status = status;
  ap_set_content_type(r, "text/html; charset=utf-8");
  apr_table_setn(r->headers_out, "Content-Length", apr_psprintf(r->pool, "%" APR_SIZE_T_FMT, std::strlen(body)));
  if (!r->header_only) ap_rputs(body, r);
  return DONE;
}

// Every request runs it: the common answer (not tripped, nothing to refuse)
// comes first, in a few loads.
int on_fixups(request_rec* r) noexcept {
  const unsigned char* state = state_of(r);
  if (state == nullptr) return DECLINED;
  const auto verdict = static_cast<Verdict>(*state & 3U);
  if (verdict != Verdict::coupure && verdict != Verdict::surcharge) return DECLINED;
  // Not for sub-requests: their main request is judged.
  if (r->main != nullptr) return DECLINED;
  const DirSettings& dir = dir_settings_of(r);
  if (!dir.refuses()) return DECLINED;
  return enforce(r, dir, verdict);
}

}  // namespace

void hook_enforcement() noexcept {
  if (g_enforcement_hooked) return;
  ap_hook_fixups(on_fixups, nullptr, nullptr, APR_HOOK_REALLY_LAST);
  g_enforcement_hooked = true;
}

void forget_enforcement_hook() noexcept { g_enforcement_hooked = false; }

}  // namespace coupecircuit::module::httpd
