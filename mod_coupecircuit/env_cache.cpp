// The request environment: what post_read_request exports to
// r->subprocess_env, and the tables each thread keeps to make that a copy.
//
// Every path sets the variables of kExportedVariables in the table's order
// (set_variables()), so that two variables exported under one name end the
// same way everywhere: the last one wins.
#include <array>
#include <cstring>
#include <mutex>
#include <new>

#include <strings.h>

#include "httpd.h"
#include "http_log.h"
#include "apr_strings.h"
#include "apr_tables.h"

#include "httpd_module.hpp"

APLOG_USE_MODULE(coupecircuit);

namespace coupecircuit::module::httpd {

// The variables of a fresh snapshot as an apr table whose values a request
// fills in, when they have no text in static storage (else each thread keeps
// the whole table, see ThreadSlot). Copying a table (apr_table_copy: two
// allocations, three memcpy) costs a fraction of seven apr_table_setn, each
// of which hashes its key and compares it with the keys already there.
struct EnvTemplate {
  apr_table_t* table;
  int entry[kVariableCount];  // each variable's entry in table; -1: absent
};

// One per combination of the variables that may be absent while fresh
// (presence_pattern()). Read-only once made (post_config): every thread
// copies them.
struct EnvTemplates {
  EnvTemplate fresh[kPresencePatterns];
};

namespace {

// Room for the variables. A request's copy grows (doubling) when CGI,
// mod_php or mod_proxy_fcgi add theirs, as the table mod_env's SetEnv makes
// does; more room would cost every other request memory it does not use.
constexpr int kEnvTableCapacity = 8;

// Each variable's text for one request; null: not exported.
using Texts = std::array<const char*, kVariableCount>;

void set_variables(apr_table_t* table, const ServerSettings& settings, const Texts& texts) noexcept {
  for (std::size_t row = 0; row < kVariableCount; ++row) {
    if (texts[row] != nullptr) apr_table_setn(table, settings.env_name(row), texts[row]);
  }
}

// SATURATION_<NAME>, after the table's variables: names and values live as
// long as the process.
void set_probe_tail(apr_table_t* table, const ProbeTail& tail) noexcept {
  for (std::size_t i = 0; i < tail.count; ++i) apr_table_setn(table, tail.name[i], tail.value[i]);
}

// The texts that change with each request: the verdict and the age.
void set_per_request_texts(Texts& texts, const FreshRequest& fresh) noexcept {
  ExportInputs inputs;
  inputs.verdict = fresh.verdict;
  inputs.age = fresh.age_text;
  for (std::size_t row = 0; row < kVariableCount; ++row) {
    if (varies_per_request(kExportedVariables[row].source)) texts[row] = text_of(kExportedVariables[row], inputs).text;
  }
}

// What a thread exports for one vhost while only the request changes: made
// again when the snapshot sequence, the age in seconds or the verdict changes
// (a few times a second at most), copied by each request. Its values are all
// in static storage or in the configuration, which outlive any request.
struct ThreadSlot {
  FreshValues values;            // compute_fresh()'s, for this thread and vhost
  apr_table_t* table = nullptr;  // made from them, from g_env_pool
  std::uint64_t epoch = 0;       // g_env_epoch when table was made: an older one went with its pool
  std::uint64_t stamp = 0;       // the FreshRequest::stamp table was made for (0: none)
};
struct ThreadSlots {
  ThreadSlot slot[kFreshSlots];
};
constinit thread_local ThreadSlots t_slots{};

// The calling thread's. The compiler would compute a thread_local's address
// again after a call (in a loaded module, a call to __tls_get_addr each
// time): the empty asm makes it keep the first.
ThreadSlots& this_thread_slots() noexcept {
  ThreadSlots* slots = &t_slots;
  __asm__("" : "+r"(slots));
  return *slots;
}

// Thread tables come from this pool, made under pconf in post_config (a table
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

// Made the way set_variables() sets them on an empty table, so that two
// variables exported under one name share an entry and the last one wins, as
// there.
const EnvTemplates* templates_for(apr_pool_t* pool, const ServerSettings& settings) noexcept {
  auto* templates = static_cast<EnvTemplates*>(apr_pcalloc(pool, sizeof(EnvTemplates)));
  for (std::size_t pattern = 0; pattern < kPresencePatterns; ++pattern) {
    EnvTemplate& fresh = templates->fresh[pattern];
    const std::uint16_t present = rows_of_pattern(pattern);
    Texts texts{};
    for (std::size_t row = 0; row < kVariableCount; ++row) texts[row] = (present & bit_of(row)) != 0 ? "" : nullptr;
    fresh.table = apr_table_make(pool, kEnvTableCapacity);
    set_variables(fresh.table, settings, texts);
    const apr_array_header_t* header = apr_table_elts(fresh.table);
    const auto* entries = reinterpret_cast<const apr_table_entry_t*>(header->elts);  // NOLINT
    for (std::size_t row = 0; row < kVariableCount; ++row) {
      fresh.entry[row] = -1;
      if (texts[row] == nullptr) continue;
      for (int e = 0; e < header->nelts; ++e) {
        if (strcasecmp(entries[e].key, settings.env_name(row)) == 0) fresh.entry[row] = e;
      }
      if (fresh.entry[row] < 0) return nullptr;  // cannot happen; the slow path then serves this vhost
    }
  }
  return templates;
}

bool same_env_names(const ServerSettings& a, const ServerSettings& b) noexcept {
  for (std::size_t row = 0; row < kVariableCount; ++row) {
    if (std::strcmp(a.env_name(row), b.env_name(row)) != 0) return false;
  }
  return true;
}

void log_transition(const request_rec* r, Transition transition, const ServerSettings& settings) noexcept {
  switch (transition) {
    case Transition::none: return;
    case Transition::became_stale:
      ap_log_error(APLOG_MARK, APLOG_WARNING, 0, r->server,
                   "%s: snapshot %s is stale (no heartbeat for more than %" APR_UINT64_T_FMT
                   " s): COUPECIRCUIT_ETAT=inconnu until coupecircuitd publishes again",
                   message_id(log::id::kModuleSnapshotStale), g_source.path(),
                   static_cast<apr_uint64_t>(settings.max_age_ns() / 1'000'000'000ULL));
      return;
    case Transition::became_missing:
      ap_log_error(APLOG_MARK, APLOG_WARNING, 0, r->server,
                   "%s: snapshot %s cannot be used (%s): COUPECIRCUIT_ETAT=inconnu until coupecircuitd publishes it",
                   message_id(log::id::kModuleSnapshotUnusable), g_source.path(),
                   snapshot::to_string(g_source.last_open_error()).data());
      return;
    case Transition::recovered:
      ap_log_error(APLOG_MARK, APLOG_INFO, 0, r->server, "%s: snapshot %s is fresh again",
                   message_id(log::id::kModuleSnapshotFresh), g_source.path());
      return;
  }
}

[[gnu::noinline]] const apr_table_t* make_thread_env(const ServerSettings& settings, ThreadSlot& slot,
                                                     const FreshRequest& fresh) noexcept {
  if (slot.table == nullptr || slot.epoch != g_env_epoch) {
    std::lock_guard lock(g_env_mutex);
    if (g_env_pool == nullptr) return nullptr;
    slot.table = apr_table_make(g_env_pool, kEnvTableCapacity);
    slot.epoch = g_env_epoch;
  }
  const FreshValues& values = slot.values;
  Texts texts{};
  for (std::size_t row = 0; row < kVariableCount; ++row) {
    texts[row] = (values.present & bit_of(row)) != 0 ? values.lasting[row] : nullptr;
  }
  set_per_request_texts(texts, fresh);
  apr_table_clear(slot.table);
  set_variables(slot.table, settings, texts);
  set_probe_tail(slot.table, values.tail);
  slot.stamp = fresh.stamp;
  return slot.table;
}

// A text outside the static ones (a number of 10000 or more, an unusual
// rendering) or a very large age: the vhost's template, its values pointed at
// texts copied into the request pool (the thread's FreshValues change with
// the next snapshot, while the request's table may be read until its log
// line is written).
[[gnu::noinline]] apr_table_t* copy_env_template(request_rec* r, const ServerConfig& config,
                                                 const FreshRequest& fresh) noexcept {
  if (config.env_templates == nullptr) return nullptr;
  const FreshValues& values = *fresh.values;
  const EnvTemplate& tpl = config.env_templates->fresh[presence_pattern(values.present)];
  apr_table_t* env = apr_table_copy(r->pool, tpl.table);
  char* copied = static_cast<char*>(apr_palloc(r->pool, values.texts_size));
  std::memcpy(copied, values.texts, values.texts_size);
  Texts texts{};
  for (std::size_t row = 0; row < kVariableCount; ++row) {
    // A lasting text outlives the request; the thread's copy does not.
    const char* text = values.lasting[row] != nullptr ? values.lasting[row] : copied + values.offsets[row];
    texts[row] = (values.present & bit_of(row)) != 0 ? text : nullptr;
  }
  set_per_request_texts(texts, fresh);
  const std::size_t age_row = static_cast<std::size_t>(Variable::age);
  if (texts[age_row] == nullptr) {
    texts[age_row] = apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, static_cast<apr_uint64_t>(fresh.age_seconds));
  }
  // In the table's order: with two variables under one name, the last wins.
  auto* entries = reinterpret_cast<apr_table_entry_t*>(apr_table_elts(env)->elts);  // NOLINT
  for (std::size_t row = 0; row < kVariableCount; ++row) {
    if (texts[row] != nullptr && tpl.entry[row] >= 0) {
      entries[tpl.entry[row]].val = const_cast<char*>(texts[row]);  // NOLINT: httpd never writes through them
    }
  }
  set_probe_tail(env, values.tail);
  return env;
}

// The fast path: the snapshot is fresh and the request's environment still
// empty (a new request, not an internal redirect). It becomes a copy of the
// thread's (or of the vhost's template when that cannot be).
bool export_fresh(request_rec* r, const ServerConfig& config, std::uint64_t now_ns) noexcept {
  if (apr_table_elts(r->subprocess_env)->nelts != 0) return false;
  ThreadSlot& slot = this_thread_slots().slot[config.settings.cache_slot % kFreshSlots];
  const FreshRequest* fresh = g_source.compute_fresh(config.settings, now_ns, &g_shared, slot.values);
  if (fresh == nullptr) return false;
  const apr_table_t* made = nullptr;
  if (slot.stamp == fresh->stamp) {
    made = slot.table;
  } else if (slot.values.all_lasting && fresh->stamp != kNoStamp) {
    made = make_thread_env(config.settings, slot, *fresh);
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
[[gnu::noinline]] void export_values(request_rec* r, const ServerSettings& settings, std::uint64_t now_ns) noexcept {
  auto* values = new (apr_palloc(r->pool, sizeof(RequestValues))) RequestValues();
  Transition transition = Transition::none;
  g_source.compute(settings, now_ns, *values, &transition, &g_shared);
  set_request_state(r, state_code(*values));
  Texts texts{};
  for (std::size_t row = 0; row < kVariableCount; ++row) {
    texts[row] = (values->present & bit_of(row)) != 0 ? values->text_of_row(row) : nullptr;
  }
  set_variables(r->subprocess_env, settings, texts);
  set_probe_tail(r->subprocess_env, values->tail);
  if (transition != Transition::none) log_transition(r, transition, settings);
}

}  // namespace

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

void make_env_templates(apr_pool_t* pconf, server_rec* main_server) noexcept {
  ServerConfig* main_config = config_of(main_server);
  for (server_rec* server = main_server; server != nullptr; server = server->next) {
    ServerConfig* config = config_of(server);
    // Most vhosts export under the default names: they share the main
    // server's templates.
    config->env_templates = config != main_config && same_env_names(config->settings, main_config->settings)
                                ? main_config->env_templates
                                : templates_for(pconf, config->settings);
  }
}

// Also runs for the new request of an internal redirect (ErrorDocument, a
// per-directory RewriteRule to a front controller), whose environment httpd
// has renamed to REDIRECT_*: the plain names are exported again there.
// Sub-requests (and DirectoryIndex or FallbackResource, which take one's
// result over) inherit a copy of their parent's environment.
int on_post_read_request(request_rec* r) noexcept {
  const ServerConfig& config = *config_of(r->server);
  if (!config.settings.is_enabled()) return DECLINED;
  const std::uint64_t now_ns = coarse_monotonic_now_ns();
  if (!export_fresh(r, config, now_ns)) export_values(r, config.settings, now_ns);
  return DECLINED;
}

}  // namespace coupecircuit::module::httpd
