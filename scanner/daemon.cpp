#include "daemon.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "agent.hpp"
#include "atomic_file.hpp"
#include "cluster_node.hpp"
#include "daemon_start.hpp"
#include "decimal.hpp"
#include "file_identity.hpp"
#include "history.hpp"
#include "load_signals.hpp"
#include "log.hpp"
#include "probe_reader.hpp"
#include "redis_store.hpp"
#include "snapshot.hpp"
#include "state_file.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {
namespace {

constexpr std::uint64_t kMillisecond = 1'000'000ULL;
constexpr std::uint64_t kTickNs = 1000 * kMillisecond;         // heartbeat, load signals, ageing
constexpr std::uint64_t kMinPublishGapNs = 50 * kMillisecond;  // coalesce bursts of session writes
// Once inotify has events, they are read this much later: under a steady
// stream of session writes one wake-up handles many of them.
constexpr std::uint64_t kInotifyGatherNs = 20 * kMillisecond;
constexpr std::uint32_t kSessionMask =
    IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;
// The state directory itself may be moved or removed (and a new one made in
// its place): its watch is then re-created on the path.
constexpr std::uint32_t kStateMask =
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF;
constexpr std::uint32_t kWatchGone = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED;
// Polled descriptors: signals, inotify, agent listener, Redis store changes,
// cluster link changes.
constexpr nfds_t kPollCount = 5;

std::string base_name_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Everything a configuration holds open, built whole before it replaces the
// running one: a reload is all or nothing.
struct Resources {
  DaemonConfig config;
  std::optional<snapshot::SnapshotWriter> writer;      // set: a new snapshot file
  std::optional<std::optional<AgentListener>> agent;   // set: a new listener (or none)
  int state_watch = -1;
};

class Daemon {
 public:
  explicit Daemon(DaemonRunOptions options) : options_(std::move(options)) {}
  int run();

 private:
  int start();  // exit status, or -1 to go on into the loop
  int loop();  // exit status
  [[nodiscard]] Result<Resources> prepare(const DaemonConfig& loaded, bool at_start);
  [[nodiscard]] Result<void> prepare_agent(const AgentSettings& settings, bool at_start, Resources& resources);
  void commit(Resources&& resources);
  void configure_store();
  void wait_first_store_pass();
  void publish_store(snapshot::Payload& payload, std::int64_t now_s, SessionCounts& counts) const;
  void load_state(bool at_start);
  void check_state_file();
  void full_scan();
  void rewatch_sessions();
  [[nodiscard]] int watch_state_directory(const std::string& state_path) const;
  void handle_state_event(const inotify_event& event, std::string_view name);
  void drain_inotify();
  void handle_inotify_event(const inotify_event& event);
  [[nodiscard]] bool handle_ready(const pollfd (&fds)[kPollCount]);
  void run_due_work();
  bool handle_signals();  // false: stop
  void reload();
  void refresh_load_signals();
  void publish(bool force);
  void check_snapshot_file();
  void tick();
  [[nodiscard]] int poll_timeout_ms(std::uint64_t now) const;

  DaemonRunOptions options_;
  DaemonConfig config_;
  std::optional<SessionScanner> scanner_;
  std::unique_ptr<RedisSessionStore> redis_;  // save_handler redis or rediscluster, else null
  ClusterNode cluster_;                       // [cluster]: the shared control state
  snapshot::SnapshotWriter writer_;
  snapshot::Payload published_{};
  bool has_published_ = false;
  std::uint64_t generation_ = 0;
  std::uint64_t snapshot_sequence_ = 0;

  ControlState state_;
  bool state_invalid_ = false;
  FileIdentity state_identity_;
  LoadSignals signals_;
  bool scan_failed_ = false;
  std::int64_t last_scan_wall_ns_ = 0;
  std::uint64_t last_scan_duration_us_ = 0;

