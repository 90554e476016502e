// Load signals read from /proc: load average, pressure stall information
// (PSI "some avg10" for cpu, memory, io) and memory (MemAvailable, swap used).
// Values are centi (x100) integers, percentages in centi-percent.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "result.hpp"

namespace coupecircuit {

struct LoadSignals {
  std::array<std::uint32_t, 3> load_centi{};  // 1, 5, 15 minutes
  bool psi_available = false;
  std::array<std::uint32_t, 3> psi_some_avg10_centi{};  // cpu, memory, io
  std::uint32_t mem_available_centi_pct = 0;
  std::uint32_t swap_used_centi_pct = 0;
  bool operator==(const LoadSignals&) const = default;
};

[[nodiscard]] Result<std::array<std::uint32_t, 3>> parse_loadavg(std::string_view text);
// "some avg10=1.23 avg60=... total=..." -> 123
[[nodiscard]] Result<std::uint32_t> parse_psi_some_avg10(std::string_view text);
struct MemoryPercent {
  std::uint32_t available_centi_pct;
  std::uint32_t swap_used_centi_pct;
};
[[nodiscard]] Result<MemoryPercent> parse_meminfo(std::string_view text);

// proc_root is "/proc" except in tests.
[[nodiscard]] Result<LoadSignals> read_load_signals(const std::string& proc_root = "/proc");

}  // namespace coupecircuit
