// mod_coupecircuit: the C boundary with httpd. Module structure, command
// table, hooks. Everything else (parsing, merging, reading the snapshot,
// computing the values) is plain C++ in module_config.* and request_values.*.
//
// Every hook is noexcept and fails open: whatever happens here, the request
// goes on (DECLINED), at worst without the variables.
#include <new>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"
#include "apr_tables.h"

#include "module_config.hpp"
#include "request_values.hpp"

namespace cm = coupecircuit::module;

extern "C" {
__attribute__((visibility("default"))) extern module AP_MODULE_DECLARE_DATA coupecircuit_module;
}

APLOG_USE_MODULE(coupecircuit);

namespace {

// One per process: Apache children map the snapshot once (child_init).
cm::SnapshotSource g_source;

cm::ServerSettings* settings_of(server_rec* server) noexcept {
  return static_cast<cm::ServerSettings*>(ap_get_module_config(server->module_config, &coupecircuit_module));
}

void* create_server_settings(apr_pool_t* pool, server_rec*) noexcept {
  return new (apr_pcalloc(pool, sizeof(cm::ServerSettings))) cm::ServerSettings();
}

void* merge_server_settings(apr_pool_t* pool, void* base, void* add) noexcept {
  auto* merged = new (apr_pcalloc(pool, sizeof(cm::ServerSettings))) cm::ServerSettings();
  *merged = cm::merge_settings(*static_cast<const cm::ServerSettings*>(base), *static_cast<const cm::ServerSettings*>(add));
  return merged;
}

const char* error_text(cmd_parms* cmd, const coupecircuit::Error& error) noexcept {
  return apr_pstrdup(cmd->pool, error.message.c_str());
}

// ---- Directives

const char* set_enabled(cmd_parms* cmd, void*, int on) noexcept {
  settings_of(cmd->server)->enabled = on != 0 ? 1 : 0;
  return nullptr;
}

const char* set_snapshot_path(cmd_parms* cmd, void*, const char* path) noexcept {
  if (const char* context_error = ap_check_cmd_context(cmd, GLOBAL_ONLY)) return context_error;
  try {
    if (auto valid = cm::validate_snapshot_path(path); !valid) return error_text(cmd, valid.error());
  } catch (...) {
    return "CoupeCircuitSnapshot: out of memory";
  }
  settings_of(cmd->server)->snapshot_path = apr_pstrdup(cmd->pool, path);
  return nullptr;
}

const char* set_max_age(cmd_parms* cmd, void*, const char* value) noexcept {
  try {
    auto seconds = cm::parse_max_age(value);
    if (!seconds) return error_text(cmd, seconds.error());
    auto* settings = settings_of(cmd->server);
    settings->max_age_seconds = *seconds;
    settings->max_age_set = true;
  } catch (...) {
    return "CoupeCircuitMaxAge: out of memory";
  }
  return nullptr;
}

const char* set_threshold(cmd_parms* cmd, void*, const char* kind, const char* trip, const char* release) noexcept {
  try {
    auto threshold = cm::parse_threshold(kind, trip, release != nullptr ? release : "");
    if (!threshold) return error_text(cmd, threshold.error());
    cm::apply_threshold(*settings_of(cmd->server), *threshold);
  } catch (...) {
    return "CoupeCircuitThreshold: out of memory";
  }
  return nullptr;
}

const char* set_env_name(cmd_parms* cmd, void*, const char* logical, const char* name) noexcept {
  try {
    auto variable = cm::parse_logical_name(logical);
    if (!variable) return error_text(cmd, variable.error());
    if (auto valid = cm::validate_env_name(name); !valid) return error_text(cmd, valid.error());
    settings_of(cmd->server)->env_names[static_cast<std::size_t>(*variable)] = apr_pstrdup(cmd->pool, name);
  } catch (...) {
    return "CoupeCircuitEnvName: out of memory";
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
    {nullptr, {nullptr}, nullptr, 0, RAW_ARGS, nullptr}};

// ---- Hooks

int post_config(apr_pool_t*, apr_pool_t*, apr_pool_t*, server_rec* main_server) noexcept {
  for (server_rec* server = main_server; server != nullptr; server = server->next) {
    auto* settings = settings_of(server);
    cm::set_vhost_identity(*settings, server->server_hostname != nullptr ? server->server_hostname : "");
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

void export_values(request_rec* r) noexcept {
  const cm::ServerSettings& settings = *settings_of(r->server);
  if (!settings.is_enabled()) return;
  // The values live in the request pool: the environment table only points
  // at them, and they stay valid for the request's whole life (logging too).
  auto* values = new (apr_palloc(r->pool, sizeof(cm::RequestValues))) cm::RequestValues();
  cm::Transition transition = cm::Transition::none;
  g_source.compute(settings, cm::coarse_monotonic_now_ns(), *values, &transition);

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

int on_post_read_request(request_rec* r) noexcept {
  export_values(r);
  return DECLINED;
}

// An internal redirect (ErrorDocument, a per-directory RewriteRule to a front
// controller) renames the environment to REDIRECT_*: export again under the
// plain names. Sub-requests inherit a copy of their parent's environment.
int on_header_parser(request_rec* r) noexcept {
  if (r->prev != nullptr) export_values(r);
  return DECLINED;
}

void register_hooks(apr_pool_t*) noexcept {
  ap_hook_post_config(post_config, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_child_init(child_init, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_post_read_request(on_post_read_request, nullptr, nullptr, APR_HOOK_REALLY_FIRST);
  ap_hook_header_parser(on_header_parser, nullptr, nullptr, APR_HOOK_REALLY_FIRST);
}

}  // namespace

extern "C" {
module AP_MODULE_DECLARE_DATA coupecircuit_module = {
    STANDARD20_MODULE_STUFF,
    nullptr,                 // per-directory config: none (see kCommands)
    nullptr,
    create_server_settings,  // per-server config
    merge_server_settings,
    kCommands,
    register_hooks,
    AP_MODULE_FLAG_NONE,
};
}