  UniqueFd inotify_;
  UniqueFd signals_fd_;
  std::optional<AgentListener> agent_;
  std::unordered_map<int, std::string> session_watches_;  // wd -> directory relative to session_dir
  int state_watch_ = -1;
  bool rescan_due_ = false;
  bool content_dirty_ = false;
  std::uint64_t last_publish_ns_ = 0;
  std::uint64_t next_tick_ = 0;
  std::uint64_t next_rescan_ = 0;
  std::uint64_t inotify_pending_since_ = 0;  // 0: not waiting to read events
  history::Recorder history_;  // the status page's last hour, in a file of its own
  ProbeResultsReader probes_;   // what coupecircuit-probes hands over
};

// The configured session directory may itself be a symbolic link (the
// command-line check follows it too): it is resolved at each (re)load, and
// the scanner never follows a link inside it.
std::string resolve_top_level(const std::string& directory) {
  char* real = ::realpath(directory.c_str(), nullptr);
  if (real == nullptr) return directory;  // the scan reports why it cannot be read
  std::string resolved(real);
  std::free(real);  // NOLINT(cppcoreguidelines-no-malloc)
  return resolved;
}

Result<void> Daemon::prepare_agent(const AgentSettings& settings, bool at_start, Resources& resources) {
  const bool changed = settings.port != config_.agent.port || settings.bind != config_.agent.bind;
  if (options_.once || (!at_start && !changed && (agent_ || settings.port == 0))) return {};  // keep the running one
  if (settings.port == 0) {
    resources.agent.emplace();  // no listener
    return {};
  }
  auto listener = AgentListener::open(settings);
  if (!listener && listener.error().code == EADDRINUSE && agent_ && settings.port == config_.agent.port) {
    // Only the address changed, on the same port: the running listener is in
    // the way. Close it, try, and put it back if the new one cannot listen.
    agent_.reset();
    listener = AgentListener::open(settings);
    if (!listener) {
      auto back = AgentListener::open(config_.agent);
      if (back) agent_.emplace(std::move(*back));
    }
  }
  if (listener) {
    resources.agent.emplace(std::move(*listener));
    return {};
  }
  // Unchanged settings whose listener could not be opened before either (e.g.
  // no network under the shipped unit): nothing to keep, nothing to fail.
  if (at_start || !changed) {
    log::error(log::id::kAgentError, listener.error().message + " (running without the agent)");
    return {};
  }
  return make_error(listener.error().message);
}

Result<Resources> Daemon::prepare(const DaemonConfig& loaded, bool at_start) {
  Resources resources;
  resources.config = loaded;
  DaemonConfig& config = resources.config;
  config.scan.session_dir = resolve_top_level(config.scan.session_dir);

  const std::string state_directory = parent_directory(config.state_path);
  if (auto made = ensure_directory(state_directory, 0755); !made) return make_error("state: " + made.error().message);
  if (auto safe = check_private_directory(state_directory); !safe) return make_error("state: " + safe.error().message);

  if (at_start || config.snapshot_path != config_.snapshot_path) {
    auto writer = snapshot::SnapshotWriter::open(config.snapshot_path);
    if (!writer) return make_error("cannot open snapshot: " + writer.error().message);
    resources.writer.emplace(std::move(*writer));
  }
  if (auto agent = prepare_agent(config.agent, at_start, resources); !agent) return agent.error();
  resources.state_watch = watch_state_directory(config.state_path);
  return resources;
}

// Nothing here can fail: the running configuration is replaced as a whole.
void Daemon::commit(Resources&& resources) {
  if (resources.writer) {
    if (writer_.is_valid()) writer_.mark_superseded();
    writer_ = std::move(*resources.writer);
    if (!writer_.replaced_because().empty()) {
      log::warning(log::id::kSnapshotReplaced,
                   "snapshot file " + writer_.path() + " replaced by a new one: " + writer_.replaced_because());
    }
  }
  if (resources.agent) {
    agent_ = std::move(*resources.agent);
    if (agent_) {
      log::info(log::id::kAgentListening, "HAProxy agent on " + resources.config.agent.bind + ":" +
                                              std::to_string(resources.config.agent.port));
    }
  }
  // Watching the same directory again gives the same descriptor.
  if (state_watch_ >= 0 && state_watch_ != resources.state_watch) ::inotify_rm_watch(inotify_.get(), state_watch_);
  state_watch_ = resources.state_watch;
  config_ = std::move(resources.config);
  log::set_min_priority(log::priority_from_name(config_.log_level));
  if (scanner_) {
    scanner_->reconfigure(config_.scan);
  } else {
    scanner_.emplace(config_.scan);
  }
  cluster_.attach_store(nullptr);  // the store may be replaced
  LeaseOptions lease;
  lease.enabled = config_.cluster.enabled() && config_.save_handler != SaveHandler::files;
  lease.stale_after_ms = (config_.cluster.counts_stale_after_s != 0 ? config_.cluster.counts_stale_after_s
                                                                     : 3 * config_.rescan_interval_s) * 1000;
  cluster_.configure(config_.cluster, config_.state_path, !options_.once, lease);
  configure_store();
  cluster_.attach_store(redis_.get());
  probes_.configure(config_.probes_configured, config_.probes_results_path);
}

// Sessions in Redis: a store with its own worker thread, kept across a
// reload that does not change it.
void Daemon::configure_store() {
  if (config_.save_handler == SaveHandler::files) {
    redis_.reset();
    return;
  }
  RedisStoreOptions options;
  options.save_path = config_.store;
  options.auth_file_password = config_.auth_password;
  options.gc_maxlifetime_s = config_.gc_maxlifetime_s;
  options.active_minutes = config_.scan.active_minutes;
  options.max_read_bytes = config_.scan.max_read_bytes;
  options.read_chunk_bytes = config_.scan.read_chunk_bytes;
  options.rule = config_.scan.rule;
  options.rescan_interval_s = config_.rescan_interval_s;
  if (redis_ && redis_->options() == options) {
    redis_->request_pass();
    return;
  }
  redis_ = std::make_unique<RedisSessionStore>(std::move(options));
  redis_->set_counting(!cluster_.counts_by_lease());  // in a cluster: the lease holder only
  if (!options_.once) redis_->start();
}

// The first snapshot carries the first pass's counts when Redis answers
// quickly; a slow or absent server only delays it by this much.
void Daemon::wait_first_store_pass() {
  if (!redis_ || cluster_.counts_by_lease()) return;
  if (options_.once) {
    redis_->run_pass_now();
    return;
  }
  pollfd fd{redis_->change_fd(), POLLIN, 0};
  ::poll(&fd, 1, 3000);
  redis_->consume_change();
}

void Daemon::publish_store(snapshot::Payload& payload, std::int64_t now_s, SessionCounts& counts) const {
  const RedisStoreStatus store = redis_->status(now_s);
  counts = store.counts;
  payload.store_kind = config_.save_handler == SaveHandler::rediscluster ? snapshot::kStoreRedisCluster : snapshot::kStoreRedis;
  payload.store_masters_reached = store.masters_reached;
  payload.store_masters_total = store.masters_total;
  payload.keys_seen = counts.files_seen;
  counts.files_seen = 0;
  if (store.notifications) payload.store_flags |= snapshot::kStoreNotifications;
  payload.last_scan_wall_ns = store.last_good_pass_wall_ns;
  payload.last_scan_duration_us = store.last_pass_duration_us;
  payload.store_values_read = store.keys_read_last_pass;
  payload.store_bytes_read = store.bytes_read_last_pass;
  if (!store.available) {
    payload.flags |= snapshot::kFlagSessionsUnavailable;
    payload.sessions_unavailable_since_wall_s = store.unavailable_since_wall_s;
  }
  cluster_.apply_lease(store, payload, counts);  // in a cluster: the lease holder's counts
}

void Daemon::load_state(bool at_start) {
  state_identity_ = identity_of(config_.state_path);  // before reading: a later change is read again
  auto loaded = load_state_file(config_.state_path);
  if (!loaded) {
    // Keep the last good state (at start: the safe default, no cut) and say
    // so loudly; the snapshot carries a flag that coupecircuitctl reports.
    log::error(log::id::kStateInvalid, loaded.error().message +
                                           (at_start ? " (starting without a manual cut or overrides)"
                                                     : " (keeping the last good state)"));
    state_invalid_ = true;
    return;
  }
  if (!at_start && loaded->cut_active != state_.cut_active) {
    log::notice(log::id::kCutChanged, std::string("manual cut ") + (loaded->cut_active ? "on" : "off") +
                                          (loaded->cut_reason.empty() ? "" : ": " + loaded->cut_reason));
  }
  const bool changed = !at_start && *loaded != state_;
  state_ = std::move(*loaded);
  state_invalid_ = false;
  cluster_.local_state_read(state_, changed);
  if (at_start) {
    log::info(log::id::kStateLoaded, "state " + config_.state_path + ": cut " + (state_.cut_active ? "on" : "off") +
                                         ", " + std::to_string(state_.vhosts.size()) + " vhost override(s)");
  }
}

void Daemon::full_scan() {
  if (redis_) {  // the store's worker makes its own passes
    rescan_due_ = false;
    return;
  }
  auto statistics = scanner_->full_scan();
  rescan_due_ = false;
  if (!statistics) {
    if (!scan_failed_) log::error(log::id::kScanDirError, statistics.error().message);
    scan_failed_ = true;
    return;
  }
  if (scan_failed_) log::notice(log::id::kScanDirRecovered, "session directory readable again");
  scan_failed_ = false;
  last_scan_wall_ns_ = snapshot::realtime_now_ns();
  last_scan_duration_us_ = statistics->duration_us;
  log::debug(log::id::kScanSummary, "full scan: " + std::to_string(statistics->files_seen) + " files, " +
                                        std::to_string(statistics->files_read) + " read, " +
                                        std::to_string(statistics->files_deferred) + " inactive not read, " +
                                        std::to_string(statistics->skipped) + " skipped, " +
                                        std::to_string(statistics->unreadable) + " unreadable, " +
                                        std::to_string(statistics->duration_us) + " us");
  rewatch_sessions();
}

void Daemon::rewatch_sessions() {
  if (!inotify_) return;
  for (const auto& [wd, directory] : session_watches_) ::inotify_rm_watch(inotify_.get(), wd);
  session_watches_.clear();
  for (const auto& relative : scanner_->directories()) {
    const std::string path = relative.empty() ? config_.scan.session_dir : config_.scan.session_dir + "/" + relative;
    const int wd = ::inotify_add_watch(inotify_.get(), path.c_str(), kSessionMask | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK);
    if (wd < 0) {
      log::warning(log::id::kInotifyUnavailable, "cannot watch " + path + ": " + std::strerror(errno) +
                                                     " (changes are seen at the next full rescan)");
      continue;
    }
    session_watches_[wd] = relative;
  }
}

// Returns the watch descriptor, or -1: the state file is then read again
// by the periodic pass whenever its identity changes.
int Daemon::watch_state_directory(const std::string& state_path) const {
  if (!inotify_) return -1;
  const std::string directory = parent_directory(state_path);
  const int wd = ::inotify_add_watch(inotify_.get(), directory.c_str(), kStateMask | IN_ONLYDIR);
  if (wd < 0) {
    log::warning(log::id::kInotifyUnavailable, "cannot watch " + directory + ": " + std::strerror(errno) +
                                                   " (state changes are seen within a second)");
  }
  return wd;
}

// The periodic pass: a state file whose identity changed is read again
// (missed or impossible inotify events, a state directory replaced), and a
// lost watch of the state directory is re-created once the path exists again.
void Daemon::check_state_file() {
  if (inotify_ && state_watch_ < 0 && ::access(parent_directory(config_.state_path).c_str(), F_OK) == 0) {
    state_watch_ = watch_state_directory(config_.state_path);
    if (state_watch_ >= 0) {
      log::info(log::id::kStateWatch, "watching the state directory " + parent_directory(config_.state_path) + " again");
    }
  }
  if (identity_of(config_.state_path) == state_identity_) return;
  load_state(false);
  content_dirty_ = true;
  last_publish_ns_ = 0;  // control changes go out at once
}

void Daemon::handle_state_event(const inotify_event& event, std::string_view name) {
  if ((event.mask & kWatchGone) != 0) {
    // The directory was moved or removed: what is at the path now is another
    // directory, or nothing yet. Watch the path again (or, when nothing is
    // there yet, let the periodic pass do it) and re-read the file.
    if ((event.mask & IN_IGNORED) == 0) ::inotify_rm_watch(inotify_.get(), state_watch_);
    state_watch_ = -1;
    check_state_file();
    return;
  }
  if (name != base_name_of(config_.state_path)) return;
  load_state(false);
  content_dirty_ = true;
  last_publish_ns_ = 0;  // control changes go out at once
}

void Daemon::drain_inotify() {
  alignas(inotify_event) char buffer[64 * 1024];
  for (;;) {
    const ssize_t length = ::read(inotify_.get(), buffer, sizeof buffer);
    if (length <= 0) return;  // EAGAIN: drained
    for (ssize_t offset = 0; offset < length;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);  // NOLINT
      offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      handle_inotify_event(*event);
    }
  }
}

