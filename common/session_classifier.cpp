// Classification of PHP sessions.
//
// The parsers read PHP's serialize() grammar and igbinary's binary format
// strictly, following the length prefixes, so user data cannot fake a
// marker. They allocate nothing, and walk nested arrays and objects with a
// fixed-size explicit stack (kMaxDepth frames) instead of recursion; every
// step consumes input, so the time is linear in the size of the data.
//
// Input comes through a Cursor: a window over the value that slides forward
// when a parser needs bytes past its end (SessionReader), so a value longer
// than the window is read on in chunks. A parser never holds a view into the
// window across a call that may slide it; string values, which may be
// larger than the window, are skipped by their length prefix unread.
//
// serialize() grammar accepted for one value (what PHP 7.4+ writes/reads):
//   N;                      null
//   b:0;  b:1;              bool
//   i:[+-]?D+;              int
//   d:<float>;              float: [+-]?D+, [+-]?(D*.D+|D+.D*), either of
//                           those with [eE][+-]?D+, or NAN, INF, -INF
//   s:D+:"<bytes>";         string, exactly that many bytes
//   a:D+:{<key><value>...}  array, exactly that many pairs
//   O:D+:"<class>":D+:{...} object, same body; property names are keys
//   C:D+:"<class>":D+:{<D+ raw bytes>}   Serializable object, opaque
//   E:D+:"<Class:Case>";    enum case
//   r:D+;  R:D+;            back-references (index >= 1)
// Keys are i:...; or s:...; only. Nesting deeper than kMaxDepth arrays or
// objects is malformed.
//
// igbinary (format versions 1 and 2, as igbinary's src/php7/igbinary.c
// writes and reads them): a 4-byte big-endian version, then one value; a
// session is one array whose keys are the variable names. Each value starts
// with a type byte (see IgbType); lengths and integers are big-endian.
// Strings are numbered in the order they first appear (values, keys, class
// and enum case names) and later occurrences are back-references by number;
// arrays, objects and values marked as PHP references are numbered the same
// way for the ref/objref back-references. An array key of type null is a
// hole: no value follows.
#include "session_classifier.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "text.hpp"

namespace coupecircuit {

std::string_view to_string(SessionClass c) noexcept {
  constexpr const char* kNames[] = {"empty", "anonymous", "unknown", "authenticated"};
  return enum_name(c, kNames, "unknown");
}

std::string_view to_string(SessionFormat f) noexcept {
  constexpr const char* kNames[] = {"automatic", "php", "php_serialize", "php_binary", "igbinary"};
  return enum_name(f, kNames, "automatic");
}

Result<SessionFormat> parse_session_format(std::string_view text) {
  if (text == "automatic" || text == "auto") return SessionFormat::automatic;
  if (text == "php") return SessionFormat::php;
  if (text == "php_serialize") return SessionFormat::php_serialize;
  if (text == "php_binary") return SessionFormat::php_binary;
  if (text == "igbinary") return SessionFormat::igbinary;
  return make_error("invalid session format \"" + std::string(text) +
                    "\": expected one of automatic, php, php_serialize, php_binary, igbinary");
}

namespace {

bool is_rule_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// Splits off the next whitespace-separated token of text, advancing pos.
std::string_view next_token(std::string_view text, std::size_t& pos) noexcept {
  while (pos < text.size() && is_rule_space(text[pos])) ++pos;
  const std::size_t start = pos;
  while (pos < text.size() && !is_rule_space(text[pos])) ++pos;
  return text.substr(start, pos - start);
}

KeyPattern make_pattern(std::string_view text) {
  if (!text.empty() && text.back() == '*') return KeyPattern{std::string(text.substr(0, text.size() - 1)), true};
  return KeyPattern{std::string(text), false};
}

std::string pattern_text(const KeyPattern& p) {
  return p.prefix ? p.text + "*" : p.text;
}

Result<AuthenticatedRule> parse_one_rule(std::string_view text) {
  std::size_t pos = 0;
  const std::string_view first = next_token(text, pos);
  const std::string_view second = next_token(text, pos);
  const std::string_view third = next_token(text, pos);
  const std::string_view extra = next_token(text, pos);
  AuthenticatedRule rule;
  if (first == "has" && !second.empty() && third.empty()) {
    rule.kind = AuthenticatedRule::Kind::has;
    rule.container = make_pattern(second);
    rule.marker = {};
    return rule;
  }
  if (!first.empty() && second == "contains" && !third.empty() && extra.empty()) {
    rule.container = make_pattern(first);
    rule.marker = make_pattern(third);
    return rule;
  }
  return make_error("invalid authenticated rule \"" + std::string(text) +
                    "\": expected \"<container> contains <marker>\" or \"has <variable>\", e.g. "
                    "\"* contains storage\", \"_sf2_attributes contains _security_*\" or \"has user_id\"");
}

}  // namespace

std::string to_string(const AuthenticatedRule& rule) {
  if (rule.kind == AuthenticatedRule::Kind::has) return "has " + pattern_text(rule.container);
  return pattern_text(rule.container) + " contains " + pattern_text(rule.marker);
}

Result<ClassifierRule> parse_authenticated_rule(std::string_view text, ClassifierRule base) {
  const std::string_view all = text;
  std::vector<AuthenticatedRule> rules;
  while (!text.empty()) {
    const std::size_t end = text.find_first_of(",\n");
    const std::string_view item = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    std::size_t probe = 0;
    if (next_token(item, probe).empty()) continue;  // blank between separators
    auto rule = parse_one_rule(item);
    if (!rule) return rule.error();
    rules.push_back(std::move(*rule));
  }
  if (rules.empty()) return parse_one_rule(all).error();  // says what a rule looks like
  if (rules.size() > kMaxAuthenticatedRules) {
    return make_error("too many authenticated rules (" + std::to_string(rules.size()) + "): at most " +
                      std::to_string(kMaxAuthenticatedRules));
  }
  base.authenticated = std::move(rules);
  return base;
}

namespace {

// Arrays and objects nested deeper than this are treated as malformed.
constexpr std::size_t kMaxDepth = 64;

enum class Status : std::uint8_t {
  complete,   // the whole input is well-formed in this format
  truncated,  // well-formed up to the end of the input, which ends mid-value
  malformed,  // a byte contradicts the format
};

// What one format's parse learned about the input.
struct Outcome {
  Status status = Status::complete;
  std::size_t tokens = 0;       // serialized tokens read before stopping
  std::uint64_t variables = 0;  // top-level session variables seen
  bool marker = false;          // a rule matched
  bool unknown_key = false;     // the rule's unknown_key seen as a top-level key
  bool short_read = false;      // the value ended before its announced size
};

// The window over the value. ensure() and skip() may slide it forward; the
// bytes at and after the current position are kept, those before are not.
class Cursor {
 public:
  // The whole value in memory.
  explicit Cursor(std::string_view data) noexcept : buf_(data.data()), len_(data.size()), end_(data.size()) {}
  // The first `filled` bytes of a value of which `end` may be examined are
  // in window; reader (may be null) reads on.
  Cursor(std::span<char> window, std::size_t filled, std::uint64_t end, SessionReader* reader) noexcept
      : buf_(window.data()),
        window_(window.data()),
        capacity_(window.size()),
        len_(filled),
        end_(end),
        reader_(reader) {}

