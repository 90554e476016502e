// mod_coupecircuit: the C boundary with httpd. Module structure, command
// table, hooks. Everything else (parsing, merging, reading the snapshot,
// computing the values) is plain C++ in module_config.* and request_values.*.
//
// Every hook is noexcept and fails open: whatever happens here, the request
// goes on (DECLINED), at worst without the variables.
#include <array>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>

#include <strings.h>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_status.h"
#include "mpm_common.h"
#include "util_cookies.h"
#include "apr_optional.h"
#include "apr_strings.h"
#include "apr_tables.h"

#include "enforcement.hpp"
#include "module_config.hpp"
#include "request_values.hpp"
#include "shared_state.hpp"
#include "status_report.hpp"

namespace cm = coupecircuit::module;

extern "C" {
__attribute__((visibility("default"))) extern module AP_MODULE_DECLARE_DATA coupecircuit_module;
}

APLOG_USE_MODULE(coupecircuit);

namespace {

// One per process: Apache children map the snapshot once (child_init).
cm::SnapshotSource g_source;
// Hysteresis and counters shared by all children (created in post_config).
cm::SharedState g_shared;

constexpr const char* kHealthHandler = "coupecircuit-health";
constexpr const char* kStatusHandler = "coupecircuit-status";
constexpr const char* kSharedBlockKey = "coupecircuit-shared-block";
constexpr apr_size_t kMaxErrorDocumentBytes = 256 * 1024;

struct ExemptEntry {
  const char* prefix;   // a path prefix, or null
  ap_regex_t* regex;    // "~ regex" form, or null
};

// Per-directory settings (enforcement, health). Unset fields inherit.
struct DirSettings {
  cm::Action action;
  int shed_status;           // 0: unset (503)
  apr_int64_t retry_after;   // -1: unset (no header)
  const char* session_cookie;
  const char* error_body;    // CoupeCircuitErrorDocument's content, loaded at start
  const char* health_token;
  apr_array_header_t* exempt;  // of ExemptEntry, accumulated from outer to inner
};

DirSettings* dir_settings_of(ap_conf_vector_t* vector) noexcept {
  return static_cast<DirSettings*>(ap_get_module_config(vector, &coupecircuit_module));
}

void* create_dir_settings(apr_pool_t* pool, char*) noexcept {
  auto* settings = static_cast<DirSettings*>(apr_pcalloc(pool, sizeof(DirSettings)));
  settings->action = cm::Action::unset;
  settings->retry_after = -1;
  settings->exempt = apr_array_make(pool, 2, sizeof(ExemptEntry));
  return settings;
}

void* merge_dir_settings(apr_pool_t* pool, void* base_void, void* add_void) noexcept {
  const auto* base = static_cast<const DirSettings*>(base_void);
  const auto* add = static_cast<const DirSettings*>(add_void);
  auto* merged = static_cast<DirSettings*>(apr_pcalloc(pool, sizeof(DirSettings)));
  merged->action = add->action != cm::Action::unset ? add->action : base->action;
  merged->shed_status = add->shed_status != 0 ? add->shed_status : base->shed_status;
  merged->retry_after = add->retry_after >= 0 ? add->retry_after : base->retry_after;
  merged->session_cookie = add->session_cookie != nullptr ? add->session_cookie : base->session_cookie;
  merged->error_body = add->error_body != nullptr ? add->error_body : base->error_body;
  merged->health_token = add->health_token != nullptr ? add->health_token : base->health_token;
  merged->exempt = apr_array_append(pool, base->exempt, add->exempt);  // exemptions add up
  return merged;
}

// The variables of a fresh snapshot as an apr table whose values a request
// fills in, when they have no text in static storage (else each thread keeps
// the whole table, see ThreadEnv). Copying a table (apr_table_copy: two
// allocations, three memcpy) costs a fraction of seven apr_table_setn, each
// of which hashes its key and compares it with the keys already there.
struct EnvTemplate {
  apr_table_t* table;
  int entry[cm::kVariableCount];  // each variable's entry in table; -1: absent
};

// One per combination of the optional thresholds: bit 0 SEUIL_SESSIONS, bit 1
// SEUIL_LOAD. Read-only once made (post_config): every thread copies them.
struct EnvTemplates {
  EnvTemplate fresh[4];
};

// Room for the seven variables. A request's copy grows (doubling) when CGI,
// mod_php or mod_proxy_fcgi add theirs, as the table mod_env's SetEnv makes
// does; more room would cost every other request memory it does not use.
constexpr int kEnvTableCapacity = 8;

// Per-server configuration: the settings (plain C++) and, after post_config,
// the templates of the environment.
struct ServerConfig {
  cm::ServerSettings settings;
  const EnvTemplates* env_templates = nullptr;
};

ServerConfig* config_of(server_rec* server) noexcept {
  return static_cast<ServerConfig*>(ap_get_module_config(server->module_config, &coupecircuit_module));
}

cm::ServerSettings* settings_of(server_rec* server) noexcept {
  return &config_of(server)->settings;
}

void* create_server_settings(apr_pool_t* pool, server_rec*) noexcept {
  return new (apr_pcalloc(pool, sizeof(ServerConfig))) ServerConfig();
}

void* merge_server_settings(apr_pool_t* pool, void* base, void* add) noexcept {
  auto* merged = new (apr_pcalloc(pool, sizeof(ServerConfig))) ServerConfig();
  merged->settings = cm::merge_settings(static_cast<const ServerConfig*>(base)->settings,
                                        static_cast<const ServerConfig*>(add)->settings);
  return merged;
}

// What post_read_request found, for the enforcement and the health check of
// the same request. r->request_config points at one of these immutable
// entries: nothing is allocated per request.
struct RequestState {
  coupecircuit::Verdict verdict;
  bool cut;
  bool tripped;
  bool sessions_high;
  bool load_high;
};

constexpr std::array<RequestState, cm::kStateCodes> make_request_states() noexcept {
  std::array<RequestState, cm::kStateCodes> states{};
  for (unsigned code = 0; code < cm::kStateCodes; ++code) {
    states[code] = RequestState{static_cast<coupecircuit::Verdict>(code & 3U), (code & 4U) != 0, (code & 8U) != 0,
                                (code & 16U) != 0, (code & 32U) != 0};
  }
  return states;
}

constexpr std::array<RequestState, cm::kStateCodes> kRequestStates = make_request_states();
static_assert(cm::state_code(coupecircuit::Verdict::inconnu, true, true, true, true) == cm::kStateCodes - 1);

void set_request_state(request_rec* r, unsigned code) noexcept {
  ap_set_module_config(r->request_config, &coupecircuit_module,
                       const_cast<RequestState*>(&kRequestStates[code]));  // NOLINT
}

const char* error_text(cmd_parms* cmd, const coupecircuit::Error& error) noexcept {
  return apr_pstrdup(cmd->pool, error.message.c_str());
}

// Runs a directive's parser (plain C++, may allocate) and, when it accepts
// the value, stores it. Parsers name the directive in their messages.
template <typename Parse, typename Store>
const char* apply_directive(cmd_parms* cmd, Parse parse, Store store) noexcept {
  try {
    auto parsed = parse();
    if (!parsed) return error_text(cmd, parsed.error());
    if constexpr (std::is_same_v<decltype(parsed), coupecircuit::Result<void>>) {
      store();
    } else {
      store(*parsed);
    }
    return nullptr;
  } catch (...) {
    return apr_pstrcat(cmd->pool, cmd->cmd->name, ": out of memory", nullptr);
  }
}

// ---- Directives

const char* set_enabled(cmd_parms* cmd, void*, int on) noexcept {
  settings_of(cmd->server)->enabled = on != 0 ? 1 : 0;
  return nullptr;
}

const char* set_snapshot_path(cmd_parms* cmd, void*, const char* path) noexcept {
  if (const char* context_error = ap_check_cmd_context(cmd, GLOBAL_ONLY)) return context_error;
  return apply_directive(cmd, [&] { return cm::validate_snapshot_path(path); },
                         [&] { settings_of(cmd->server)->snapshot_path = apr_pstrdup(cmd->pool, path); });
}

const char* set_max_age(cmd_parms* cmd, void*, const char* value) noexcept {
  return apply_directive(cmd, [&] { return cm::parse_max_age(value); }, [&](std::uint64_t seconds) {
    auto* settings = settings_of(cmd->server);
    settings->max_age_seconds = seconds;
    settings->max_age_set = true;
  });
}

const char* set_threshold(cmd_parms* cmd, void*, const char* kind, const char* trip, const char* release) noexcept {
  return apply_directive(cmd, [&] { return cm::parse_threshold(kind, trip, release != nullptr ? release : ""); },
                         [&](const cm::ThresholdDirective& threshold) {
                           cm::apply_threshold(*settings_of(cmd->server), threshold);
                         });
}

const char* set_env_name(cmd_parms* cmd, void*, const char* logical, const char* name) noexcept {
  if (const char* invalid = apply_directive(cmd, [&] { return cm::validate_env_name(name); }, [] {})) return invalid;
  return apply_directive(cmd, [&] { return cm::parse_logical_name(logical); }, [&](cm::Variable variable) {
    settings_of(cmd->server)->env_names[static_cast<std::size_t>(variable)] = apr_pstrdup(cmd->pool, name);
  });
}

const char* set_hold(cmd_parms* cmd, void*, const char* value) noexcept {
  return apply_directive(cmd, [&] { return cm::parse_hold(value); }, [&](std::uint64_t seconds) {
    auto* settings = settings_of(cmd->server);
    settings->hold_seconds = seconds;
    settings->hold_set = true;
  });
}

// Enforcement would cost every request a hook call: its hook is registered
// only once a CoupeCircuitAction that refuses appears in the configuration
// (httpd sorts the hooks again after reading it, for modules that add hooks
// from their directives). Hooks go with each configuration: so does this.
bool g_enforcement_hooked = false;
int on_fixups(request_rec* r) noexcept;

void hook_enforcement() noexcept {
  if (g_enforcement_hooked) return;
  // After core's SetHandler (REALLY_FIRST), before per-directory rewriting.
  ap_hook_fixups(on_fixups, nullptr, nullptr, APR_HOOK_FIRST);
  g_enforcement_hooked = true;
}

const char* set_action(cmd_parms* cmd, void* dir, const char* value) noexcept {
  return apply_directive(
      cmd, [&] { return cm::parse_action(value); },
      [&](cm::Action action) {
        static_cast<DirSettings*>(dir)->action = action;
        if (action == cm::Action::refuse_new || action == cm::Action::refuse_all) hook_enforcement();
      });
}

const char* set_shed_status(cmd_parms* cmd, void* dir, const char* value) noexcept {
  return apply_directive(cmd, [&] { return cm::parse_shed_status(value); },
                         [&](int status) { static_cast<DirSettings*>(dir)->shed_status = status; });
}

const char* set_retry_after(cmd_parms* cmd, void* dir, const char* value) noexcept {
  return apply_directive(cmd, [&] { return cm::parse_retry_after(value); }, [&](std::uint64_t seconds) {
    static_cast<DirSettings*>(dir)->retry_after = static_cast<apr_int64_t>(seconds);
  });
}

const char* set_session_cookie(cmd_parms* cmd, void* dir, const char* value) noexcept {
  return apply_directive(cmd, [&] { return cm::validate_cookie_name(value); },
                         [&] { static_cast<DirSettings*>(dir)->session_cookie = apr_pstrdup(cmd->pool, value); });
}

const char* set_health_token(cmd_parms* cmd, void* dir, const char* value) noexcept {
  return apply_directive(cmd, [&] { return cm::validate_health_token(value); },
                         [&] { static_cast<DirSettings*>(dir)->health_token = apr_pstrdup(cmd->pool, value); });
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
  static_cast<DirSettings*>(dir)->error_body = body;
  return nullptr;
}

const char* add_exempt(cmd_parms* cmd, void* dir, const char* value) noexcept {
  auto* settings = static_cast<DirSettings*>(dir);
  auto* entry = static_cast<ExemptEntry*>(apr_array_push(settings->exempt));
  entry->prefix = nullptr;
  entry->regex = nullptr;
  if (value[0] == '~') {
    const char* pattern = value + 1;
    while (*pattern == ' ') ++pattern;
    entry->regex = ap_pregcomp(cmd->pool, pattern, AP_REG_EXTENDED | AP_REG_NOSUB);
    if (entry->regex == nullptr || *pattern == '\0') {
      return apr_psprintf(cmd->pool, "CoupeCircuitExempt: invalid regular expression \"%s\"", pattern);
    }
  } else if (value[0] == '/') {
    entry->prefix = apr_pstrdup(cmd->pool, value);
  } else {
    return apr_psprintf(cmd->pool, "CoupeCircuitExempt takes a path starting with / or ~REGEX, not \"%s\"", value);
  }
  return nullptr;
}

// httpd's command table stores every handler as an untyped function pointer
// and calls it back with the signature the directive's kind implies.
template <typename Handler>
cmd_func as_cmd_func(Handler handler) noexcept {
  return reinterpret_cast<cmd_func>(reinterpret_cast<void (*)()>(handler));  // NOLINT
}

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
                   "CoupeCircuitThreshold sessions|load TRIP [RELEASE] - this vhost's threshold (RELEASE < TRIP, "
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
                    "CoupeCircuitExempt /path-prefix|~REGEX ... - never refused (health checks, assets, back office)"),
    AP_INIT_TAKE1("CoupeCircuitHealthToken", as_cmd_func(set_health_token), nullptr, RSRC_CONF | ACCESS_CONF,
                  "CoupeCircuitHealthToken TOKEN - coupecircuit-health requires Authorization: Bearer TOKEN"),
    {nullptr, {nullptr}, nullptr, 0, RAW_ARGS, nullptr}};