void Daemon::handle_inotify_event(const inotify_event& event) {
  if ((event.mask & IN_Q_OVERFLOW) != 0) {
    log::warning(log::id::kInotifyOverflow, "inotify queue overflow: full rescan");
    rescan_due_ = true;
    load_state(false);
    return;
  }
  const std::string_view name = event.len > 0 ? std::string_view(event.name) : std::string_view{};
  if (event.wd == state_watch_) {
    handle_state_event(event, name);
    return;
  }
  auto watch = session_watches_.find(event.wd);
  if (watch == session_watches_.end()) return;
  if ((event.mask & kWatchGone) != 0) {
    rescan_due_ = true;
    return;
  }
  if ((event.mask & IN_ISDIR) != 0) return;
  if ((event.mask & (IN_DELETE | IN_MOVED_FROM)) != 0) {
    scanner_->file_removed(watch->second, name);
  } else {
    scanner_->file_changed(watch->second, name);
  }
  content_dirty_ = true;
}

bool Daemon::handle_signals() {
  const std::uint32_t stop = read_signals(signals_fd_.get(), [this] { reload(); });
  if (stop == 0) return true;
  log::info(log::id::kStopping, std::string("stopping on ") + ::strsignal(static_cast<int>(stop)));
  return false;
}

void Daemon::reload() {
  ::sd_notify(0, "RELOADING=1");
  auto config = options_.load_config();
  auto resources = config ? prepare(*config, false) : Result<Resources>(config.error());
  if (!resources) {
    log::error(log::id::kReloadFailed,
               "reload failed, keeping the running configuration: " + resources.error().message);
  } else {
    commit(std::move(*resources));
    load_state(false);
    full_scan();
    publish(true);
    log::info(log::id::kReloaded, "configuration reloaded");
  }
  ::sd_notify(0, "READY=1");
}

