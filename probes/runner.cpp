#include "runner.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>

namespace coupecircuit::probes {

std::int64_t monotonic_us() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return std::int64_t{now.tv_sec} * 1'000'000 + now.tv_nsec / 1000;
}

std::int64_t wall_now_ms() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return std::int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1'000'000;
}

std::unique_ptr<Check> make_check(const ProbeSpec& spec) {
  switch (spec.type) {
    case ProbeType::http:
      return make_http_check(spec);
    case ProbeType::tcp:
      return make_tcp_check(spec);
    case ProbeType::redis:
      return make_redis_check(spec);
    case ProbeType::postgresql:
      return make_postgresql_check(spec);
  }
  return nullptr;
}

bool ProbeState::record(const CheckOutcome& outcome, std::uint32_t rise, std::uint32_t fall, std::int64_t now_wall_s) {
  const bool details_changed = outcome.error != last.error || outcome.saturation_pct != last.saturation_pct;
  last = outcome;
  if (outcome.up) {
    failures = 0;
    successes = std::min<std::uint32_t>(successes + 1, kMaxRiseFall);
  } else {
    successes = 0;
    failures = std::min<std::uint32_t>(failures + 1, kMaxRiseFall);
  }
  ProbeStatus next = status;
  if (outcome.up && successes >= rise) next = ProbeStatus::up;
  if (!outcome.up && failures >= fall) next = ProbeStatus::down;
  if (next == status) return details_changed;
  status = next;
  since_wall_s = now_wall_s;
  return true;
}

namespace {

ProbeResult to_result(const ProbeSpec& spec, const ProbeState& state) {
  ProbeResult result;
  result.name = spec.name;
  result.type = spec.type;
  result.critical = spec.critical;
  result.status = state.status;
  result.since_wall_s = state.since_wall_s;
  result.latency_us = state.last.latency_us;
  result.saturation_pct = state.last.saturation_pct;
  result.error = trim_probe_error(state.last.error);
  return result;
}

}  // namespace

struct ProbeRunner::Worker {
  ProbeSpec spec;
  std::unique_ptr<Check> check;
  std::atomic<bool> stop{false};
  std::atomic<bool> finished{false};
  std::mutex mutex;  // state, and the wait between checks
  std::condition_variable wake;
  ProbeState state;
  std::thread thread;
};

ProbeRunner::ProbeRunner(std::function<void()> on_change) : on_change_(std::move(on_change)) {}

ProbeRunner::~ProbeRunner() { stop_all(); }

void ProbeRunner::run_worker(Worker& worker) {
  using Clock = std::chrono::steady_clock;
  auto next = Clock::now();
  while (!worker.stop.load()) {
    CheckOutcome outcome = worker.check->run(worker.stop);
    if (worker.stop.load()) break;
    bool changed = false;
    {
      std::lock_guard lock(worker.mutex);
      changed = worker.state.record(outcome, worker.spec.rise, worker.spec.fall, wall_now_ms() / 1000);
    }
    if (changed) on_change_();
    // The next check one period after the start of this one, never a burst
    // to catch up after a slow check.
    next = std::max(next + std::chrono::milliseconds(worker.spec.period_ms), Clock::now());
    std::unique_lock lock(worker.mutex);
    worker.wake.wait_until(lock, next, [&] { return worker.stop.load(); });
  }
  worker.finished.store(true);
}

void ProbeRunner::apply(const std::vector<ProbeSpec>& specs) {
  std::vector<std::unique_ptr<Worker>> kept;
  for (const auto& spec : specs) {
    auto same = std::find_if(workers_.begin(), workers_.end(),
                             [&](const std::unique_ptr<Worker>& worker) { return worker && worker->spec == spec; });
    if (same != workers_.end()) {
      kept.push_back(std::move(*same));
      continue;
    }
    auto worker = std::make_unique<Worker>();
    worker->spec = spec;
    worker->check = make_check(spec);
    worker->state.since_wall_s = wall_now_ms() / 1000;
    kept.push_back(std::move(worker));
  }
  for (auto& old : workers_) {
    if (!old) continue;
    {
      std::lock_guard lock(old->mutex);
      old->stop.store(true);
    }
    old->wake.notify_all();
    retiring_.push_back(std::move(old));
  }
  workers_ = std::move(kept);
  for (auto& worker : workers_) {
    if (!worker->thread.joinable()) {
      Worker* raw = worker.get();
      worker->thread = std::thread([this, raw] { run_worker(*raw); });
    }
  }
}

void ProbeRunner::reap() {
  std::erase_if(retiring_, [](const std::unique_ptr<Worker>& worker) {
    if (!worker->finished.load()) return false;
    worker->thread.join();
    return true;
  });
}

void ProbeRunner::stop_all() {
  apply({});
  for (auto& worker : retiring_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
  retiring_.clear();
}

std::vector<ProbeResult> ProbeRunner::results() const {
  std::vector<ProbeResult> results;
  results.reserve(workers_.size());
  for (const auto& worker : workers_) {
    std::lock_guard lock(worker->mutex);
    results.push_back(to_result(worker->spec, worker->state));
  }
  return results;
}

std::vector<ProbeResult> ProbeRunner::check_once(const std::vector<ProbeSpec>& specs) {
  std::vector<ProbeState> states(specs.size());
  std::vector<std::thread> threads;
  const std::atomic<bool> never{false};
  for (std::size_t i = 0; i < specs.size(); ++i) {
    threads.emplace_back([&, i] {
      auto check = make_check(specs[i]);
      states[i].record(check->run(never), 1, 1, wall_now_ms() / 1000);
    });
  }
  for (auto& thread : threads) thread.join();
  std::vector<ProbeResult> results;
  for (std::size_t i = 0; i < specs.size(); ++i) results.push_back(to_result(specs[i], states[i]));
  return results;
}

}  // namespace coupecircuit::probes