// ---- Hooks

// The shared block lives in the process pool so that the hysteresis state of
// each vhost survives graceful restarts; children inherit it on fork.
cm::SharedBlock* shared_block(server_rec* main_server) noexcept {
  apr_pool_t* process_pool = main_server->process->pool;
  void* existing = nullptr;
  apr_pool_userdata_get(&existing, kSharedBlockKey, process_pool);
  if (existing != nullptr) return static_cast<cm::SharedBlock*>(existing);
  cm::SharedBlock* block = cm::SharedState::create_block();
  if (block != nullptr) apr_pool_userdata_set(block, kSharedBlockKey, apr_pool_cleanup_null, process_pool);
  return block;
}

// What a thread exports for one vhost while only the request changes: made
// again when the snapshot sequence, the age in seconds or the verdict changes
// (a few times a second at most), copied by each request. Its values are all
// in static storage or in the configuration, which outlive any request.
struct ThreadEnv {
  apr_table_t* table;
  std::uint64_t epoch;  // g_env_epoch when made: an older one went with its pool
};

// ThreadEnvs come from this pool, made under pconf in post_config (a table
// apr_table_copy copies must come from an ancestor of the request's pool)
// with an allocator of its own: threads take from it under g_env_mutex, once
// per thread and vhost slot.
apr_pool_t* g_env_pool = nullptr;
std::uint64_t g_env_epoch = 0;
std::mutex g_env_mutex;