void Daemon::refresh_load_signals() {
  auto signals = read_load_signals();
  if (!signals) {
    log::warning(log::id::kLoadSignalError, signals.error().message);
    return;
  }
  signals_ = *signals;
}

void Daemon::publish(bool force) {
  content_dirty_ = false;
  snapshot::Payload payload{};
  payload.writer_generation = generation_;
  payload.writer_pid = static_cast<std::uint32_t>(::getpid());
  const std::int64_t now_s = snapshot::realtime_now_ns() / 1'000'000'000LL;
  SessionCounts counts;
  payload.last_scan_wall_ns = last_scan_wall_ns_;
  payload.last_scan_duration_us = last_scan_duration_us_;
  if (redis_) {
    publish_store(payload, now_s, counts);
  } else {
    counts = scanner_->counts(now_s);
  }
  payload.sessions_active = counts.active_authenticated();
  payload.files_seen = counts.files_seen;
  for (std::size_t i = 0; i < kSessionClassCount; ++i) {
    payload.count_active[i] = counts.active[i];
    payload.count_inactive[i] = counts.inactive[i];
  }
  payload.active_minutes = config_.scan.active_minutes;
  payload.count_inactive_unread = static_cast<std::uint32_t>(std::min<std::uint64_t>(counts.inactive_unread, UINT32_MAX));
  render_unsigned(payload.sessions_active_text, sizeof payload.sessions_active_text, payload.sessions_active);
  for (std::size_t i = 0; i < 3; ++i) {
    payload.load_centi[i] = signals_.load_centi[i];
    payload.psi_some_avg10_centi[i] = signals_.psi_some_avg10_centi[i];
  }
  payload.mem_available_centi_pct = signals_.mem_available_centi_pct;
  payload.swap_used_centi_pct = signals_.swap_used_centi_pct;
  render_centi(payload.load1_text, sizeof payload.load1_text, signals_.load_centi[0]);
  if (signals_.psi_available) payload.flags |= snapshot::kFlagPsiAvailable;
  if (scan_failed_) payload.flags |= snapshot::kFlagScanFailed;
  if (state_invalid_) payload.flags |= snapshot::kFlagStateInvalid;
  cluster_.fill(state_, payload);  // the local state, under the cluster's when in one
  probes_.fill(payload, snapshot::realtime_now_ns() / 1'000'000LL);

  payload.snapshot_sequence = snapshot_sequence_;
  if (!force && has_published_ && std::memcmp(&payload, &published_, sizeof payload) == 0) {
    writer_.heartbeat();
    cluster_.published(published_);
    return;
  }
  payload.snapshot_sequence = ++snapshot_sequence_;
  writer_.publish(payload);
  published_ = payload;
  has_published_ = true;
  last_publish_ns_ = snapshot::monotonic_now_ns();
  cluster_.published(published_);
}

