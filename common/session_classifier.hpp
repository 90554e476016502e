// Classification of one PHP session file by its content.
//
// PHP writes sessions in one of three serialize_handler formats:
//   php            key|<serialized>key|<serialized>...
//   php_serialize  a:N:{...}   (one serialized array of the whole $_SESSION)
//   php_binary     <len byte><key><serialized>...
// The parser follows PHP's length prefixes (s:N:"..."), so a '|' or a marker
// inside a user string never counts; it never splits on '|'.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "result.hpp"

namespace coupecircuit {

enum class SessionClass : std::uint8_t { empty = 0, anonymous = 1, unknown = 2, authenticated = 3 };
inline constexpr std::size_t kSessionClassCount = 4;
[[nodiscard]] std::string_view to_string(SessionClass c) noexcept;

enum class SessionFormat : std::uint8_t { automatic, php, php_serialize, php_binary };
[[nodiscard]] Result<SessionFormat> parse_session_format(std::string_view text);
[[nodiscard]] std::string_view to_string(SessionFormat f) noexcept;

// "authenticated when top-level key <container_key> (any key when "*") holds
// an array (or object) with a direct key <marker_key>"; "unknown when a
// top-level key <unknown_key> is present but the marker is not".
struct ClassifierRule {
  std::string container_key = "*";
  std::string marker_key = "storage";
  std::string unknown_key = "__ZF";  // empty: never unknown by namespace
  SessionFormat format = SessionFormat::automatic;
  bool operator==(const ClassifierRule&) const = default;
};

// Parses "<container> contains <marker>", e.g. "* contains storage" or
// "_sf2_attributes contains _security_main".
[[nodiscard]] Result<ClassifierRule> parse_authenticated_rule(std::string_view text, ClassifierRule base = {});

// data: the first bytes of the file (at most the read cap).
// truncated: the file is longer than data. A marker found in the well-formed
// prefix still classifies; otherwise truncated or malformed data is unknown.
// Never throws, never reads outside data, bounded recursion.
[[nodiscard]] SessionClass classify_session(std::string_view data, bool truncated,
                                            const ClassifierRule& rule) noexcept;

}  // namespace coupecircuit
