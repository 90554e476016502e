// The settings of coupecircuit-probes, read from the same file as
// coupecircuitd's (coupecircuitd.conf, inih): [probes] for the program and
// one [probe NAME] section per dependency checked. coupecircuitd skips these
// sections; this parser skips the helper's. Every key is documented in
// conf.d/coupecircuitd.conf and coupecircuit-probes(8).
//
//   [probes]
//   results = /run/coupecircuit/probes/probes.json
//   [probe elastic]
//   type = http              ; http | tcp | redis | postgresql
//   period = 5               ; seconds ("2.5", "500ms"); default 5
//   timeout = 2              ; seconds, default 2
//   rise = 2                 ; successes in a row before up (HAProxy's rise)
//   fall = 3                 ; failures in a row before down (HAProxy's fall)
//   critical = yes           ; a critical probe down drains the node's health
//   url = http://127.0.0.1:9200/_cat/health
//   method = GET
//   header = Authorization: Bearer …   ; repeated, one header each
//   status = 200 204 300-399 ; accepted statuses, default 200
//   body = green|yellow      ; PCRE2 pattern searched in the first 64 KiB
//   insecure = no            ; https: skip certificate checks
//   ca_file = /etc/ssl/…     ; https: trust these CAs
//
// tcp: address = host:port; redis: address = tcp://host:port, unix:///path
// or /path (the Redis forms of session.save_path, ?database= and ?auth=),
// auth_file = a root-only password file; postgresql: conninfo_file = a
// root-only file holding a libpq connection string.
//
// Parsing checks the syntax; what needs the probes' libraries (the regular
// expression, the secret files, the connection string) is checked by
// probes/prepare.* when the program loads the file. Errors name file:line;
// the values of secret settings (header, address with auth, the files'
// contents) never appear in them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probe_results.hpp"
#include "result.hpp"
#include "save_path.hpp"

namespace coupecircuit::probes {

inline constexpr std::uint32_t kDefaultPeriodMs = 5'000;
inline constexpr std::uint32_t kDefaultTimeoutMs = 2'000;
inline constexpr std::uint32_t kMinPeriodMs = 100;
inline constexpr std::uint32_t kMaxPeriodMs = 3'600'000;
inline constexpr std::uint32_t kMinTimeoutMs = 100;
inline constexpr std::uint32_t kMaxTimeoutMs = 60'000;
inline constexpr std::uint32_t kMaxRiseFall = 100;
inline constexpr std::size_t kMaxHeaders = 32;

struct StatusRange {
  std::uint16_t first = 200;
  std::uint16_t last = 200;
  bool operator==(const StatusRange&) const = default;
};

struct HttpSettings {
  std::string url;
  std::string method = "GET";
  std::vector<std::string> headers;  // "Name: value", may carry a token: never logged
  std::vector<StatusRange> statuses{StatusRange{}};
  std::string body_regex;  // empty: the body is not checked
  int body_line = 0;
  bool insecure = false;
  std::string ca_file;
  bool operator==(const HttpSettings&) const = default;
};

struct TcpSettings {
  std::string host;
  std::uint16_t port = 0;
  bool operator==(const TcpSettings&) const = default;
};

struct RedisSettings {
  RedisTarget target;  // one endpoint; password from ?auth= or auth_file
  std::string auth_file;
  bool operator==(const RedisSettings&) const = default;
};

struct PostgresqlSettings {
  std::string conninfo_file;
  bool operator==(const PostgresqlSettings&) const = default;
};

struct ProbeSpec {
  std::string name;
  ProbeType type = ProbeType::tcp;
  int line = 0;  // of the [probe NAME] header
  std::uint32_t period_ms = kDefaultPeriodMs;
  std::uint32_t timeout_ms = kDefaultTimeoutMs;
  std::uint32_t rise = 2;
  std::uint32_t fall = 3;
  bool critical = false;
  HttpSettings http;
  TcpSettings tcp;
  RedisSettings redis;
  PostgresqlSettings postgresql;
  int secret_file_line = 0;  // of auth_file or conninfo_file
  // Read from auth_file or conninfo_file by probes/prepare.*; never logged.
  std::string secret;
  bool operator==(const ProbeSpec&) const = default;
};

struct ProbesConfig {
  std::string results_path = kDefaultResultsPath;  // [probes] results
  std::string log_level = "info";                  // [log] level, shared with coupecircuitd
  std::vector<ProbeSpec> probes;                   // in the order of the file
  bool operator==(const ProbesConfig&) const = default;
};

// "5", "2.5", "5s", "500ms" -> milliseconds, within [min_ms, max_ms].
[[nodiscard]] Result<std::uint32_t> parse_duration_ms(std::string_view text, std::uint32_t min_ms, std::uint32_t max_ms);
// "200", "200,204", "200 300-399".
[[nodiscard]] Result<std::vector<StatusRange>> parse_status_list(std::string_view text);
[[nodiscard]] bool status_accepted(const std::vector<StatusRange>& statuses, long status) noexcept;

// Errors name source_name:line.
[[nodiscard]] Result<ProbesConfig> parse_probes_config_text(std::string_view text, const std::string& source_name);
// A missing file is an error only when required (an explicit --config).
[[nodiscard]] Result<ProbesConfig> load_probes_config(const std::string& path, bool required);

// 3 x the longest period + the longest timeout: how long the helper trusts
// the results file (clamped by the helper to 1 s .. 10 min).
[[nodiscard]] std::int64_t stale_after_ms(const ProbesConfig& config) noexcept;

}  // namespace coupecircuit::probes
