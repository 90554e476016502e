// The probes at run time: one thread per probe (at most 16), each running
// its check every period, bounded by its timeout, so that one slow
// dependency never delays another; the status follows HAProxy's rise/fall
// convention, starting unknown.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "checks.hpp"
#include "probe_config.hpp"
#include "probe_results.hpp"

namespace coupecircuit::probes {

// A probe's status from its checks: `rise` successes in a row make it up,
// `fall` failures in a row make it down; unknown until either happens.
struct ProbeState {
  ProbeStatus status = ProbeStatus::unknown;
  std::uint32_t successes = 0;  // in a row
  std::uint32_t failures = 0;   // in a row
  std::int64_t since_wall_s = 0;
  CheckOutcome last;

  // True when the status changed.
  bool record(const CheckOutcome& outcome, std::uint32_t rise, std::uint32_t fall, std::int64_t now_wall_s);
};

std::int64_t wall_now_ms() noexcept;

class ProbeRunner {
 public:
  // `on_change` is called from the probes' threads after a check changed
  // the status, the error or the saturation.
  explicit ProbeRunner(std::function<void()> on_change);
  ProbeRunner(const ProbeRunner&) = delete;
  ProbeRunner& operator=(const ProbeRunner&) = delete;
  ~ProbeRunner();

  // Runs these probes from now on. A probe whose spec is unchanged keeps
  // its thread and its state; the others are told to stop and left to
  // finish their current check (reap() joins them).
  void apply(const std::vector<ProbeSpec>& specs);
  // Joins the threads of probes that were removed and have finished.
  void reap();
  void stop_all();

  [[nodiscard]] std::vector<ProbeResult> results() const;

  // Every probe checked once, concurrently; the status is the check's
  // outcome (no rise/fall): for --once.
  [[nodiscard]] static std::vector<ProbeResult> check_once(const std::vector<ProbeSpec>& specs);

 private:
  struct Worker;
  void run_worker(Worker& worker);

  std::function<void()> on_change_;
  std::vector<std::unique_ptr<Worker>> workers_;   // in the configuration's order
  std::vector<std::unique_ptr<Worker>> retiring_;  // removed, finishing their check
};

}  // namespace coupecircuit::probes
