#include "program.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>
#include <map>
#include <memory>

#include "atomic_file.hpp"
#include "daemon_start.hpp"
#include "log.hpp"
#include "runner.hpp"
#include "unique_fd.hpp"

namespace coupecircuit::probes {
namespace {

// strerror is not thread-safe; this is (strerror_r underneath).
std::string errno_text(int error) { return std::error_code(error, std::generic_category()).message(); }

constexpr int kWatchdogMs = 1000;
constexpr mode_t kResultsMode = 0644;  // read by coupecircuitd (root) and coupecircuitctl

std::string describe(const ProbesConfig& config) {
  std::string text = std::to_string(config.probes.size()) + (config.probes.size() == 1 ? " probe" : " probes");
  for (std::size_t i = 0; i < config.probes.size(); ++i) {
    text += (i == 0 ? " (" : ", ") + config.probes[i].name + " " + std::string(to_string(config.probes[i].type));
  }
  if (!config.probes.empty()) text += ")";
  return text + " -> " + config.results_path;
}

std::uint32_t shortest_period_ms(const ProbesConfig& config) {
  std::uint32_t shortest = kDefaultPeriodMs;
  for (const auto& probe : config.probes) shortest = std::min(shortest, probe.period_ms);
  return shortest;
}

class Program {
 public:
  explicit Program(const ProgramOptions& options) : options_(options) {}

  int run() {
    auto config = options_.load_config();
    if (!config) {
      log::error(log::id::kProbesConfigError, config.error().message);
      return 2;
    }
    config_ = std::move(*config);
    log::set_min_priority(log::priority_from_name(config_.log_level));
    if (auto directory = ensure_directory(parent_directory(config_.results_path), 0755); !directory) {
      log::error(log::id::kProbesCannotRun, "results directory: " + directory.error().message);
      return 1;
    }
    if (options_.once) return run_once();
    if (options_.detach && !options_.detach()) {
      log::error(log::id::kProbesCannotRun, std::string("cannot detach: ") + errno_text(errno));
      return 1;
    }
    if (!open_descriptors()) return 1;
    runner_ = std::make_unique<ProbeRunner>([this] { notify_change(); });
    runner_->apply(config_.probes);
    write_results();
    log::info(log::id::kProbesStarted, "coupecircuit-probes " COUPECIRCUIT_VERSION ": " + describe(config_));
    const int status = loop();
    ::sd_notify(0, "STOPPING=1");
    runner_->stop_all();
    return status;
  }

 private:
  int run_once() {
    const auto results = ProbeRunner::check_once(config_.probes);
    write(results);
    for (const auto& result : results) log_status(result);
    return 0;
  }

  bool open_descriptors() {
    // Before any probe thread starts: the threads inherit the mask.
    signals_.reset(open_stop_signals());
    changes_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!signals_ || !changes_) {
      log::error(log::id::kProbesCannotRun, std::string("signalfd/eventfd: ") + errno_text(errno));
      return false;
    }
    return true;
  }

  void notify_change() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto ignored = ::write(changes_.get(), &one, sizeof one);
  }

  int loop() {
    ::sd_notify(0, "READY=1");
    std::int64_t next_write_ms = wall_now_ms() + shortest_period_ms(config_);
    for (;;) {
      const std::int64_t wait_ms = std::clamp<std::int64_t>(next_write_ms - wall_now_ms(), 0, kWatchdogMs);
      pollfd fds[2] = {{signals_.get(), POLLIN, 0}, {changes_.get(), POLLIN, 0}};
      if (::poll(fds, 2, static_cast<int>(wait_ms)) < 0 && errno != EINTR) {
        log::error(log::id::kProbesCannotRun, std::string("poll failed: ") + errno_text(errno));
        return 1;
      }
      if ((fds[0].revents & POLLIN) != 0 && !handle_signals()) return 0;
      bool due = wall_now_ms() >= next_write_ms;
      if ((fds[1].revents & POLLIN) != 0) {
        std::uint64_t count = 0;
        [[maybe_unused]] const auto ignored = ::read(changes_.get(), &count, sizeof count);
        due = true;
      }
      if (due) {
        write_results();
        next_write_ms = wall_now_ms() + shortest_period_ms(config_);
      }
      runner_->reap();
      ::sd_notify(0, "WATCHDOG=1");
    }
  }

  bool handle_signals() {
    const std::uint32_t stop = read_signals(signals_.get(), [this] { reload(); });
    if (stop == 0) return true;
    log::info(log::id::kProbesStopping, std::string("stopping on SIG") + ::sigabbrev_np(static_cast<int>(stop)));
    return false;
  }

  void reload() {
    ::sd_notify(0, "RELOADING=1");
    auto config = options_.load_config();
    if (!config) {
      log::error(log::id::kProbesReloadFailed, "reload failed, keeping the running probes: " + config.error().message);
      ::sd_notify(0, "READY=1");
      return;
    }
    if (auto directory = ensure_directory(parent_directory(config->results_path), 0755); !directory) {
      log::error(log::id::kProbesReloadFailed,
                 "reload failed, keeping the running probes: results directory: " + directory.error().message);
      ::sd_notify(0, "READY=1");
      return;
    }
    config_ = std::move(*config);
    log::set_min_priority(log::priority_from_name(config_.log_level));
    runner_->apply(config_.probes);
    last_status_.clear();
    write_results();
    log::info(log::id::kProbesReloaded, "configuration reloaded: " + describe(config_));
    ::sd_notify(0, "READY=1");
  }

  void log_status(const ProbeResult& result) {
    const auto previous = last_status_.find(result.name);
    if (previous != last_status_.end() && previous->second == result.status) return;
    last_status_[result.name] = result.status;
    if (result.status == ProbeStatus::up) {
      log::notice(log::id::kProbeUp, "probe " + result.name + " is up");
    } else if (result.status == ProbeStatus::down) {
      log::warning(log::id::kProbeDown, "probe " + result.name + " is down: " + result.error);
    }
  }

  void write_results() {
    const auto results = runner_->results();
    for (const auto& result : results) log_status(result);
    write(results);
  }

  void write(const std::vector<ProbeResult>& probes) {
    ProbeResults results;
    results.written_wall_ms = wall_now_ms();
    results.pid = ::getpid();
    results.stale_after_ms = stale_after_ms(config_);
    results.probes = probes;
    const std::string text = render_probe_results(results);
    auto written = [&]() -> Result<void> {
      auto file = AtomicFile::create(config_.results_path, kResultsMode);
      if (!file) return file.error();
      if (auto done = file->write_all(text); !done) return done;
      return file->commit();
    }();
    if (!written) {
      if (!write_failed_) log::error(log::id::kProbeResultsError, "results file " + config_.results_path + ": " + written.error().message);
      write_failed_ = true;
    } else if (write_failed_) {
      log::notice(log::id::kProbeResultsRecovered, "results file " + config_.results_path + " written again");
      write_failed_ = false;
    }
  }

  const ProgramOptions& options_;
  ProbesConfig config_;
  std::unique_ptr<ProbeRunner> runner_;
  UniqueFd signals_;
  UniqueFd changes_;
  std::map<std::string, ProbeStatus> last_status_;
  bool write_failed_ = false;
};

}  // namespace

int run_probes_program(const ProgramOptions& options) {
  log::set_program_name("coupecircuit-probes");
  Program program(options);
  return program.run();
}

}  // namespace coupecircuit::probes