apr_status_t forget_env_pool(void*) noexcept {
  g_env_pool = nullptr;
  return APR_SUCCESS;
}

void make_env_pool(apr_pool_t* pconf) noexcept {
  apr_allocator_t* allocator = nullptr;
  if (apr_allocator_create(&allocator) != APR_SUCCESS) return;
  apr_pool_t* pool = nullptr;
  if (apr_pool_create_ex(&pool, pconf, nullptr, allocator) != APR_SUCCESS) {
    apr_allocator_destroy(allocator);
    return;
  }
  apr_allocator_owner_set(allocator, pool);
  apr_pool_cleanup_register(pool, nullptr, forget_env_pool, apr_pool_cleanup_null);
  g_env_pool = pool;
  ++g_env_epoch;
}

bool is_optional_threshold(cm::Variable variable, unsigned pattern) noexcept {
  if (variable == cm::Variable::seuil_sessions) return (pattern & 1U) != 0;
  if (variable == cm::Variable::seuil_load) return (pattern & 2U) != 0;
  return true;
}

// Made the way export_values() sets them on an empty table (apr_table_setn, in
// the same order), so that two variables exported under one name share an
// entry and the last one wins, as there.
const EnvTemplates* make_env_templates(apr_pool_t* pool, const cm::ServerSettings& settings) noexcept {
  auto* templates = static_cast<EnvTemplates*>(apr_pcalloc(pool, sizeof(EnvTemplates)));
  for (unsigned pattern = 0; pattern < 4; ++pattern) {
    EnvTemplate& fresh = templates->fresh[pattern];
    fresh.table = apr_table_make(pool, kEnvTableCapacity);
    for (std::size_t i = 0; i < cm::kVariableCount; ++i) {
      const auto variable = static_cast<cm::Variable>(i);
      fresh.entry[i] = -1;
      if (is_optional_threshold(variable, pattern)) apr_table_setn(fresh.table, settings.env_name(variable), "");
    }
    const apr_array_header_t* header = apr_table_elts(fresh.table);
    const auto* entries = reinterpret_cast<const apr_table_entry_t*>(header->elts);  // NOLINT
    for (std::size_t i = 0; i < cm::kVariableCount; ++i) {
      const auto variable = static_cast<cm::Variable>(i);
      if (!is_optional_threshold(variable, pattern)) continue;
      for (int e = 0; e < header->nelts; ++e) {
        if (strcasecmp(entries[e].key, settings.env_name(variable)) == 0) fresh.entry[i] = e;
      }
      if (fresh.entry[i] < 0) return nullptr;  // cannot happen; the slow path then serves this vhost
    }
  }
  return templates;
}