  // At least n bytes from the current position are in the window.
  [[nodiscard]] bool ensure(std::uint64_t n) noexcept { return len_ - pos_ >= n || refill(n); }
  [[nodiscard]] bool at_end() noexcept { return pos_ >= len_ && !refill(1); }
  // Only after ensure().
  [[nodiscard]] char peek() const noexcept { return buf_[pos_]; }
  [[nodiscard]] unsigned char byte(std::size_t i = 0) const noexcept {
    return static_cast<unsigned char>(buf_[pos_ + i]);
  }
  [[nodiscard]] std::string_view take(std::size_t n) noexcept {
    const std::string_view out(buf_ + pos_, n);
    pos_ += n;
    return out;
  }
  void advance(std::size_t n) noexcept { pos_ += n; }
  [[nodiscard]] std::string_view rest() const noexcept { return {buf_ + pos_, len_ - pos_}; }
  [[nodiscard]] std::size_t capacity() const noexcept { return reader_ != nullptr ? capacity_ : len_; }
  // The value ended before the size it was announced with (or a read
  // failed): what follows is unknown.
  [[nodiscard]] bool short_read() const noexcept { return short_read_; }

  // Moves past n bytes without reading them; false when fewer are left.
  [[nodiscard]] bool skip(std::uint64_t n) noexcept {
    if (len_ - pos_ >= n) {
      pos_ += static_cast<std::size_t>(n);
      return true;
    }
    const std::uint64_t offset = base_ + pos_;
    if (n > end_ - offset) {
      pos_ = len_;
      return false;
    }
    base_ = offset + n;
    pos_ = 0;
    len_ = 0;
    return true;
  }

 private:
  // Out of line: ensure() stays small enough to inline everywhere.
  [[gnu::noinline]] bool refill(std::uint64_t n) noexcept {
    if (reader_ == nullptr || n > capacity_ || base_ + len_ >= end_) return false;
    const std::size_t keep = len_ - pos_;
    if (pos_ > 0 && keep > 0) std::memmove(window_, window_ + pos_, keep);
    base_ += pos_;
    pos_ = 0;
    len_ = keep;
    while (len_ < n) {
      const std::uint64_t left = end_ - (base_ + len_);
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(capacity_ - len_, left));
      if (want == 0) break;
      const std::size_t got = reader_->read_at(base_ + len_, window_ + len_, want);
      if (got == 0) {
        short_read_ = true;
        end_ = base_ + len_;
        break;
      }
      len_ += std::min(got, want);
    }
    return len_ >= n;
  }

  const char* buf_;
  char* window_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t len_;
  std::size_t pos_ = 0;
  std::uint64_t base_ = 0;  // offset of buf_[0] in the value
  std::uint64_t end_;       // offset where the examined bytes end
  SessionReader* reader_ = nullptr;
  bool short_read_ = false;
};

// What a key name means for the rules.
struct KeyFacts {
  std::uint32_t containers = 0;        // contains-rules whose container matches it
  std::uint32_t markers = 0;           // contains-rules whose marker matches it
  std::uint32_t property_markers = 0;  // same, for it as an (unmangled) object property name
  bool has = false;                    // a has-rule matches it
  bool unknown = false;                // it is the unknown_key
  bool operator==(const KeyFacts&) const = default;
};

// PHP stores protected and private property names as "\0*\0name" and
// "\0Class\0name"; the visible name is what follows the second NUL.
std::string_view unmangle(std::string_view name) noexcept {
  if (name.size() < 2 || name[0] != '\0') return name;
  const std::size_t end = name.find('\0', 1);
  if (end == std::string_view::npos) return name;
  return name.substr(end + 1);
}

// The rules, applied to key names.
class Matcher {
 public:
  explicit Matcher(const ClassifierRule& rule) noexcept
      : rules_(rule.authenticated.data()),
        count_(std::min(rule.authenticated.size(), kMaxAuthenticatedRules)),
        unknown_(rule.unknown_key) {
    for (std::size_t i = 0; i < count_; ++i) {
      const AuthenticatedRule& r = rules_[i];
      longest_ = std::max({longest_, r.container.text.size(), r.marker.text.size()});
      note_first_byte(r.container);
      if (r.kind == AuthenticatedRule::Kind::contains && note_first_byte(r.marker)) {
        first_bytes_[0] = true;  // a mangled property name "\0Class\0name" may match once unmangled
      }
    }
    longest_ = std::max(longest_, unknown_.size());
    if (!unknown_.empty()) first_bytes_[static_cast<unsigned char>(unknown_[0])] = true;
  }

  // False when no pattern but "*" can match the name: its facts are then
  // those of any other such name.
  [[nodiscard]] bool may_differ(std::string_view name) const noexcept {
    return name.empty() || first_bytes_[static_cast<unsigned char>(name[0])];
  }

