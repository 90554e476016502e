// What the files of mod_coupecircuit.so that speak to httpd share: the
// module record, the per-server and per-directory configuration as httpd
// stores them, the process-wide snapshot source and shared state, and each
// concern's entry points. Everything here runs in httpd's hooks: noexcept,
// failing open.
#pragma once

#include "httpd.h"
#include "http_config.h"

#include "message_ids.hpp"
#include "module_config.hpp"
#include "request_values.hpp"
#include "shared_state.hpp"

extern "C" {
__attribute__((visibility("default"))) extern module AP_MODULE_DECLARE_DATA coupecircuit_module;
}

namespace coupecircuit::module::httpd {

// One per process: Apache children map the snapshot once (child_init).
extern SnapshotSource g_source;
// Hysteresis and counters shared by all children (created in post_config).
extern SharedState g_shared;

// A registered message ID for httpd's printf-style log calls ("%s: ...").
// Every ID in the registry is a string literal, so its data ends with a NUL.
[[nodiscard]] inline const char* message_id(std::string_view id) noexcept { return id.data(); }

inline constexpr const char* kHealthHandler = "coupecircuit-health";
inline constexpr const char* kStatusHandler = "coupecircuit-status";

struct EnvTemplates;

// Per-server configuration: the settings (plain C++) and, after post_config,
// the templates of the environment (env_cache.cpp).
struct ServerConfig {
  ServerSettings settings;
  const EnvTemplates* env_templates = nullptr;
};

[[nodiscard]] inline ServerConfig* config_of(const server_rec* server) noexcept {
  return static_cast<ServerConfig*>(ap_get_module_config(server->module_config, &coupecircuit_module));
}
[[nodiscard]] inline const DirSettings& dir_settings_of(const request_rec* r) noexcept {
  return *static_cast<const DirSettings*>(ap_get_module_config(r->per_dir_config, &coupecircuit_module));
}

// ---- directives.cpp: the command table and the configuration records.
extern const command_rec kCommands[];
void* create_dir_config(apr_pool_t* pool, char* directory) noexcept;
void* merge_dir_config(apr_pool_t* pool, void* base, void* add) noexcept;
void* create_server_config(apr_pool_t* pool, server_rec* server) noexcept;
void* merge_server_config(apr_pool_t* pool, void* base, void* add) noexcept;

// ---- The state post_read_request found, for the later hooks of the same
// request: r->request_config points at one of 128 immutable codes
// (state_code()), nothing is allocated per request.
struct StateCodes {
  unsigned char code[kStateCodes];
};
inline constexpr StateCodes kStateCodeTable = [] {
  StateCodes table{};
  for (unsigned code = 0; code < kStateCodes; ++code) table.code[code] = static_cast<unsigned char>(code);
  return table;
}();
inline void set_request_state(request_rec* r, unsigned code) noexcept {
  ap_set_module_config(r->request_config, &coupecircuit_module,
                       const_cast<unsigned char*>(&kStateCodeTable.code[code % kStateCodes]));  // NOLINT
}
// Null: the module did not look at this request (CoupeCircuit Off).
[[nodiscard]] inline const unsigned char* state_of(const request_rec* r) noexcept {
  return static_cast<const unsigned char*>(ap_get_module_config(r->request_config, &coupecircuit_module));
}

// ---- env_cache.cpp: the request environment.
void make_env_pool(apr_pool_t* pconf) noexcept;
// For every server, after the configuration is merged.
void make_env_templates(apr_pool_t* pconf, server_rec* main_server) noexcept;
// The post_read_request hook: exports the variables to r->subprocess_env.
int on_post_read_request(request_rec* r) noexcept;

// ---- request_enforcement.cpp: CoupeCircuitAction.
// Registers the fixups hook, once a refusing CoupeCircuitAction appears.
void hook_enforcement() noexcept;
void forget_enforcement_hook() noexcept;  // a new configuration: hooks are gone

// ---- health_handler.cpp, status_page.cpp: the handlers, mod_status' section.
int handle_health(request_rec* r) noexcept;
int handle_status(request_rec* r) noexcept;
int on_server_status(request_rec* r, int flags) noexcept;

}  // namespace coupecircuit::module::httpd