bool same_env_names(const cm::ServerSettings& a, const cm::ServerSettings& b) noexcept {
  for (std::size_t i = 0; i < cm::kVariableCount; ++i) {
    const auto variable = static_cast<cm::Variable>(i);
    if (std::strcmp(a.env_name(variable), b.env_name(variable)) != 0) return false;
  }
  return true;
}

// Before the directives of a new configuration (httpd has dropped every hook).
int pre_config(apr_pool_t*, apr_pool_t*, apr_pool_t*) noexcept {
  g_enforcement_hooked = false;
  return OK;
}

int post_config(apr_pool_t* pconf, apr_pool_t*, apr_pool_t*, server_rec* main_server) noexcept {
  cm::SharedBlock* block = shared_block(main_server);
  if (block == nullptr) {
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, main_server,
                 "CC0304: cannot create shared memory for the verdict hysteresis: each child decides alone");
  }
  g_shared = cm::SharedState(block);
  make_env_pool(pconf);
  ServerConfig* main_config = config_of(main_server);
  std::uint32_t index = 0;
  for (server_rec* server = main_server; server != nullptr; server = server->next) {
    ServerConfig* config = config_of(server);
    // Most vhosts export under the default names: they share the main
    // server's templates.
    config->env_templates = config != main_config && same_env_names(config->settings, main_config->settings)
                                ? main_config->env_templates
                                : make_env_templates(pconf, config->settings);
    auto* settings = &config->settings;
    settings->cache_slot = index++;
    cm::set_vhost_identity(*settings, server->server_hostname != nullptr ? server->server_hostname : "");
    // Entries sharing a ServerName (the :80/:443 pair of a site) share their
    // hysteresis, unless their thresholds differ.
    settings->verdict_slot =
        g_shared.slot_for(settings->vhost_hash ^ (settings->thresholds.sessions * 0x9e3779b97f4a7c15ULL) ^
                          (settings->thresholds.load_centi * 0xc2b2ae3d27d4eb4fULL));
  }
  return OK;
}