  // Contains-rules whose container matches a top-level variable name.
  [[nodiscard]] std::uint32_t containers(std::string_view name) const noexcept {
    std::uint32_t mask = 0;
    for (std::size_t i = 0; i < count_; ++i) {
      const AuthenticatedRule& r = rules_[i];
      if (r.kind == AuthenticatedRule::Kind::contains && r.container.matches(name)) mask |= 1U << i;
    }
    return mask;
  }
  [[nodiscard]] bool has(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
      const AuthenticatedRule& r = rules_[i];
      if (r.kind == AuthenticatedRule::Kind::has && r.container.matches(name)) return true;
    }
    return false;
  }
  [[nodiscard]] bool unknown(std::string_view name) const noexcept { return !unknown_.empty() && name == unknown_; }
  // Those of `rules` whose marker matches a key of their container.
  [[nodiscard]] std::uint32_t markers(std::uint32_t rules, std::string_view key) const noexcept {
    std::uint32_t mask = 0;
    for (; rules != 0; rules &= rules - 1) {
      const auto i = static_cast<std::size_t>(std::countr_zero(rules));
      if (rules_[i].marker.matches(key)) mask |= 1U << i;
    }
    return mask;
  }
  [[nodiscard]] std::uint32_t all() const noexcept { return count_ >= 32 ? ~0U : ((1U << count_) - 1U); }
  [[nodiscard]] KeyFacts facts(std::string_view name) const noexcept {
    return {containers(name), markers(all(), name), markers(all(), unmangle(name)), has(name), unknown(name)};
  }
  // Bytes of a name that decide its facts: a longer name matches what its
  // first bytes match, except exact patterns, which are shorter. A mangled
  // property name keeps its class name in front: allow for one.
  [[nodiscard]] std::size_t decisive_length() const noexcept { return longest_ + 1 + 512; }

 private:
  // Records the first byte of a pattern that does not match every name.
  bool note_first_byte(const KeyPattern& p) noexcept {
    if (p.text.empty()) return !p.prefix;  // exact "": may_differ() passes empty names
    first_bytes_[static_cast<unsigned char>(p.text[0])] = true;
    return true;
  }

  const AuthenticatedRule* rules_;
  std::size_t count_;
  std::string_view unknown_;
  std::size_t longest_ = 0;
  std::array<bool, 256> first_bytes_{};
};

// How the keys of an array or object being read are looked at.
struct KeyRole {
  bool top_level = false;   // keys are session variable names
  std::uint32_t rules = 0;  // contains-rules whose container this is
};

// Trivial on purpose: the parse stacks are left uninitialised and each frame
// is written before it is read.
struct Frame {
  std::uint64_t remaining;  // key/value pairs still to read
  KeyRole role;
  bool object;
};
using FrameStack = std::array<Frame, kMaxDepth>;

// The head of one value: an array or object whose keys follow, or not.
struct Head {
  bool opened = false;
  bool object = false;
  std::uint64_t count = 0;
};

// The walk both parsers share (PHP's serialize format and igbinary): one
// value head, a frame for an array or object whose keys play the role the
// key read last gave, then the next key, until the value given is complete.
// Parser provides read_value_head(Head&) and next_key(stack, depth, next).
template <typename Parser>
Status walk_value(Parser& parser, KeyRole role, std::size_t& tokens) noexcept {
  FrameStack stack;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  std::size_t depth = 0;
  KeyRole next = role;
  for (;;) {
    Head head;
    Status s = parser.read_value_head(head);
    if (s != Status::complete) return s;
    ++tokens;
    if (head.opened) {
      if ((next.top_level && head.object) || depth == kMaxDepth) return Status::malformed;
      stack[depth++] = Frame{head.count, next, head.object};
    }
    s = parser.next_key(stack, depth, next);
    if (s != Status::complete || depth == 0) return s;
  }
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

// Class-name bytes PHP accepts when unserializing: letters, digits, '_',
// namespace separators and any byte >= 0x80.
bool is_class_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || is_digit(c) || u == '_' || u == '\\' || u >= 0x80;
}

// Bytes that may appear in the text of a float.
bool is_double_char(char c) noexcept {
  return is_digit(c) || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E' || c == 'I' || c == 'N' || c == 'F' ||
         c == 'A';
}

std::size_t count_digits(std::string_view t, std::size_t& i) noexcept {
  const std::size_t start = i;
  while (i < t.size() && is_digit(t[i])) ++i;
  return i - start;
}

// Validates the text between "d:" and ";".
bool valid_double(std::string_view t) noexcept {
  if (t == "NAN" || t == "INF" || t == "-INF") return true;
  std::size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  const std::size_t int_digits = count_digits(t, i);
  std::size_t frac_digits = 0;
  if (i < t.size() && t[i] == '.') {
    ++i;
    frac_digits = count_digits(t, i);
  }
  if (int_digits + frac_digits == 0) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (count_digits(t, i) == 0) return false;
  }
  return i == t.size();
}

