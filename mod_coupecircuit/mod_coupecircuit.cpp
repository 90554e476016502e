// mod_coupecircuit: the C boundary with httpd. The module record, hook
// registration and the hooks that start each concern:
//   directives.cpp           the command table, configuration records
//   env_cache.cpp            the request environment (post_read_request's hook)
//   request_enforcement.cpp  CoupeCircuitAction (fixups)
//   health_handler.cpp       coupecircuit-health
//   status_page.cpp          coupecircuit-status, mod_status' section
// Everything else (parsing, merging, reading the snapshot, computing the
// values) is plain C++, unit-tested without httpd.
//
// Every hook is noexcept and fails open: whatever happens here, the request
// goes on (DECLINED), at worst without the variables.
#include <cstring>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_status.h"
#include "apr_optional.h"

#include "httpd_module.hpp"

APLOG_USE_MODULE(coupecircuit);

namespace coupecircuit::module::httpd {

SnapshotSource g_source;
SharedState g_shared;

namespace {

constexpr const char* kSharedBlockKey = "coupecircuit-shared-block";

// The shared block lives in the process pool so that the hysteresis state of
// each vhost survives graceful restarts; children inherit it on fork.
SharedBlock* shared_block(server_rec* main_server) noexcept {
  apr_pool_t* process_pool = main_server->process->pool;
  void* existing = nullptr;
  apr_pool_userdata_get(&existing, kSharedBlockKey, process_pool);
  if (existing != nullptr) return static_cast<SharedBlock*>(existing);
  SharedBlock* block = SharedState::create_block();
  if (block != nullptr) apr_pool_userdata_set(block, kSharedBlockKey, apr_pool_cleanup_null, process_pool);
  return block;
}

// Before the directives of a new configuration (httpd has dropped every hook).
int pre_config(apr_pool_t*, apr_pool_t*, apr_pool_t*) noexcept {
  forget_enforcement_hook();
  return OK;
}

int post_config(apr_pool_t* pconf, apr_pool_t*, apr_pool_t*, server_rec* main_server) noexcept {
  SharedBlock* block = shared_block(main_server);
  if (block == nullptr) {
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, main_server,
                 "%s: cannot create shared memory for the verdict hysteresis: each child decides alone",
                 message_id(log::id::kModuleNoSharedMemory));
  }
  g_shared = SharedState(block);
  std::uint32_t index = 0;
  for (server_rec* server = main_server; server != nullptr; server = server->next) {
    ServerSettings& settings = config_of(server)->settings;
    finish_settings(settings, server->server_hostname != nullptr ? server->server_hostname : "");
    settings.cache_slot = index++;
    // Entries sharing a ServerName (the :80/:443 pair of a site) share their
    // hysteresis, unless their thresholds differ.
    settings.verdict_slot =
        g_shared.slot_for(settings.vhost_hash ^ (settings.thresholds.sessions * 0x9e3779b97f4a7c15ULL) ^
                          (settings.thresholds.load_centi * 0xc2b2ae3d27d4eb4fULL));
  }
  make_env_pool(pconf);
  make_env_templates(pconf, main_server);
  return OK;
}

void child_init(apr_pool_t*, server_rec* main_server) noexcept {
  g_source.open(config_of(main_server)->settings.snapshot_path_or_default());
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

void register_hooks(apr_pool_t*) noexcept {
  ap_hook_post_config(post_config, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_child_init(child_init, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_pre_config(pre_config, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_post_read_request(on_post_read_request, nullptr, nullptr, APR_HOOK_REALLY_FIRST);
  ap_hook_handler(on_handler, nullptr, nullptr, APR_HOOK_FIRST);  // fixups: see hook_enforcement()
  APR_OPTIONAL_HOOK(ap, status_hook, on_server_status, nullptr, nullptr, APR_HOOK_MIDDLE);
}

}  // namespace
}  // namespace coupecircuit::module::httpd

namespace cmh = coupecircuit::module::httpd;

extern "C" {
module AP_MODULE_DECLARE_DATA coupecircuit_module = {
    STANDARD20_MODULE_STUFF,
    cmh::create_dir_config,  // per-directory config: enforcement and health
    cmh::merge_dir_config,
    cmh::create_server_config,  // per-server config
    cmh::merge_server_config,
    cmh::kCommands,
    cmh::register_hooks,
    // Every virtual host gets its own merged settings, even without a
    // directive of ours: finish_settings() writes the vhost's name into them,
    // which a shared pointer to the main server's settings would mix up.
    AP_MODULE_FLAG_ALWAYS_MERGE,
};
}