void child_init(apr_pool_t*, server_rec* main_server) noexcept {
  const char* path = settings_of(main_server)->snapshot_path;
  g_source.open(path != nullptr ? path : coupecircuit::snapshot::kDefaultPath);
}

const char* verdict_text(coupecircuit::Verdict verdict) noexcept {
  switch (verdict) {
    case coupecircuit::Verdict::ok: return "ok";
    case coupecircuit::Verdict::surcharge: return "surcharge";
    case coupecircuit::Verdict::coupure: return "coupure";
    case coupecircuit::Verdict::inconnu: return "inconnu";
  }
  return "inconnu";
}

void log_transition(const request_rec* r, cm::Transition transition, const cm::ServerSettings& settings) noexcept {
  switch (transition) {
    case cm::Transition::none: return;
    case cm::Transition::became_stale:
      ap_log_error(APLOG_MARK, APLOG_WARNING, 0, r->server,
                   "CC0301: snapshot %s is stale (no heartbeat for more than %" APR_UINT64_T_FMT
                   " s): COUPECIRCUIT_ETAT=inconnu until coupecircuitd publishes again",
                   g_source.path(), static_cast<apr_uint64_t>(settings.max_age_ns() / 1'000'000'000ULL));
      return;
    case cm::Transition::became_missing:
      ap_log_error(APLOG_MARK, APLOG_WARNING, 0, r->server,
                   "CC0302: snapshot %s cannot be used (%s): COUPECIRCUIT_ETAT=inconnu until coupecircuitd publishes it",
                   g_source.path(), coupecircuit::snapshot::to_string(g_source.last_open_error()).data());
      return;
    case cm::Transition::recovered:
      ap_log_error(APLOG_MARK, APLOG_INFO, 0, r->server, "CC0303: snapshot %s is fresh again", g_source.path());
      return;
  }
}

[[gnu::noinline]] const apr_table_t* make_thread_env(const cm::ServerSettings& settings, cm::FreshValues& values,
                                                     const cm::FreshRequest& fresh) noexcept {
  auto* env = static_cast<ThreadEnv*>(values.caller_data);
  if (env == nullptr || env->epoch != g_env_epoch) {
    std::lock_guard lock(g_env_mutex);
    if (g_env_pool == nullptr) return nullptr;
    env = static_cast<ThreadEnv*>(apr_palloc(g_env_pool, sizeof(ThreadEnv)));
    env->table = apr_table_make(g_env_pool, kEnvTableCapacity);
    env->epoch = g_env_epoch;
    values.caller_data = env;
  }
  // As export_values() sets them: same order, so that two variables under
  // one name end the same way.
  apr_table_t* table = env->table;
  apr_table_clear(table);
  apr_table_setn(table, settings.env_name(cm::Variable::load_avg), values.lasting[0]);
  apr_table_setn(table, settings.env_name(cm::Variable::sessions_actives), values.lasting[1]);
  apr_table_setn(table, settings.env_name(cm::Variable::coupure), values.cut ? "1" : "0");
  if (values.has_seuil_sessions)
    apr_table_setn(table, settings.env_name(cm::Variable::seuil_sessions), values.lasting[2]);
  if (values.has_seuil_load) apr_table_setn(table, settings.env_name(cm::Variable::seuil_load), values.lasting[3]);
  apr_table_setn(table, settings.env_name(cm::Variable::etat), verdict_text(fresh.verdict));
  apr_table_setn(table, settings.env_name(cm::Variable::age), fresh.age_text);
  values.caller_stamp = fresh.stamp;
  return table;
}

// A text outside the static ones (a number of 10000 or more, an unusual
// rendering) or a very large age: the vhost's template, its values pointed at
// texts copied into the request pool (the thread's FreshValues change with
// the next snapshot, while the request's table may be read until its log
// line is written).
[[gnu::noinline]] apr_table_t* copy_env_template(request_rec* r, const ServerConfig& config,
                                                 const cm::FreshRequest& fresh) noexcept {
  if (config.env_templates == nullptr) return nullptr;
  const cm::FreshValues& values = *fresh.values;
  const EnvTemplate& tpl =
      config.env_templates->fresh[(values.has_seuil_sessions ? 1U : 0U) | (values.has_seuil_load ? 2U : 0U)];
  apr_table_t* env = apr_table_copy(r->pool, tpl.table);
  char* texts = static_cast<char*>(apr_palloc(r->pool, values.texts_size));
  std::memcpy(texts, values.texts, values.texts_size);
  auto* entries = reinterpret_cast<apr_table_entry_t*>(apr_table_elts(env)->elts);  // NOLINT
  const auto value = [&](cm::Variable variable) -> char*& {
    return entries[tpl.entry[static_cast<std::size_t>(variable)]].val;
  };
  // In export_values()'s order: with two variables under one name, the last
  // wins. Every entry but the absent thresholds' exists (make_env_templates).
  value(cm::Variable::load_avg) = texts + values.offsets[0];
  value(cm::Variable::sessions_actives) = texts + values.offsets[1];
  value(cm::Variable::coupure) = const_cast<char*>(values.cut ? "1" : "0");  // NOLINT: httpd never writes through them
  if (values.has_seuil_sessions) value(cm::Variable::seuil_sessions) = texts + values.offsets[2];
  if (values.has_seuil_load) value(cm::Variable::seuil_load) = texts + values.offsets[3];
  value(cm::Variable::etat) = const_cast<char*>(verdict_text(fresh.verdict));               // NOLINT
  value(cm::Variable::age) = fresh.age_text != nullptr ? const_cast<char*>(fresh.age_text)  // NOLINT
                                                       : apr_psprintf(r->pool, "%" APR_UINT64_T_FMT,
                                                                      static_cast<apr_uint64_t>(fresh.age_seconds));
  return env;
}

// The fast path: the snapshot is fresh and the request's environment still
// empty (a new request, not an internal redirect). It becomes a copy of the
// thread's (or of the vhost's template when that cannot be).
bool export_fresh(request_rec* r, const ServerConfig& config, std::uint64_t now_ns) noexcept {
  if (apr_table_elts(r->subprocess_env)->nelts != 0) return false;
  const cm::FreshRequest* fresh = g_source.compute_fresh(config.settings, now_ns, &g_shared);
  if (fresh == nullptr) return false;
  cm::FreshValues& values = *fresh->values;
  const apr_table_t* made = nullptr;
  if (values.caller_stamp == fresh->stamp) {
    made = static_cast<const ThreadEnv*>(values.caller_data)->table;
  } else if (values.all_lasting && fresh->stamp != cm::kNoStamp) {
    made = make_thread_env(config.settings, values, *fresh);
  }
  apr_table_t* env = made != nullptr ? apr_table_copy(r->pool, made) : copy_env_template(r, config, *fresh);
  if (env == nullptr) return false;
  r->subprocess_env = env;
  set_request_state(r, fresh->state);
  return true;
}

// Any other case (a stale or missing snapshot, a health change to log, an
// internal redirect): the values live in the request pool, the environment
// table only points at them, and they stay valid for the request's whole
// life (logging too).
[[gnu::noinline]] void export_values(request_rec* r, const cm::ServerSettings& settings,
                                     std::uint64_t now_ns) noexcept {
  auto* values = new (apr_palloc(r->pool, sizeof(cm::RequestValues))) cm::RequestValues();
  cm::Transition transition = cm::Transition::none;
  g_source.compute(settings, now_ns, *values, &transition, &g_shared);
  set_request_state(
      r, cm::state_code(values->verdict, values->cut, values->tripped, values->sessions_high, values->load_high));

  apr_table_t* env = r->subprocess_env;
  if (values->has_values) {
    apr_table_setn(env, settings.env_name(cm::Variable::load_avg), values->load_avg);
    apr_table_setn(env, settings.env_name(cm::Variable::sessions_actives), values->sessions);
    apr_table_setn(env, settings.env_name(cm::Variable::coupure), values->cut ? "1" : "0");
  }
  if (values->has_seuil_sessions) apr_table_setn(env, settings.env_name(cm::Variable::seuil_sessions), values->seuil_sessions);
  if (values->has_seuil_load) apr_table_setn(env, settings.env_name(cm::Variable::seuil_load), values->seuil_load);
  apr_table_setn(env, settings.env_name(cm::Variable::etat), verdict_text(values->verdict));
  if (values->has_age) apr_table_setn(env, settings.env_name(cm::Variable::age), values->age);
  if (transition != cm::Transition::none) log_transition(r, transition, settings);
}

// Also runs for the new request of an internal redirect (ErrorDocument, a
// per-directory RewriteRule to a front controller), whose environment httpd
// has renamed to REDIRECT_*: the plain names are exported again there.
// Sub-requests (and DirectoryIndex or FallbackResource, which take one's
// result over) inherit a copy of their parent's environment.
int on_post_read_request(request_rec* r) noexcept {
  const ServerConfig& config = *config_of(r->server);
  if (!config.settings.is_enabled()) return DECLINED;
  const std::uint64_t now_ns = cm::coarse_monotonic_now_ns();
  if (!export_fresh(r, config, now_ns)) export_values(r, config.settings, now_ns);
  return DECLINED;
}

const RequestState* state_of(request_rec* r) noexcept {
  return static_cast<const RequestState*>(ap_get_module_config(r->request_config, &coupecircuit_module));
}

bool is_exempt(const request_rec* r, const DirSettings& dir) noexcept {
  const char* path = r->uri != nullptr ? r->uri : "";
  const auto* entries = reinterpret_cast<const ExemptEntry*>(dir.exempt->elts);  // NOLINT
  for (int i = 0; i < dir.exempt->nelts; ++i) {
    if (entries[i].prefix != nullptr && cm::path_matches_prefix(path, entries[i].prefix)) return true;
    if (entries[i].regex != nullptr && ap_regexec(entries[i].regex, path, 0, nullptr, 0) == 0) return true;
  }
  return false;
}

// A request refused while its vhost is tripped or cut.
[[gnu::noinline]] int enforce(request_rec* r, const DirSettings& dir, const RequestState* values) noexcept {
  // Monitoring is never shed: our health and status handlers, mod_status.
  if (r->handler != nullptr && (std::strcmp(r->handler, kHealthHandler) == 0 || std::strcmp(r->handler, kStatusHandler) == 0 ||
                                std::strcmp(r->handler, "server-status") == 0)) {
    return DECLINED;
  }
  bool has_cookie = false;
  if (dir.action == cm::Action::refuse_new) {
    const char* cookie = nullptr;
    has_cookie = ap_cookie_read(r, dir.session_cookie != nullptr ? dir.session_cookie : cm::kDefaultSessionCookie,
                                &cookie, 0) == APR_SUCCESS && cookie != nullptr && cookie[0] != '\0';
  }
  if (!cm::should_shed(dir.action, values->verdict, has_cookie, is_exempt(r, dir))) return DECLINED;

  const char* reason = cm::shed_reason(values->verdict);
  g_shared.count_shed(values->verdict == coupecircuit::Verdict::coupure ? cm::ShedReason::coupure
                                                                        : cm::ShedReason::surcharge);
  apr_table_setn(r->notes, "coupecircuit", reason);
  apr_table_setn(r->err_headers_out, "X-CoupeCircuit", reason);
  apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
  if (dir.retry_after >= 0) {
    apr_table_setn(r->err_headers_out, "Retry-After", apr_psprintf(r->pool, "%" APR_INT64_T_FMT, dir.retry_after));
  }
  const int status = dir.shed_status != 0 ? dir.shed_status : cm::kDefaultShedStatus;
  if (dir.error_body == nullptr) return status;  // Apache's ErrorDocument for the status
  // The maintenance page is sent as is, by the module: ap_custom_response()
  // would take a page starting with "/" or "word:" for a redirect, and would
  // label it iso-8859-1.
  r->status = status;
  ap_set_content_type(r, "text/html; charset=utf-8");
  apr_table_setn(r->headers_out, "Content-Length", apr_psprintf(r->pool, "%" APR_SIZE_T_FMT, std::strlen(dir.error_body)));
  if (!r->header_only) ap_rputs(dir.error_body, r);
  return DONE;
}

// Enforcement (CoupeCircuitAction), after the location walk and SetHandler.
// Every request runs it: the common answer (not tripped, nothing to refuse)
// comes first, in a few loads.
int on_fixups(request_rec* r) noexcept {
  const RequestState* values = state_of(r);
  if (values == nullptr ||
      (values->verdict != coupecircuit::Verdict::coupure && values->verdict != coupecircuit::Verdict::surcharge)) {
    return DECLINED;
  }
  // Not for sub-requests, nor internal redirects (the error page of a refused
  // request must not be refused again).
  if (r->main != nullptr || r->prev != nullptr) return DECLINED;
  const DirSettings& dir = *dir_settings_of(r->per_dir_config);
  if (dir.action == cm::Action::unset || dir.action == cm::Action::none) return DECLINED;
  return enforce(r, dir, values);
}

int handle_health(request_rec* r) noexcept {
  if (r->method_number != M_GET) return HTTP_METHOD_NOT_ALLOWED;
  const DirSettings& dir = *dir_settings_of(r->per_dir_config);
  apr_table_setn(r->headers_out, "Cache-Control", "no-store");
  if (dir.health_token != nullptr &&
      !cm::bearer_token_matches(apr_table_get(r->headers_in, "Authorization"), dir.health_token)) {
    apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Bearer realm=\"coupecircuit\"");
    return HTTP_UNAUTHORIZED;
  }
  cm::RequestValues values;
  if (const RequestState* state = state_of(r)) {
    values.verdict = state->verdict;
    values.cut = state->cut;
    values.tripped = state->tripped;
    values.sessions_high = state->sessions_high;
    values.load_high = state->load_high;
  } else {  // CoupeCircuit Off on this vhost: compute anyway
    g_source.compute(*settings_of(r->server), cm::coarse_monotonic_now_ns(), values, nullptr, &g_shared);
  }
  try {
    const cm::HealthAnswer answer = cm::health_answer(values);
    r->status = answer.status;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    if (!r->header_only) ap_rwrite(answer.body.data(), static_cast<int>(answer.body.size()), r);
  } catch (...) {
    return HTTP_SERVICE_UNAVAILABLE;
  }
  return OK;
}

cm::StatusReport build_status_report(request_rec* r, bool with_page_details) {
  cm::StatusReport report;
  report.snapshot_path = g_source.path();
  for (server_rec* server = ap_server_conf; server != nullptr; server = server->next) {
    const auto* settings = settings_of(server);
    cm::VhostStatus vhost;
    vhost.name = settings->vhost_name[0] != '\0' ? settings->vhost_name : "(default)";
    g_source.compute(*settings, cm::coarse_monotonic_now_ns(), vhost.values, nullptr, &g_shared);
    vhost.trips = g_shared.trips(settings->verdict_slot);
    if (server == ap_server_conf || server == r->server) {
      report.health = vhost.values.health;
      report.has_payload = vhost.values.has_age;
      if (report.has_payload) {
        report.payload = cm::SnapshotSource::thread_payload();
        report.age_seconds = std::strtoull(vhost.values.age, nullptr, 10);
      }
    }
    if (with_page_details) cm::add_page_details(vhost, *settings, vhost.values.has_age, g_shared);
    report.vhosts.push_back(std::move(vhost));
  }
  if (with_page_details) cm::add_history(report);
  report.shed[0] = g_shared.shed_count(cm::ShedReason::coupure);
  report.shed[1] = g_shared.shed_count(cm::ShedReason::surcharge);
  return report;
}

int handle_status(request_rec* r) noexcept {
  if (r->method_number != M_GET) return HTTP_METHOD_NOT_ALLOWED;
  try {
    const std::string query = r->args != nullptr ? r->args : "";
    std::string body;
    if (query == "json") {
      ap_set_content_type(r, "application/json");
      body = cm::render_status_json(build_status_report(r, false));
    } else if (query == "prometheus") {
      ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
      body = cm::render_status_prometheus(build_status_report(r, false));
    } else {
      cm::StatusReport report = build_status_report(r, true);
      report.refresh_seconds = cm::parse_refresh(query);
      ap_set_content_type(r, "text/html; charset=utf-8");
      body = cm::render_status_html(report);
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only) ap_rwrite(body.data(), static_cast<int>(body.size()), r);
  } catch (...) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "CC0305: cannot render the status page");
    return HTTP_INTERNAL_SERVER_ERROR;
  }
  return OK;
}