bool has_control_byte(std::string_view key) noexcept {
  return std::ranges::any_of(key, [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// Parses the three formats built on serialize(): php, php_serialize and
// php_binary.
class SerializedParser {
 public:
  SerializedParser(Cursor cursor, const Matcher& matcher, bool plausible_php_keys) noexcept
      : cur_(cursor), matcher_(matcher), plausible_php_keys_(plausible_php_keys) {}

  // php: key|value key|value ...
  [[gnu::noinline]] Outcome parse_php() noexcept {
    while (!cur_.at_end()) {
      std::string_view key;
      Status s = read_php_key(key);
      if (s != Status::complete) return finish(s);
      if (plausible_php_keys_ && has_control_byte(key)) return finish(Status::malformed);
      s = parse_value(variable(key));
      if (s != Status::complete) return finish(s);
    }
    return finish(Status::complete);
  }

  // php_serialize: one array whose keys are the session variables.
  [[gnu::noinline]] Outcome parse_php_serialize() noexcept {
    if (!cur_.ensure(1)) return finish(Status::truncated);
    if (cur_.peek() != 'a') return finish(Status::malformed);
    const Status s = parse_value(KeyRole{true, 0});
    if (s != Status::complete) return finish(s);
    return finish(cur_.at_end() ? Status::complete : Status::malformed);
  }

  // php_binary: <len><key><value> ...; a length byte with bit 0x80 set marks
  // an undefined variable: the key (len & 0x7f bytes) has no value.
  [[gnu::noinline]] Outcome parse_php_binary() noexcept {
    while (!cur_.at_end()) {
      const unsigned char len_byte = cur_.byte();
      const bool undefined = (len_byte & 0x80U) != 0;
      const std::size_t len = len_byte & 0x7fU;
      cur_.advance(1);
      if (!cur_.ensure(len)) return finish(Status::truncated);
      const std::string_view key = cur_.take(len);
      if (undefined) continue;
      const Status s = parse_value(variable(key));
      if (s != Status::complete) return finish(s);
    }
    return finish(Status::complete);
  }

 private:
  template <typename Parser>
  friend Status walk_value(Parser& parser, KeyRole role, std::size_t& tokens) noexcept;

  Outcome finish(Status s) noexcept {
    out_.status = s;
    out_.short_read = cur_.short_read();
    return out_;
  }

  // Records a session variable name; returns how its value's keys are read.
  KeyRole variable(std::string_view name) noexcept {
    ++out_.variables;
    if (matcher_.unknown(name)) out_.unknown_key = true;
    if (matcher_.has(name)) out_.marker = true;
    return KeyRole{false, matcher_.containers(name)};
  }

  // The bytes up to the next '|', then the '|'.
  Status read_php_key(std::string_view& key) noexcept {
    std::size_t searched = 0;
    for (;;) {
      const std::string_view rest = cur_.rest();
      const std::size_t bar = rest.find('|', searched);
      if (bar != std::string_view::npos) {
        key = cur_.take(bar);
        cur_.advance(1);
        return Status::complete;
      }
      searched = rest.size();
      if (!cur_.ensure(rest.size() + 1)) return Status::truncated;
    }
  }

  // Consumes the literal c.
  [[gnu::always_inline]] Status expect(char c) noexcept {
    if (!cur_.ensure(1)) return Status::truncated;
    if (cur_.peek() != c) return Status::malformed;
    cur_.advance(1);
    return Status::complete;
  }

  // Consumes the two-byte tag "<t>:".
  Status expect_tag(char t) noexcept {
    const Status s = expect(t);
    if (s != Status::complete) return s;
    return expect(':');
  }

  // Reads [0-9]+ as an unsigned number, then the terminator.
  Status read_uint(std::uint64_t& out, char terminator) noexcept {
    // Larger than any input; keeps out * 10 + 9 far from overflowing.
    constexpr std::uint64_t kLimit = std::uint64_t{1} << 58U;
    for (;;) {
      // Scans the window; reads on only when the digits reach its end.
      const std::string_view rest = cur_.rest();
      out = 0;
      std::size_t i = 0;
      while (i < rest.size() && is_digit(rest[i])) {
        if (out >= kLimit) return Status::malformed;
        out = out * 10U + static_cast<std::uint64_t>(rest[i] - '0');
        ++i;
      }
      if (i < rest.size()) {
        if (i == 0 || rest[i] != terminator) return Status::malformed;
        cur_.advance(i + 1);
        return Status::complete;
      }
      if (!cur_.ensure(rest.size() + 1)) return Status::truncated;
    }
  }

  // Reads [+-]?[0-9]+; and returns the number's text in out (valid until
  // the window moves).
  Status read_int_text(std::string_view& out) noexcept {
    std::size_t n = 0;
    if (cur_.ensure(1) && (cur_.peek() == '+' || cur_.peek() == '-')) n = 1;
    const std::size_t digits_start = n;
    while (cur_.ensure(n + 1) && is_digit(cur_.rest()[n])) ++n;
    if (!cur_.ensure(n + 1)) return Status::truncated;
    if (n == digits_start) return Status::malformed;
    out = cur_.take(n);
    return expect(';');
  }

  // Reads "<n bytes>" after the length and its ':' have been read; out gets
  // the bytes when wanted, else they are skipped unread. The closing quote
  // and the byte after it (';' or ':') are brought into the window with the
  // bytes, so that reading them does not move the window under out.
  Status read_quoted(std::uint64_t n, std::string_view* out) noexcept {
    const Status s = expect('"');
    if (s != Status::complete) return s;
    if (out != nullptr) {
      if (!cur_.ensure(n + 2)) return Status::truncated;
      *out = cur_.take(static_cast<std::size_t>(n));
    } else if (!cur_.skip(n)) {
      return Status::truncated;
    }
    return expect('"');
  }

  // s:N:"...";
  Status read_string(std::string_view* out) noexcept {
    Status s = expect_tag('s');
    if (s != Status::complete) return s;
    std::uint64_t n = 0;
    s = read_uint(n, ':');
    if (s != Status::complete) return s;
    s = read_quoted(n, out);
    if (s != Status::complete) return s;
    return expect(';');
  }

  // "<class>": after "O:N:" or "C:N:", then the ':' that follows.
  Status read_class_name(std::uint64_t n) noexcept {
    std::string_view name;
    const Status s = read_quoted(n, &name);
    if (s != Status::complete) return s;
    if (name.empty()) return Status::malformed;
    for (const char c : name) {
      if (!is_class_char(c)) return Status::malformed;
    }
    return expect(':');
  }

  // Reads one array key or object property name.
  Status read_key(std::string_view& key, bool& is_int) noexcept {
    if (!cur_.ensure(1)) return Status::truncated;
    if (cur_.peek() == 'i') {
      is_int = true;
      const Status s = expect_tag('i');
      if (s != Status::complete) return s;
      return read_int_text(key);
    }
    if (cur_.peek() == 's') {
      is_int = false;
      return read_string(&key);
    }
    return Status::malformed;
  }

  // b:0; or b:1;
  Status read_bool() noexcept {
    const Status s = expect_tag('b');
    if (s != Status::complete) return s;
    if (!cur_.ensure(1)) return Status::truncated;
    if (cur_.peek() != '0' && cur_.peek() != '1') return Status::malformed;
    cur_.advance(1);
    return expect(';');
  }

  Status read_int() noexcept {
    const Status s = expect_tag('i');
    if (s != Status::complete) return s;
    std::string_view ignored;
    return read_int_text(ignored);
  }

  Status read_double() noexcept {
    const Status s = expect_tag('d');
    if (s != Status::complete) return s;
    std::size_t n = 0;
    while (cur_.ensure(n + 1) && is_double_char(cur_.rest()[n])) ++n;
    if (!cur_.ensure(n + 1)) return Status::truncated;
    if (cur_.rest()[n] != ';' || !valid_double(cur_.rest().substr(0, n))) return Status::malformed;
    cur_.advance(n + 1);
    return Status::complete;
  }

  // r:N; or R:N;
  Status read_back_reference(char tag) noexcept {
    Status s = expect_tag(tag);
    if (s != Status::complete) return s;
    std::uint64_t index = 0;
    s = read_uint(index, ';');
    if (s != Status::complete) return s;
    return index == 0 ? Status::malformed : Status::complete;
  }

  // E:N:"Class:Case";
  Status read_enum() noexcept {
    Status s = expect_tag('E');
    if (s != Status::complete) return s;
    std::uint64_t n = 0;
    s = read_uint(n, ':');
    if (s != Status::complete) return s;
    std::string_view name;
    s = read_quoted(n, &name);
    if (s != Status::complete) return s;
    const std::size_t colon = name.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == name.size()) return Status::malformed;
    return expect(';');
  }

  // C:N:"Class":N:{raw}: opaque, skipped by its length.
  Status read_custom_object() noexcept {
    Status s = expect_tag('C');
    if (s != Status::complete) return s;
    std::uint64_t n = 0;
    s = read_uint(n, ':');
    if (s != Status::complete) return s;
    s = read_class_name(n);
    if (s != Status::complete) return s;
    std::uint64_t raw = 0;
    s = read_uint(raw, ':');
    if (s != Status::complete) return s;
    s = expect('{');
    if (s != Status::complete) return s;
    if (!cur_.skip(raw)) return Status::truncated;
    return expect('}');
  }

  // a:N:{ or O:N:"Class":N:{
  Status read_container_head(char tag, Head& head) noexcept {
    head.object = tag == 'O';
    Status s = expect_tag(tag);
    if (s != Status::complete) return s;
    s = read_uint(head.count, ':');
    if (s != Status::complete) return s;
    if (head.object) {
      s = read_class_name(head.count);
      if (s != Status::complete) return s;
      s = read_uint(head.count, ':');
      if (s != Status::complete) return s;
    }
    s = expect('{');
    if (s != Status::complete) return s;
    head.opened = true;
    return Status::complete;
  }

  // Reads the head of one value. Scalars are read whole; for an array or
  // object, the "{" is consumed and head.opened set with its pair count.
  Status read_value_head(Head& head) noexcept {
    if (!cur_.ensure(1)) return Status::truncated;
    const char tag = cur_.peek();
    switch (tag) {
      case 'N':
        cur_.advance(1);
        return expect(';');
      case 'b':
        return read_bool();
      case 'i':
        return read_int();
      case 'd':
        return read_double();
      case 's':
        return read_string(nullptr);
      case 'r':
      case 'R':
        return read_back_reference(tag);
      case 'E':
        return read_enum();
      case 'C':
        return read_custom_object();
      case 'a':
      case 'O':
        return read_container_head(tag, head);
      default:
        return Status::malformed;
    }
  }

  // The role of the value that follows a key of the frame `top`.
  KeyRole key_read(const Frame& top, std::string_view key, bool is_int) noexcept {
    if (top.role.top_level) return variable(key);
    if (top.role.rules != 0) {
      const std::string_view name = (top.object && !is_int) ? unmangle(key) : key;
      if (matcher_.markers(top.role.rules, name) != 0) out_.marker = true;
    }
    return KeyRole{};
  }

  // Closes the finished containers, then reads the next key, if any (none
  // left when depth comes back 0).
  Status next_key(FrameStack& stack, std::size_t& depth, KeyRole& next) noexcept {
    while (depth > 0) {
      Frame& top = stack[depth - 1];
      if (top.remaining == 0) {
        const Status s = expect('}');
        if (s != Status::complete) return s;
        ++out_.tokens;
        --depth;
        continue;
      }
      std::string_view key;
      bool is_int = false;
      const Status s = read_key(key, is_int);
      if (s != Status::complete) return s;
      ++out_.tokens;
      --top.remaining;
      next = key_read(top, key, is_int);
      return Status::complete;
    }
    return Status::complete;
  }

  // Reads one complete value whose keys (if it is an array or object) play
  // the given role.
  Status parse_value(KeyRole role) noexcept { return walk_value(*this, role, out_.tokens); }

  Cursor cur_;
  const Matcher& matcher_;
  bool plausible_php_keys_;
  Outcome out_{};
};

// igbinary's type bytes (igbinary.c, enum igbinary_type).
enum IgbType : std::uint8_t {
  kIgbNull = 0x00,
  kIgbRef8 = 0x01,
  kIgbRef16 = 0x02,
  kIgbRef32 = 0x03,
  kIgbFalse = 0x04,
  kIgbTrue = 0x05,
  kIgbLong8p = 0x06,
  kIgbLong8n = 0x07,
  kIgbLong16p = 0x08,
  kIgbLong16n = 0x09,
  kIgbLong32p = 0x0a,
  kIgbLong32n = 0x0b,
  kIgbDouble = 0x0c,
  kIgbStringEmpty = 0x0d,
  kIgbStringId8 = 0x0e,
  kIgbStringId16 = 0x0f,
  kIgbStringId32 = 0x10,
  kIgbString8 = 0x11,
  kIgbString16 = 0x12,
  kIgbString32 = 0x13,
  kIgbArray8 = 0x14,
  kIgbArray16 = 0x15,
  kIgbArray32 = 0x16,
  kIgbObject8 = 0x17,
  kIgbObject16 = 0x18,
  kIgbObject32 = 0x19,
  kIgbObjectId8 = 0x1a,
  kIgbObjectId16 = 0x1b,
  kIgbObjectId32 = 0x1c,
  kIgbObjectSer8 = 0x1d,
  kIgbObjectSer16 = 0x1e,
  kIgbObjectSer32 = 0x1f,
  kIgbLong64p = 0x20,
  kIgbLong64n = 0x21,
  kIgbObjRef8 = 0x22,
  kIgbObjRef16 = 0x23,
  kIgbObjRef32 = 0x24,
  kIgbRef = 0x25,
  kIgbString64 = 0x26,
  kIgbEnumCase = 0x27,
};

// Width in bytes of the length, number or index that follows a type byte
// of a family whose members come in widths 1, 2, 4 (and 8).
std::size_t width_in(std::uint8_t t, std::uint8_t first) noexcept {
  return std::size_t{1} << static_cast<unsigned>(t - first);
}

// Parses igbinary session data.
class IgbinaryParser {
 public:
  IgbinaryParser(Cursor cursor, const Matcher& matcher) noexcept
      : cur_(cursor), matcher_(matcher), general_(matcher.facts("\x01\x02 no key has this name")) {}

  [[gnu::noinline]] Outcome parse() noexcept {
    if (!cur_.ensure(4)) return finish(Status::truncated);
    if (cur_.byte(0) != 0 || cur_.byte(1) != 0 || cur_.byte(2) != 0 || (cur_.byte(3) != 1 && cur_.byte(3) != 2)) {
      return finish(Status::malformed);
    }
    cur_.advance(4);
    if (!cur_.ensure(1)) return finish(Status::truncated);
    const std::uint8_t t = cur_.byte();
    if (t < kIgbArray8 || t > kIgbArray32) return finish(Status::malformed);
    const Status s = parse_value(KeyRole{true, 0});
    if (s != Status::complete) return finish(s);
    return finish(cur_.at_end() ? Status::complete : Status::malformed);
  }

 private:
  template <typename Parser>
  friend Status walk_value(Parser& parser, KeyRole role, std::size_t& tokens) noexcept;

  // A string of the table whose facts differ from those of most names.
  struct Recorded {
    std::uint64_t id;
    KeyFacts facts;
  };
  static constexpr std::size_t kRecordedMax = 64;

  Outcome finish(Status s) noexcept {
    out_.status = s;
    out_.short_read = cur_.short_read();
    return out_;
  }

  // Reads an n-byte big-endian number.
  Status read_number(std::size_t n, std::uint64_t& out) noexcept {
    if (!cur_.ensure(n)) return Status::truncated;
    out = 0;
    for (std::size_t i = 0; i < n; ++i) out = (out << 8U) | cur_.byte(i);
    cur_.advance(n);
    return Status::complete;
  }

  // A new string of the table: n bytes, of which the decisive ones are
  // looked at, the rest skipped. facts gets what the name means.
  Status read_chars(std::uint64_t n, KeyFacts& facts) noexcept {
    facts = general_;
    // The first byte tells whether the name can matter; only then are its
    // decisive bytes looked at.
    if (n == 0 || (cur_.ensure(1) && matcher_.may_differ(cur_.rest().substr(0, 1)))) {
      const std::uint64_t look = std::min<std::uint64_t>(n, matcher_.decisive_length());
      if (!cur_.ensure(look)) return Status::truncated;
      facts = matcher_.facts(std::string_view(cur_.rest().data(), static_cast<std::size_t>(look)));
    }
    if (!cur_.skip(n)) return Status::truncated;
    if (!(facts == general_)) {
      if (recorded_count_ == kRecordedMax) {
        recorded_overflow_ = true;
      } else {
        recorded_[recorded_count_++] = Recorded{strings_, facts};
      }
    }
    ++strings_;
    return Status::complete;
  }

  // string8/16/32/64 (or object8/16/32, whose class name it is): length, bytes.
  Status read_new_string(std::uint8_t t, std::uint8_t first, KeyFacts& facts) noexcept {
    std::uint64_t n = 0;
    const Status s = read_number(width_in(t, first), n);
    if (s != Status::complete) return s;
    return read_chars(n, facts);
  }

  // string_id8/16/32 (or object_id8/16/32): a string of the table by number.
  Status read_string_id(std::uint8_t t, std::uint8_t first, KeyFacts& facts) noexcept {
    std::uint64_t id = 0;
    const Status s = read_number(width_in(t, first), id);
    if (s != Status::complete) return s;
    if (id >= strings_) return Status::malformed;
    for (std::size_t i = 0; i < recorded_count_; ++i) {
      if (recorded_[i].id == id) {
        facts = recorded_[i].facts;
        return Status::complete;
      }
    }
    // Past the table's capacity a name that matters may have been dropped.
    if (recorded_overflow_) return Status::malformed;
    facts = general_;
    return Status::complete;
  }

  // Any string form, for a value or an enum case name.
  Status read_any_string(std::uint8_t t) noexcept {
    KeyFacts ignored;
    if (t == kIgbStringEmpty) return Status::complete;
    if (t >= kIgbStringId8 && t <= kIgbStringId32) return read_string_id(t, kIgbStringId8, ignored);
    if (t >= kIgbString8 && t <= kIgbString32) return read_new_string(t, kIgbString8, ignored);
    if (t == kIgbString64) {
      std::uint64_t n = 0;
      const Status s = read_number(8, n);
      if (s != Status::complete) return s;
      return read_chars(n, ignored);
    }
    return Status::malformed;
  }

  // ref8/16/32, objref8/16/32: a value numbered before.
  Status read_back_reference(std::size_t width) noexcept {
    std::uint64_t index = 0;
    const Status s = read_number(width, index);
    if (s != Status::complete) return s;
    return index < references_ ? Status::complete : Status::malformed;
  }

  // array8/16/32: the pair count.
  Status read_array_head(std::uint8_t t, Head& head) noexcept {
    const Status s = read_number(width_in(t, kIgbArray8), head.count);
    if (s != Status::complete) return s;
    head.opened = true;
    return Status::complete;
  }

  // What follows an object's class name: properties, Serializable data or
  // an enum case name.
  Status read_object_body(Head& head) noexcept {
    ++references_;
    if (!cur_.ensure(1)) return Status::truncated;
    const std::uint8_t t = cur_.byte();
    cur_.advance(1);
    if (t >= kIgbArray8 && t <= kIgbArray32) {
      head.object = true;
      return read_array_head(t, head);
    }
    if (t >= kIgbObjectSer8 && t <= kIgbObjectSer32) {
      std::uint64_t n = 0;
      const Status s = read_number(width_in(t, kIgbObjectSer8), n);
      if (s != Status::complete) return s;
      return cur_.skip(n) ? Status::complete : Status::truncated;
    }
    if (t == kIgbEnumCase) {
      if (!cur_.ensure(1)) return Status::truncated;
      const std::uint8_t name_type = cur_.byte();
      cur_.advance(1);
      return name_type == kIgbStringEmpty ? Status::malformed : read_any_string(name_type);
    }
    return Status::malformed;
  }

  Status read_object(std::uint8_t t, Head& head) noexcept {
    KeyFacts ignored;
    const Status s =
        t <= kIgbObject32 ? read_new_string(t, kIgbObject8, ignored) : read_string_id(t, kIgbObjectId8, ignored);
    if (s != Status::complete) return s;
    return read_object_body(head);
  }

  // Integers, doubles: a fixed number of bytes; 0 for other types.
  static std::size_t scalar_width(std::uint8_t t) noexcept { return kScalarWidths[t]; }
  static constexpr std::array<std::uint8_t, 256> kScalarWidths = [] {
    std::array<std::uint8_t, 256> widths{};
    widths[kIgbLong8p] = widths[kIgbLong8n] = 1;
    widths[kIgbLong16p] = widths[kIgbLong16n] = 2;
    widths[kIgbLong32p] = widths[kIgbLong32n] = 4;
    widths[kIgbLong64p] = widths[kIgbLong64n] = widths[kIgbDouble] = 8;
    return widths;
  }();

  // Reads the head of one value, its type byte first. Scalars are read
  // whole; for an array or object with properties, head.opened is set with
  // its pair count.
  Status read_value_head(Head& head) noexcept {
    if (!cur_.ensure(1)) return Status::truncated;
    std::uint8_t t = cur_.byte();
    cur_.advance(1);
    // A value marked as a PHP reference (&): numbered, then the value.
    while (t == kIgbRef) {
      ++references_;
      if (!cur_.ensure(1)) return Status::truncated;
      t = cur_.byte();
      cur_.advance(1);
    }
    if (const std::size_t width = scalar_width(t); width != 0) {
      return cur_.skip(width) ? Status::complete : Status::truncated;
    }
    if (t == kIgbNull || t == kIgbFalse || t == kIgbTrue) return Status::complete;
    if (t >= kIgbRef8 && t <= kIgbRef32) return read_back_reference(width_in(t, kIgbRef8));
    if (t >= kIgbObjRef8 && t <= kIgbObjRef32) return read_back_reference(width_in(t, kIgbObjRef8));
    if (t >= kIgbArray8 && t <= kIgbArray32) {
      ++references_;
      return read_array_head(t, head);
    }
    if (t >= kIgbObject8 && t <= kIgbObjectId32) return read_object(t, head);
    return read_any_string(t);
  }

  // An integer key: its decimal text, as PHP would name it.
  Status read_int_key(std::uint8_t t, KeyFacts& facts, bool want) noexcept {
    std::uint64_t magnitude = 0;
    const Status s = read_number(scalar_width(t), magnitude);
    if (s != Status::complete || !want) return s;
    std::array<char, 24> text{};
    char* p = text.data();
    if ((t & 1U) != 0) *p++ = '-';  // the "n" (negative) types are odd
    p = std::to_chars(p, text.data() + text.size(), magnitude).ptr;
    facts = matcher_.facts(std::string_view(text.data(), static_cast<std::size_t>(p - text.data())));
    return Status::complete;
  }

  // Reads one key; hole: a null key, which has no value.
  Status read_key(KeyFacts& facts, bool& is_int, bool& hole, bool want) noexcept {
    if (!cur_.ensure(1)) return Status::truncated;
    const std::uint8_t t = cur_.byte();
    cur_.advance(1);
    is_int = scalar_width(t) != 0 && t != kIgbDouble;
    hole = t == kIgbNull;
    if (is_int) return read_int_key(t, facts, want);
    if (hole) return Status::complete;
    if (t == kIgbStringEmpty) {
      facts = matcher_.facts("");
      return Status::complete;
    }
    if (t >= kIgbStringId8 && t <= kIgbString32) return read_any_string_key(t, facts);
    if (t == kIgbString64) return read_any_string_key(t, facts);
    return Status::malformed;
  }

  Status read_any_string_key(std::uint8_t t, KeyFacts& facts) noexcept {
    if (t >= kIgbStringId8 && t <= kIgbStringId32) return read_string_id(t, kIgbStringId8, facts);
    if (t == kIgbString64) {
      std::uint64_t n = 0;
      const Status s = read_number(8, n);
      if (s != Status::complete) return s;
      return read_chars(n, facts);
    }
    return read_new_string(t, kIgbString8, facts);
  }

  // The role of the value that follows a key of the frame `top`.
  KeyRole key_read(const Frame& top, const KeyFacts& facts, bool is_int) noexcept {
    if (top.role.top_level) {
      ++out_.variables;
      out_.unknown_key = out_.unknown_key || facts.unknown;
      out_.marker = out_.marker || facts.has;
      return KeyRole{false, facts.containers};
    }
    const std::uint32_t markers = (top.object && !is_int) ? facts.property_markers : facts.markers;
    if ((markers & top.role.rules) != 0) out_.marker = true;
    return KeyRole{};
  }

  // Pops the finished containers, then reads the next key with a value, if
  // any (none left when depth comes back 0).
  Status next_key(FrameStack& stack, std::size_t& depth, KeyRole& next) noexcept {
    while (depth > 0) {
      Frame& top = stack[depth - 1];
      if (top.remaining == 0) {
        --depth;
        continue;
      }
      --top.remaining;
      KeyFacts facts = general_;
      bool is_int = false;
      bool hole = false;
      const Status s = read_key(facts, is_int, hole, top.role.top_level || top.role.rules != 0);
      if (s != Status::complete) return s;
      if (hole) continue;
      next = key_read(top, facts, is_int);
      return Status::complete;
    }
    return Status::complete;
  }

  Status parse_value(KeyRole role) noexcept { return walk_value(*this, role, out_.tokens); }

  Cursor cur_;
  const Matcher& matcher_;
  const KeyFacts general_;        // facts of a name no exact pattern names
  std::uint64_t strings_ = 0;     // strings numbered so far
  std::uint64_t references_ = 0;  // values numbered so far for ref/objref
  std::array<Recorded, kRecordedMax> recorded_{};
  std::size_t recorded_count_ = 0;
  bool recorded_overflow_ = false;
  Outcome out_{};
};

Outcome parse_as(SessionFormat format, const Cursor& cursor, const Matcher& matcher, bool automatic) noexcept {
  switch (format) {
    case SessionFormat::igbinary:
      return IgbinaryParser(cursor, matcher).parse();
    case SessionFormat::php_serialize:
      return SerializedParser(cursor, matcher, automatic).parse_php_serialize();
    case SessionFormat::php_binary:
      return SerializedParser(cursor, matcher, automatic).parse_php_binary();
    case SessionFormat::php:
    case SessionFormat::automatic:
      break;
  }
  return SerializedParser(cursor, matcher, automatic).parse_php();
}

bool has_igbinary_header(std::string_view data) noexcept {
  return data.size() >= 4 && data[0] == '\0' && data[1] == '\0' && data[2] == '\0' &&
         (data[3] == '\x01' || data[3] == '\x02');
}

struct Detected {
  SessionFormat format = SessionFormat::php;
  Outcome outcome;
};

// Automatic detection, on the bytes in memory only.
//
// igbinary data starts with its version header \0\0\0\1 or \0\0\0\2, which
// no other format can start with (php_serialize starts with 'a', a php key
// has no control byte, a php_binary key of length 0 is followed by a
// serialize() tag, never \0).
// Otherwise the formats are tried in the order php_serialize, php,
// php_binary, and the first one that reads the whole input as well-formed
// wins:
//  - php_serialize first: its input is exactly one array "a:N:{...}" and
//    nothing after it, and its first bytes are chosen by PHP, not by users;
//    whereas a user string holding "x|a:1:{...}" inside a php_serialize
//    array can make the tail of that file read as a php record.
//  - php next (PHP's default handler). In automatic mode a php key must not
//    contain control bytes (< 0x20 or 0x7f): a php_binary file starts with
//    a key length byte, usually a control byte, so its bytes up to a '|'
//    found in user data never make a plausible php key.
//  - php_binary last: any first byte reads as a key length, so it is the
//    least selective.
// When no format reads the whole input (truncated or malformed data), the
// format whose well-formed prefix held the most serialized tokens is used
// (ties: the order above), so that a marker found in that prefix still
// counts. Key bytes (php, php_binary) are not tokens, so a php_binary key
// length that swallows up to 127 arbitrary bytes earns nothing.
//
// window_cut: data is only the first part of a longer value, so every
// format's parse ends early; one still well-formed where the window ends is
// then preferred to one that met a contradiction, whatever the tokens (a
// long string value at the start of a php file leaves no complete token in
// the window).
Detected detect(std::string_view data, const Matcher& matcher, bool window_cut = false) noexcept {
  if (has_igbinary_header(data)) {
    Cursor cursor(data);
    return {SessionFormat::igbinary, parse_as(SessionFormat::igbinary, cursor, matcher, true)};
  }
  constexpr std::array<SessionFormat, 3> kOrder{SessionFormat::php_serialize, SessionFormat::php,
                                                SessionFormat::php_binary};
  Detected best{};
  bool have_best = false;
  for (const SessionFormat f : kOrder) {
    Cursor cursor(data);
    const Outcome o = parse_as(f, cursor, matcher, true);
    if (o.status == Status::complete) return {f, o};
    const bool better_status = window_cut && o.status == Status::truncated && best.outcome.status == Status::malformed;
    const bool worse_status = window_cut && o.status == Status::malformed && best.outcome.status == Status::truncated;
    if (!have_best || better_status || (!worse_status && o.tokens > best.outcome.tokens)) {
      best = {f, o};
      have_best = true;
    }
  }
  return best;
}

SessionClass verdict(const Outcome& o, bool cut) noexcept {
  if (o.marker) return SessionClass::authenticated;
  if (cut || o.status != Status::complete) return SessionClass::unknown;
  if (o.variables == 0) return SessionClass::empty;
  if (o.unknown_key) return SessionClass::unknown;
  return SessionClass::anonymous;
}

}  // namespace

SessionClass classify_session(std::string_view data, bool truncated, const ClassifierRule& rule) noexcept {
  if (data.empty()) return truncated ? SessionClass::unknown : SessionClass::empty;
  const Matcher matcher(rule);
  if (rule.format == SessionFormat::automatic) return verdict(detect(data, matcher).outcome, truncated);
  Cursor cursor(data);
  return verdict(parse_as(rule.format, cursor, matcher, false), truncated);
}

SessionClass classify_session(const SessionStream& stream, const ClassifierRule& rule) noexcept {
  const std::uint64_t end = std::min(stream.size, stream.limit);
  const bool cut = stream.size > stream.limit;
  auto filled = static_cast<std::size_t>(std::min<std::uint64_t>(stream.filled, end));
  bool short_read = false;
  // A full first window, so that the format is told from as much as fits.
  const auto first = static_cast<std::size_t>(std::min<std::uint64_t>(stream.window.size(), end));
  while (filled < first && stream.reader != nullptr) {
    const std::size_t got = stream.reader->read_at(filled, stream.window.data() + filled, first - filled);
    if (got == 0) {
      short_read = true;
      break;
    }
    filled += std::min(got, first - filled);
  }
  if (filled == end || short_read) {
    return classify_session(std::string_view(stream.window.data(), filled), cut || short_read, rule);
  }
  const Matcher matcher(rule);
  SessionFormat format = rule.format;
  // The format is told by the first window; then that format reads on.
  if (format == SessionFormat::automatic) {
    format = detect(std::string_view(stream.window.data(), filled), matcher, true).format;
  }
  Cursor cursor(stream.window, filled, end, stream.reader);
  const Outcome o = parse_as(format, cursor, matcher, rule.format == SessionFormat::automatic);
  return verdict(o, cut || o.short_read);
}

}  // namespace coupecircuit
