// The directive table of mod_coupecircuit and the configuration records
// httpd creates and merges. Parsing and merging are plain C++
// (module_config.*); this file only wires them to httpd.
#include <new>
#include <type_traits>

#include "httpd.h"
#include "http_log.h"
#include "apr_file_info.h"
#include "apr_file_io.h"
#include "apr_strings.h"

#include "httpd_module.hpp"

namespace coupecircuit::module::httpd {
namespace {

constexpr apr_size_t kMaxErrorDocumentBytes = 256 * 1024;

ServerSettings& settings_of(const cmd_parms* cmd) noexcept { return config_of(cmd->server)->settings; }
DirSettings& dir_of(void* dir) noexcept { return *static_cast<DirSettings*>(dir); }

const char* error_text(cmd_parms* cmd, const Error& error) noexcept {
  return apr_pstrdup(cmd->pool, error.message.c_str());
}

// Runs a directive's parser (plain C++, may allocate) and, when it accepts
// the value, stores it. Parsers name the directive in their messages.
template <typename Parse, typename Store>
const char* apply_directive(cmd_parms* cmd, Parse parse, Store store) noexcept {
  try {
    auto parsed = parse();
    if (!parsed) return error_text(cmd, parsed.error());
    if constexpr (std::is_same_v<decltype(parsed), Result<void>>) {
      store();
    } else {
      store(*parsed);
    }
    return nullptr;
  } catch (...) {
    return apr_pstrcat(cmd->pool, cmd->cmd->name, ": out of memory", nullptr);
  }
}

// ---- Per-server directives

const char* set_enabled(cmd_parms* cmd, void*, int on) noexcept {
  settings_of(cmd).enabled = on != 0;
  return nullptr;
}

const char* set_snapshot_path(cmd_parms* cmd, void*, const char* path) noexcept {
  if (const char* context_error = ap_check_cmd_context(cmd, GLOBAL_ONLY)) return context_error;
  return apply_directive(cmd, [&] { return validate_snapshot_path(path); },
                         [&] { settings_of(cmd).snapshot_path = apr_pstrdup(cmd->pool, path); });
}

const char* set_max_age(cmd_parms* cmd, void*, const char* value) noexcept {
  return apply_directive(cmd, [&] { return parse_max_age(value); },
                         [&](std::uint64_t seconds) { settings_of(cmd).max_age_seconds = seconds; });
}

const char* set_threshold(cmd_parms* cmd, void*, const char* kind, const char* trip, const char* release) noexcept {
  return apply_directive(cmd, [&] { return parse_threshold(kind, trip, release != nullptr ? release : ""); },
                         [&](const ThresholdDirective& threshold) { apply_threshold(settings_of(cmd), threshold); });
}

const char* set_env_name(cmd_parms* cmd, void*, const char* logical, const char* name) noexcept {
  if (const char* invalid = apply_directive(cmd, [&] { return validate_env_name(name); }, [] {})) return invalid;
  return apply_directive(cmd, [&] { return parse_logical_name(logical); }, [&](Variable variable) {
    settings_of(cmd).env_names[static_cast<std::size_t>(variable)] = apr_pstrdup(cmd->pool, name);
  });
}

const char* set_hold(cmd_parms* cmd, void*, const char* value) noexcept {
  return apply_directive(cmd, [&] { return parse_hold(value); },
                         [&](std::uint64_t seconds) { settings_of(cmd).hold_seconds = seconds; });
}

// ---- Per-directory directives

const char* set_action(cmd_parms* cmd, void* dir, const char* value) noexcept {
  return apply_directive(cmd, [&] { return parse_action(value); }, [&](Action action) {
    dir_of(dir).action = action;
    if (action != Action::none) hook_enforcement();
  });
}

const char* set_shed_status(cmd_parms* cmd, void* dir, const char* value) noexcept {
  return apply_directive(cmd, [&] { return parse_shed_status(value); },
                         [&](int status) { dir_of(dir).shed_status = status; });
}

const char* set_retry_after(cmd_parms* cmd, void* dir, const char* value) noexcept {
  return apply_directive(cmd, [&] { return parse_retry_after(value); },
                         [&](std::uint64_t seconds) { dir_of(dir).retry_after = seconds; });
}

const char* set_session_cookie(cmd_parms* cmd, void* dir, const char* value) noexcept {
  return apply_directive(cmd, [&] { return validate_cookie_name(value); },
                         [&] { dir_of(dir).session_cookie = apr_pstrdup(cmd->pool, value); });
}

const char* set_health_token(cmd_parms* cmd, void* dir, const char* value) noexcept {
  return apply_directive(cmd, [&] { return validate_health_token(value); },
                         [&] { dir_of(dir).health_token = apr_pstrdup(cmd->pool, value); });
}

// The maintenance page is read once, at start: a missing file fails the
// configuration test instead of a request.
const char* set_error_document(cmd_parms* cmd, void* dir, const char* value) noexcept {
  const char* path = ap_server_root_relative(cmd->pool, value);
  if (path == nullptr) return apr_psprintf(cmd->pool, "CoupeCircuitErrorDocument: invalid path \"%s\"", value);
  apr_file_t* file = nullptr;
  apr_finfo_t info;
  apr_status_t status = apr_file_open(&file, path, APR_FOPEN_READ | APR_FOPEN_BINARY, APR_OS_DEFAULT, cmd->pool);
  if (status == APR_SUCCESS) status = apr_file_info_get(&info, APR_FINFO_SIZE | APR_FINFO_TYPE, file);
  if (status != APR_SUCCESS) {
    char reason[128];
    return apr_psprintf(cmd->pool, "CoupeCircuitErrorDocument: cannot read \"%s\": %s", path,
                        apr_strerror(status, reason, sizeof reason));
  }
  if (info.filetype != APR_REG || info.size > static_cast<apr_off_t>(kMaxErrorDocumentBytes)) {
    apr_file_close(file);
    return apr_psprintf(cmd->pool, "CoupeCircuitErrorDocument: \"%s\" must be a regular file of at most %u bytes", path,
                        static_cast<unsigned>(kMaxErrorDocumentBytes));
  }
  auto size = static_cast<apr_size_t>(info.size);
  char* body = static_cast<char*>(apr_palloc(cmd->pool, size + 1));
  apr_size_t got = size;
  status = size > 0 ? apr_file_read_full(file, body, size, &got) : APR_SUCCESS;
  apr_file_close(file);
  if (status != APR_SUCCESS) return apr_psprintf(cmd->pool, "CoupeCircuitErrorDocument: cannot read \"%s\"", path);
  body[got] = '\0';
  dir_of(dir).error_body = body;
  return nullptr;
}

ExemptRule* allocate_rules(apr_pool_t* pool, std::size_t count) noexcept {
  return static_cast<ExemptRule*>(apr_palloc(pool, count * sizeof(ExemptRule)));
}

const char* add_exempt(cmd_parms* cmd, void* dir, const char* value) noexcept {
  ExemptRule rule;
  if (value[0] == '~') {
    const char* pattern = value + 1;
    while (*pattern == ' ') ++pattern;
    rule.regex = ap_pregcomp(cmd->pool, pattern, AP_REG_EXTENDED | AP_REG_NOSUB);
    if (rule.regex == nullptr || *pattern == '\0') {
      return apr_psprintf(cmd->pool, "CoupeCircuitExempt: invalid regular expression \"%s\"", pattern);
    }
  } else if (value[0] == '/') {
    rule.prefix = apr_pstrdup(cmd->pool, value);
  } else {
    return apr_psprintf(cmd->pool, "CoupeCircuitExempt takes a path starting with / or ~REGEX, not \"%s\"", value);
  }
  DirSettings& settings = dir_of(dir);
  ExemptRule* rules = allocate_rules(cmd->pool, settings.exempt.size() + 1);
  std::size_t count = 0;
  for (const ExemptRule& kept : settings.exempt) rules[count++] = kept;
  rules[count++] = rule;
  settings.exempt = {rules, count};
  return nullptr;
}

// httpd's command table stores every handler as an untyped function pointer
// and calls it back with the signature the directive's kind implies.
template <typename Handler>
cmd_func as_cmd_func(Handler handler) noexcept {
  return reinterpret_cast<cmd_func>(reinterpret_cast<void (*)()>(handler));  // NOLINT
}

}  // namespace

// Exported before the location walk (so that mod_rewrite's server-context
// rules and mod_setenvif can use them): server and <VirtualHost> only.
const command_rec kCommands[] = {
    AP_INIT_FLAG("CoupeCircuit", as_cmd_func(set_enabled), nullptr, RSRC_CONF,
                 "CoupeCircuit On|Off - export the server load variables to this server (default On)"),
    AP_INIT_TAKE1("CoupeCircuitSnapshot", as_cmd_func(set_snapshot_path), nullptr, RSRC_CONF,
                  "CoupeCircuitSnapshot PATH - snapshot published by coupecircuitd (default /run/coupecircuit/snapshot; "
                  "server config only)"),
    AP_INIT_TAKE1("CoupeCircuitMaxAge", as_cmd_func(set_max_age), nullptr, RSRC_CONF,
                  "CoupeCircuitMaxAge SECONDS - the snapshot is stale after this many seconds without a heartbeat "
                  "(default 10)"),
    AP_INIT_TAKE23("CoupeCircuitThreshold", as_cmd_func(set_threshold), nullptr, RSRC_CONF,
                   "CoupeCircuitThreshold sessions|load|saturation:PROBE TRIP [RELEASE] - this vhost's threshold (RELEASE < TRIP, "
                   "default 90% of TRIP)"),
    AP_INIT_TAKE2("CoupeCircuitEnvName", as_cmd_func(set_env_name), nullptr, RSRC_CONF,
                  "CoupeCircuitEnvName LOGICAL NAME - export a variable under another name (load_avg, sessions_actives, "
                  "coupure, seuil_sessions, seuil_load, etat, age)"),
    AP_INIT_TAKE1("CoupeCircuitHold", as_cmd_func(set_hold), nullptr, RSRC_CONF,
                  "CoupeCircuitHold SECONDS - a tripped or released state holds at least this long (default 30)"),
    AP_INIT_TAKE1("CoupeCircuitAction", as_cmd_func(set_action), nullptr, RSRC_CONF | ACCESS_CONF,
                  "CoupeCircuitAction none|refuse-new|refuse-all - refuse requests while tripped or cut (default none)"),
    AP_INIT_TAKE1("CoupeCircuitStatusCode", as_cmd_func(set_shed_status), nullptr, RSRC_CONF | ACCESS_CONF,
                  "CoupeCircuitStatusCode 503|429 - status of a refused request (default 503)"),
    AP_INIT_TAKE1("CoupeCircuitRetryAfter", as_cmd_func(set_retry_after), nullptr, RSRC_CONF | ACCESS_CONF,
                  "CoupeCircuitRetryAfter SECONDS - Retry-After of a refused request (default: none)"),
    AP_INIT_TAKE1("CoupeCircuitSessionCookie", as_cmd_func(set_session_cookie), nullptr, RSRC_CONF | ACCESS_CONF,
                  "CoupeCircuitSessionCookie NAME - the cookie refuse-new lets through (default PHPSESSID)"),
    AP_INIT_TAKE1("CoupeCircuitErrorDocument", as_cmd_func(set_error_document), nullptr, RSRC_CONF | ACCESS_CONF,
                  "CoupeCircuitErrorDocument FILE - static page sent with a refused request (default: ErrorDocument)"),
    AP_INIT_ITERATE("CoupeCircuitExempt", as_cmd_func(add_exempt), nullptr, RSRC_CONF | ACCESS_CONF,
                    "CoupeCircuitExempt /path-prefix|~REGEX ... - never refused, matched against the path of what is "
                    "served (health checks, assets, back office)"),
    AP_INIT_TAKE1("CoupeCircuitHealthToken", as_cmd_func(set_health_token), nullptr, RSRC_CONF | ACCESS_CONF,
                  "CoupeCircuitHealthToken TOKEN - coupecircuit-health requires Authorization: Bearer TOKEN"),
    {nullptr, {nullptr}, nullptr, 0, RAW_ARGS, nullptr}};

// The records live in httpd's configuration pool, which never runs their
// destructors: only trivially destructible members (pool strings, spans).
static_assert(std::is_trivially_destructible_v<DirSettings>);

void* create_dir_config(apr_pool_t* pool, char*) noexcept {
  return new (apr_palloc(pool, sizeof(DirSettings))) DirSettings();
}

void* merge_dir_config(apr_pool_t* pool, void* base, void* add) noexcept {
  return new (apr_palloc(pool, sizeof(DirSettings)))
      DirSettings(merge_dir_settings(*static_cast<const DirSettings*>(base), *static_cast<const DirSettings*>(add),
                                     [pool](std::size_t count) { return allocate_rules(pool, count); }));
}

void* create_server_config(apr_pool_t* pool, server_rec*) noexcept {
  return new (apr_palloc(pool, sizeof(ServerConfig))) ServerConfig();
}

void* merge_server_config(apr_pool_t* pool, void* base, void* add) noexcept {
  auto* merged = new (apr_palloc(pool, sizeof(ServerConfig))) ServerConfig();
  merged->settings = merge_settings(static_cast<const ServerConfig*>(base)->settings,
                                    static_cast<const ServerConfig*>(add)->settings);
  return merged;
}

}  // namespace coupecircuit::module::httpd