void Daemon::check_snapshot_file() {
  if (!writer_.needs_reopen()) return;
  auto writer = snapshot::SnapshotWriter::open(config_.snapshot_path);
  if (!writer) {
    log::error(log::id::kSnapshotError, "snapshot file damaged or removed, cannot re-create it: " + writer.error().message);
    return;
  }
  writer_.mark_superseded();
  writer_ = std::move(*writer);
  log::warning(log::id::kSnapshotReopened, "snapshot file " + config_.snapshot_path + " was removed or damaged: re-created");
  publish(true);
}

int Daemon::start() {
  auto config = options_.load_config();
  if (!config) {
    log::error(log::id::kConfigError, config.error().message);
    return 2;
  }
  if (!options_.once) {
    inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!inotify_) {
      log::warning(log::id::kInotifyUnavailable, std::string("inotify unavailable: ") + std::strerror(errno) +
                                                     " (relying on periodic rescans)");
    }
  }
  auto resources = prepare(*config, true);
  if (!resources) {
    log::error(log::id::kStartFailed, resources.error().message);
    return 1;
  }
  // Everything that can be refused was checked: now the process may leave
  // its terminal (the parent exits 0 only from here).
  if (options_.detach && !options_.detach()) {
    log::error(log::id::kStartFailed, std::string("cannot detach: ") + std::strerror(errno));
    return 1;
  }
  generation_ = snapshot::new_writer_generation();
  commit(std::move(*resources));
  load_state(true);
  refresh_load_signals();
  if (!options_.once) signals_fd_.reset(open_stop_signals());
  full_scan();
  wait_first_store_pass();
  probes_.refresh(snapshot::realtime_now_ns() / 1'000'000LL);
  publish(true);
  const std::string source = redis_ ? "sessions in " + std::string(to_string(config_.save_handler)) + " (" +
                                          std::to_string(published_.store_masters_reached) + "/" +
                                          std::to_string(published_.store_masters_total) + " masters, " +
                                          std::to_string(published_.keys_seen) + " keys)"
                                    : config_.scan.session_dir + " (" + std::to_string(scanner_->tracked_files()) +
                                          " session files)";
  log::info(log::id::kStarted, "coupecircuitd " COUPECIRCUIT_VERSION ": " + source + " -> " + config_.snapshot_path + ", " +
                                   std::to_string(published_.sessions_active) + " active authenticated");
  if (options_.once) return scan_failed_ || !snapshot::sessions_known(published_) ? 1 : 0;
  return -1;
}

