// One check of one probe: connect, ask, judge, within the probe's timeout.
// Each check is a blocking call made from the probe's own thread
// (probes/runner.*), so that a slow dependency delays nothing else.
//
// Error texts are short and fixed by the check (a category and, at most, a
// status or an errno text): never the configuration's secrets, never text
// the checked server chose.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "probe_config.hpp"

namespace coupecircuit::probes {

inline constexpr std::size_t kMaxBodyBytes = std::size_t{64} * 1024;  // read of an HTTP body, then the transfer stops

struct CheckOutcome {
  bool up = false;
  std::uint32_t latency_us = 0;  // of the whole check (connect time for postgresql)
  std::optional<std::uint32_t> saturation_pct;
  std::string error;  // empty when up
};

// A probe's check, built once per (re)configuration: it holds what can be
// prepared in advance (the compiled regular expression, the connection
// string). check() is called from one thread at a time.
class Check {
 public:
  Check() = default;
  Check(const Check&) = delete;
  Check& operator=(const Check&) = delete;
  virtual ~Check() = default;
  // `stop` set: give up early (reload, shutdown); the outcome is then ignored.
  [[nodiscard]] virtual CheckOutcome run(const std::atomic<bool>& stop) = 0;
};

// Everything the spec needs was validated by prepare_probes (probes/prepare.*).
[[nodiscard]] std::unique_ptr<Check> make_check(const ProbeSpec& spec);

[[nodiscard]] std::unique_ptr<Check> make_http_check(const ProbeSpec& spec);
[[nodiscard]] std::unique_ptr<Check> make_tcp_check(const ProbeSpec& spec);
[[nodiscard]] std::unique_ptr<Check> make_redis_check(const ProbeSpec& spec);
[[nodiscard]] std::unique_ptr<Check> make_postgresql_check(const ProbeSpec& spec);

// Monotonic clock in microseconds, for latencies and deadlines.
[[nodiscard]] std::int64_t monotonic_us() noexcept;

}  // namespace coupecircuit::probes
