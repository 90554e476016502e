// Classification of one PHP session by its content.
//
// PHP writes sessions in one of these serialize_handler formats:
//   php            key|<serialized>key|<serialized>...
//   php_serialize  a:N:{...}   (one serialized array of the whole $_SESSION)
//   php_binary     <len byte><key><serialized>...
//   igbinary       \0\0\0\2 (or \0\0\0\1) then one igbinary array of $_SESSION
// The parsers follow the formats' length prefixes (s:N:"...", igbinary's
// string lengths), so a '|' or a marker inside a user string never counts.
//
// The classifier takes bytes, not files: a buffer holding the whole value,
// or a window over a longer value plus a SessionReader that fills it on
// demand, so that values larger than the window are read on in chunks with
// memory bounded by the window (files and Redis values alike).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"

namespace coupecircuit {

enum class SessionClass : std::uint8_t { empty = 0, anonymous = 1, unknown = 2, authenticated = 3 };
inline constexpr std::size_t kSessionClassCount = 4;
[[nodiscard]] std::string_view to_string(SessionClass c) noexcept;

enum class SessionFormat : std::uint8_t { automatic, php, php_serialize, php_binary, igbinary };
[[nodiscard]] Result<SessionFormat> parse_session_format(std::string_view text);
[[nodiscard]] std::string_view to_string(SessionFormat f) noexcept;

// A key name, exact, or with a trailing '*' any name starting with the text
// before it ("*" alone: any name).
struct KeyPattern {
  std::string text;
  bool prefix = false;
  [[nodiscard]] bool matches(std::string_view name) const noexcept {
    return prefix ? name.starts_with(text) : name == text;
  }
  bool operator==(const KeyPattern&) const = default;
};

// One way a session shows a logged-in user:
//   contains: "<container> contains <marker>": a top-level session variable
//             matching <container> holds an array or object with a direct
//             key (property) matching <marker>;
//   has:      "has <variable>": a top-level session variable matching
//             <variable> exists (whatever its value).
struct AuthenticatedRule {
  enum class Kind : std::uint8_t { contains, has };
  Kind kind = Kind::contains;
  KeyPattern container{"", true};  // "*": any variable
  KeyPattern marker{"storage", false};
  bool operator==(const AuthenticatedRule&) const = default;
};
inline constexpr std::size_t kMaxAuthenticatedRules = 32;

// authenticated: a session is authenticated when any rule matches.
// unknown_key: a session with this top-level variable but no matching rule
// is unknown (e.g. Zend's __ZF namespace metadata); empty: never.
struct ClassifierRule {
  std::vector<AuthenticatedRule> authenticated{AuthenticatedRule{}};
  std::string unknown_key = "__ZF";
  SessionFormat format = SessionFormat::automatic;
  bool operator==(const ClassifierRule&) const = default;
};

// Parses one or more rules separated by commas or newlines, each
// "<container> contains <marker>" or "has <variable>", patterns with an
// optional trailing '*', e.g. "_sf2_attributes contains _security_*, has
// user_id". Returns base with its rules replaced.
[[nodiscard]] Result<ClassifierRule> parse_authenticated_rule(std::string_view text, ClassifierRule base = {});
[[nodiscard]] std::string to_string(const AuthenticatedRule& rule);

// Reads bytes of a session value past those already in memory.
class SessionReader {
 public:
  SessionReader() = default;
  SessionReader(const SessionReader&) = delete;
  SessionReader& operator=(const SessionReader&) = delete;
  virtual ~SessionReader() = default;
  // Copies up to `size` bytes of the value from `offset` into `into`;
  // returns how many: fewer only at the end of the value or on an error.
  virtual std::size_t read_at(std::uint64_t offset, char* into, std::size_t size) noexcept = 0;
};

// A session value of `size` bytes of which the first `filled` are in
// window[0, filled). The classifier examines at most `limit` bytes; a value
// longer than that is truncated. With a reader, the window is the only
// memory used to read on: window.size() bounds it, and a single key (never a
// value) longer than the window makes the session unknown.
struct SessionStream {
  std::span<char> window;
  std::size_t filled = 0;
  std::uint64_t size = 0;
  std::uint64_t limit = 0;
  SessionReader* reader = nullptr;
};

// data: the first bytes of the value (at most the read cap).
// truncated: the value is longer than data. A marker found in the
// well-formed prefix still classifies; otherwise truncated or malformed data
// is unknown. A session with no variable at all (0 bytes, "a:0:{}", an
// igbinary empty array) is empty.
// Never throws, never reads outside the input, bounded depth, no recursion.
[[nodiscard]] SessionClass classify_session(std::string_view data, bool truncated, const ClassifierRule& rule) noexcept;
[[nodiscard]] SessionClass classify_session(const SessionStream& stream, const ClassifierRule& rule) noexcept;

}  // namespace coupecircuit