// One handler hook for both handlers: every request runs it, and nearly all
// of them are for another handler, told apart by the first byte.
[[gnu::noinline]] int dispatch_handler(request_rec* r) noexcept {
  if (std::strcmp(r->handler, kHealthHandler) == 0) return handle_health(r);
  if (std::strcmp(r->handler, kStatusHandler) == 0) return handle_status(r);
  return DECLINED;
}

int on_handler(request_rec* r) noexcept {
  const char* handler = r->handler;
  if (handler == nullptr || handler[0] != 'c') return DECLINED;
  return dispatch_handler(r);
}

// A section in mod_status's /server-status.
int on_server_status(request_rec* r, int flags) noexcept {
  try {
    const cm::StatusReport report = build_status_report(r, false);
    if ((flags & AP_STATUS_SHORT) != 0) {
      ap_rprintf(r, "CoupeCircuitSnapshot: %s\n", cm::to_string(report.health));
      if (report.has_payload) {
        ap_rprintf(r, "CoupeCircuitSessionsActives: %" APR_UINT64_T_FMT "\n",
                   static_cast<apr_uint64_t>(report.payload.sessions_active));
      }
      for (const auto& vhost : report.vhosts) {
        ap_rprintf(r, "CoupeCircuitVhost: %s %s\n", vhost.name.c_str(), coupecircuit::to_string(vhost.values.verdict).data());
      }
      return OK;
    }
    ap_rputs("<hr />\n<h2>CoupeCircuit</h2>\n", r);
    ap_rprintf(r, "<p>Snapshot %s: %s", ap_escape_html(r->pool, report.snapshot_path.c_str()), cm::to_string(report.health));
    if (report.has_payload) {
      ap_rprintf(r, ", %" APR_UINT64_T_FMT " active authenticated sessions",
                 static_cast<apr_uint64_t>(report.payload.sessions_active));
    }
    ap_rputs("</p>\n<table><tr><th>vhost</th><th>state</th></tr>\n", r);
    for (const auto& vhost : report.vhosts) {
      ap_rprintf(r, "<tr><td>%s</td><td>%s</td></tr>\n", ap_escape_html(r->pool, vhost.name.c_str()),
                 coupecircuit::to_string(vhost.values.verdict).data());
    }
    ap_rputs("</table>\n", r);
  } catch (...) {
    ap_rputs("<p>CoupeCircuit: status unavailable</p>\n", r);
  }
  return OK;
}

void register_hooks(apr_pool_t*) noexcept {
  ap_hook_post_config(post_config, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_child_init(child_init, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_pre_config(pre_config, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_post_read_request(on_post_read_request, nullptr, nullptr, APR_HOOK_REALLY_FIRST);
  ap_hook_handler(on_handler, nullptr, nullptr, APR_HOOK_FIRST);  // fixups: see hook_enforcement()
  APR_OPTIONAL_HOOK(ap, status_hook, on_server_status, nullptr, nullptr, APR_HOOK_MIDDLE);
}

}  // namespace

extern "C" {
module AP_MODULE_DECLARE_DATA coupecircuit_module = {
    STANDARD20_MODULE_STUFF,
    create_dir_settings,     // per-directory config: enforcement and health
    merge_dir_settings,
    create_server_settings,  // per-server config
    merge_server_settings,
    kCommands,
    register_hooks,
    AP_MODULE_FLAG_NONE,
};
}
