// What the INI configuration readers share (coupecircuitd's settings in
// scanner/daemon_config.cpp, coupecircuit-probes' in common/probe_config.cpp):
// reading the file with a size limit, handing it to inih one line at a time
// so that errors name the line, and the value parsers and checks every
// section uses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"

namespace coupecircuit {

// Read by coupecircuitd and coupecircuit-probes alike.
inline constexpr const char* kDefaultConfigPath = "/etc/coupecircuit/coupecircuitd.conf";
inline constexpr std::size_t kMaxConfigBytes = 1U << 20;

// inih's stream reader (ini_parse_stream): hands the text one line at a
// time, so that the number of the line being parsed is known when a setting
// is rejected. A line that does not fit inih's line buffer is replaced by an
// empty line and remembered: inih would otherwise cut it and parse the rest
// as a line of its own. Section headers are recorded as they go by, so that
// a section without settings (which inih never reports) can be checked.
struct IniLineReader {
  struct Section {
    std::string name;
    int line = 0;
  };
  explicit IniLineReader(std::string_view text) noexcept : rest(text) {}
  std::string_view rest;
  int line = 0;           // number of the last line handed to inih
  int overlong_line = 0;  // first line too long for inih's buffer, 0 if none
  std::size_t longest_allowed = 0;
  bool indented = false;  // the last line starts with a blank: inih reads it as a continuation
  std::vector<Section> sections;
};
char* ini_read_line(char* buffer, int size, void* stream);

// The "file:line: why" of inih's result `line` (0: no error). `rejected_line`
// and `rejected_why` are the first setting the handler refused.
[[nodiscard]] std::string ini_error(const IniLineReader& reader, const std::string& source_name, int line,
                                    int rejected_line, const std::string& rejected_why);

// The whole configuration file, at most 1 MiB, a regular file. Missing:
// nullopt when not `required` (an explicit --config requires it).
[[nodiscard]] Result<std::optional<std::string>> read_config_file(const std::string& path, bool required);

// Reads a secret file: a regular file owned by root (or the caller), not
// readable by group or others, at most 4 KiB; its first line is the secret.
// `what` names the setting in errors ("auth_file"); the contents never
// appear in them.
[[nodiscard]] Result<std::string> read_password_file(const std::string& path, std::string_view what = "auth_file");

[[nodiscard]] Result<std::uint32_t> parse_bounded(std::string_view value, std::uint64_t min, std::uint64_t max);
// yes/true/on/1, no/false/off/0.
[[nodiscard]] Result<bool> parse_boolean(std::string_view value);

inline constexpr const char* kUnknownSetting = "unknown setting";

// The setters below return an empty string when accepted, else why not.
std::string apply_bounded(std::string_view value, std::uint64_t min, std::uint64_t max, auto assign) {
  auto parsed = parse_bounded(value, min, max);
  if (!parsed) return parsed.error().message;
  assign(*parsed);
  return {};
}
std::string apply_absolute_path(std::string_view key, std::string_view value, std::string& out);

}  // namespace coupecircuit