int Daemon::poll_timeout_ms(std::uint64_t now) const {
  std::uint64_t deadline = std::min(next_tick_, next_rescan_);
  if (content_dirty_) deadline = std::min(deadline, last_publish_ns_ + kMinPublishGapNs);
  if (inotify_pending_since_ != 0) deadline = std::min(deadline, inotify_pending_since_ + kInotifyGatherNs);
  return deadline <= now ? 0 : static_cast<int>((deadline - now + kMillisecond - 1) / kMillisecond);
}

// Once a second: the snapshot file, load signals, the state file, ageing,
// the history and the watchdog.
void Daemon::tick() {
  check_snapshot_file();
  refresh_load_signals();
  check_state_file();
  probes_.refresh(snapshot::realtime_now_ns() / 1'000'000LL);
  publish(false);  // also ages sessions out of the active window; probe results too
  const std::string history_error =
      history_.record(config_.snapshot_path, published_, snapshot::realtime_now_ns() / 1'000'000'000LL);
  if (!history_error.empty()) log::warning(log::id::kHistoryError, history_error);
  // Healthy: the loop runs and the snapshot is being published.
  ::sd_notify(0, "WATCHDOG=1");
}

// What poll() reported; false: stop.
bool Daemon::handle_ready(const pollfd (&fds)[kPollCount]) {
  if ((fds[0].revents & POLLIN) != 0 && !handle_signals()) return false;
  if (redis_ && (fds[3].revents & POLLIN) != 0) {
    redis_->consume_change();
    content_dirty_ = true;
  }
  if (cluster_.joined() && (fds[4].revents & POLLIN) != 0 && cluster_.handle_change()) {
    content_dirty_ = true;
    last_publish_ns_ = 0;  // control changes go out at once
  }
  if ((fds[1].revents & POLLIN) != 0) inotify_pending_since_ = snapshot::monotonic_now_ns();
  if (inotify_pending_since_ != 0 && snapshot::monotonic_now_ns() >= inotify_pending_since_ + kInotifyGatherNs) {
    inotify_pending_since_ = 0;
    drain_inotify();
  }
  if (agent_ && (fds[2].revents & POLLIN) != 0) {
    if (content_dirty_) publish(false);  // answer from current counts
    agent_->serve(agent_answer(published_, config_.agent));
  }
  return true;
}

// Full rescans, the once-a-second tick, and coalesced publishing.
void Daemon::run_due_work() {
  const std::uint64_t now = snapshot::monotonic_now_ns();
  if (rescan_due_ || now >= next_rescan_) {
    full_scan();
    next_rescan_ = now + config_.rescan_interval_s * 1000 * kMillisecond;
    content_dirty_ = true;
  }
  if (now >= next_tick_) {
    tick();
    next_tick_ = now + kTickNs;
  } else if (content_dirty_ && now >= last_publish_ns_ + kMinPublishGapNs) {
    publish(false);
  }
}

int Daemon::loop() {
  ::sd_notify(0, "READY=1");
  next_tick_ = snapshot::monotonic_now_ns() + kTickNs;
  next_rescan_ = snapshot::monotonic_now_ns() + config_.rescan_interval_s * 1000 * kMillisecond;
  for (;;) {
    // While gathering, inotify is left out of the poll set.
    const int inotify_fd = inotify_ && inotify_pending_since_ == 0 ? inotify_.get() : -1;
    pollfd fds[kPollCount] = {{signals_fd_.get(), POLLIN, 0},
                              {inotify_fd, POLLIN, 0},
                              {agent_ ? agent_->fd() : -1, POLLIN, 0},
                              {redis_ ? redis_->change_fd() : -1, POLLIN, 0},
                              {cluster_.change_fd(), POLLIN, 0}};
    if (::poll(fds, kPollCount, poll_timeout_ms(snapshot::monotonic_now_ns())) < 0 && errno != EINTR) {
      log::error(log::id::kLoopFailed, std::string("poll failed: ") + std::strerror(errno));
      return 1;
    }
    if (!handle_ready(fds)) break;
    run_due_work();
  }
  ::sd_notify(0, "STOPPING=1");
  return 0;
}

int Daemon::run() {
  const int status = start();
  return status >= 0 ? status : loop();
}

}  // namespace

int run_daemon(const DaemonRunOptions& options) {
  log::set_program_name("coupecircuitd");
  Daemon daemon(options);
  return daemon.run();
}

}  // namespace coupecircuit
