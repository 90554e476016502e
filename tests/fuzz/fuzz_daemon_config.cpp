// libFuzzer target for coupecircuitd's configuration parser
// (scanner/daemon_config.cpp: inih fed one line at a time). For any text:
//  - an accepted configuration holds every value within its documented
//    bounds (absolute paths, ranges of the numbers, a known log level);
//  - a rejected one names the file and a line that exists in the text
//    ("fuzz.conf:N: ..."), as coupecircuitd prints it;
//  - parsing is deterministic, and a rejected text is rejected whatever the
//    base configuration it applies over.
// Seed corpus: tests/fuzz/corpus/daemon_config (the shipped
// conf.d/coupecircuitd.conf and variants).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "daemon_config.hpp"
#include "decimal.hpp"

namespace {

using coupecircuit::DaemonConfig;
using coupecircuit::parse_daemon_config_text;

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr const char* kSource = "fuzz.conf";

bool absolute(const std::string& path) { return !path.empty() && path.front() == '/'; }

void check_bounds(const DaemonConfig& config) {
  check(absolute(config.scan.session_dir));
  check(absolute(config.snapshot_path));
  check(absolute(config.state_path));
  check(config.scan.active_minutes >= 1 && config.scan.active_minutes <= 7 * 24 * 60);
  check(config.rescan_interval_s >= 1 && config.rescan_interval_s <= 86400);
  check(config.scan.max_read_bytes >= 64 && config.scan.max_read_bytes <= (16U << 20));
  check(config.scan.max_depth <= 8);
  const std::string& level = config.log_level;
  check(level == "error" || level == "warning" || level == "notice" || level == "info" || level == "debug");
  check(!config.agent.bind.empty());
  if (config.agent.sessions_trip) check(*config.agent.sessions_trip >= 1 && *config.agent.sessions_trip <= coupecircuit::kMaxSessionsValue);
  if (config.agent.load_trip_centi) check(*config.agent.load_trip_centi > 0);
}

std::size_t line_count(std::string_view text) {
  std::size_t lines = 1;
  for (const char c : text) lines += c == '\n' ? 1 : 0;
  return lines;
}

// "fuzz.conf:N: why" with 1 <= N <= lines.
void check_error(const std::string& message, std::string_view text) {
  const std::string prefix = std::string(kSource) + ":";
  check(message.rfind(prefix, 0) == 0);
  std::size_t position = prefix.size();
  std::size_t line = 0;
  std::size_t digits = 0;
  while (position < message.size() && message[position] >= '0' && message[position] <= '9' && digits < 12) {
    line = line * 10 + static_cast<std::size_t>(message[position] - '0');
    ++position;
    ++digits;
  }
  check(digits > 0 && position < message.size() && message[position] == ':');
  check(line >= 1 && line <= line_count(text));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return -1;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_daemon_config_text(text, kSource);
  auto again = parse_daemon_config_text(text, kSource);
  check(parsed.has_value() == again.has_value());

  DaemonConfig other_base;
  other_base.scan.session_dir = "/srv/sessions";
  other_base.scan.active_minutes = 60;
  other_base.scan.max_depth = 0;
  other_base.log_level = "debug";
  auto over_other = parse_daemon_config_text(text, kSource, other_base);

  if (parsed) {
    check_bounds(*parsed);
    check(parsed->scan.session_dir == again->scan.session_dir && parsed->snapshot_path == again->snapshot_path &&
          parsed->scan.active_minutes == again->scan.active_minutes &&
          parsed->scan.max_read_bytes == again->scan.max_read_bytes);
  } else {
    check_error(parsed.error().message, text);
    check(parsed.error().message == again.error().message);
    check(!over_other.has_value());
  }
  if (over_other) check_bounds(*over_other);
  return 0;
}
