// Classification of PHP session files.
//
// The parser reads PHP's serialize() grammar strictly, following the length
// prefixes, so user data cannot fake a marker. It works on a string_view,
// allocates nothing, and walks nested arrays and objects with a fixed-size
// explicit stack (kMaxDepth frames) instead of recursion; every step consumes
// input, so the time is linear in the size of the data.
//
// Grammar accepted for one value (the subset PHP 7.4+ writes and reads):
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
#include "session_classifier.hpp"

#include <array>
#include <cstddef>
#include <cstdint>

namespace coupecircuit {

std::string_view to_string(SessionClass c) noexcept {
  switch (c) {
    case SessionClass::empty:
      return "empty";
    case SessionClass::anonymous:
      return "anonymous";
    case SessionClass::unknown:
      return "unknown";
    case SessionClass::authenticated:
      return "authenticated";
  }
  return "unknown";
}

std::string_view to_string(SessionFormat f) noexcept {
  switch (f) {
    case SessionFormat::automatic:
      return "automatic";
    case SessionFormat::php:
      return "php";
    case SessionFormat::php_serialize:
      return "php_serialize";
    case SessionFormat::php_binary:
      return "php_binary";
  }
  return "automatic";
}

Result<SessionFormat> parse_session_format(std::string_view text) {
  if (text == "automatic" || text == "auto") return SessionFormat::automatic;
  if (text == "php") return SessionFormat::php;
  if (text == "php_serialize") return SessionFormat::php_serialize;
  if (text == "php_binary") return SessionFormat::php_binary;
  return make_error("invalid session format \"" + std::string(text) +
                    "\": expected one of automatic, php, php_serialize, php_binary");
}

namespace {

bool is_rule_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Splits off the next whitespace-separated token of text, advancing pos.
std::string_view next_token(std::string_view text, std::size_t& pos) noexcept {
  while (pos < text.size() && is_rule_space(text[pos])) ++pos;
  const std::size_t start = pos;
  while (pos < text.size() && !is_rule_space(text[pos])) ++pos;
  return text.substr(start, pos - start);
}

}  // namespace

Result<ClassifierRule> parse_authenticated_rule(std::string_view text, ClassifierRule base) {
  std::size_t pos = 0;
  const std::string_view container = next_token(text, pos);
  const std::string_view verb = next_token(text, pos);
  const std::string_view marker = next_token(text, pos);
  const std::string_view extra = next_token(text, pos);
  if (container.empty() || verb != "contains" || marker.empty() || !extra.empty()) {
    return make_error("invalid authenticated rule \"" + std::string(text) +
                      "\": expected \"<container> contains <marker>\", e.g. \"* contains storage\" or "
                      "\"_sf2_attributes contains _security_main\"");
  }
  base.container_key = std::string(container);
  base.marker_key = std::string(marker);
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
  std::size_t tokens = 0;  // serialized tokens read before stopping
  bool marker = false;     // marker key seen as a direct key of a container
  bool unknown_key = false;  // the rule's unknown_key seen as a top-level key
};

// How the keys of an array or object are interpreted.
enum class Role : std::uint8_t {
  plain,      // nothing to look for
  container,  // a direct key equal to the marker authenticates
  top_level,  // keys are session variable names (php_serialize outer array)
};

// Trivial on purpose: the parse stack is left uninitialised and each frame
// is written before it is read.
struct Frame {
  std::uint64_t remaining;  // key/value pairs still to read
  Role role;
  bool object;
};

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Class-name bytes PHP accepts when unserializing: letters, digits, '_',
// namespace separators and any byte >= 0x80.
bool is_class_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || is_digit(c) || u == '_' || u == '\\' || u >= 0x80;
}

// Bytes that may appear in the text of a float.
bool is_double_char(char c) noexcept {
  return is_digit(c) || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E' || c == 'I' || c == 'N' ||
         c == 'F' || c == 'A';
}

// Validates the text between "d:" and ";".
bool valid_double(std::string_view t) noexcept {
  if (t == "NAN" || t == "INF" || t == "-INF") return true;
  std::size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  std::size_t int_digits = 0;
  while (i < t.size() && is_digit(t[i])) {
    ++i;
    ++int_digits;
  }
  std::size_t frac_digits = 0;
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && is_digit(t[i])) {
      ++i;
      ++frac_digits;
    }
  }
  if (int_digits + frac_digits == 0) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    std::size_t exp_digits = 0;
    while (i < t.size() && is_digit(t[i])) {
      ++i;
      ++exp_digits;
    }
    if (exp_digits == 0) return false;
  }
  return i == t.size();
}

// PHP stores protected and private property names as "\0*\0name" and
// "\0Class\0name"; the visible name is what follows the second NUL.
std::string_view unmangle(std::string_view name) noexcept {
  if (name.size() < 2 || name[0] != '\0') return name;
  const std::size_t end = name.find('\0', 1);
  if (end == std::string_view::npos) return name;
  return name.substr(end + 1);
}

class Parser {
 public:
  Parser(std::string_view data, const ClassifierRule& rule, bool plausible_php_keys) noexcept
      : data_(data),
        container_(rule.container_key),
        marker_(rule.marker_key),
        unknown_(rule.unknown_key),
        any_container_(rule.container_key == "*"),
        plausible_php_keys_(plausible_php_keys) {}

  // php: key|value key|value ...
  Outcome parse_php() noexcept {
    while (pos_ < data_.size()) {
      const std::size_t bar = data_.find('|', pos_);
      if (bar == std::string_view::npos) return finish(Status::truncated);
      const std::string_view key = data_.substr(pos_, bar - pos_);
      if (plausible_php_keys_) {
        for (const char c : key) {
          const auto u = static_cast<unsigned char>(c);
          if (u < 0x20 || u == 0x7f) return finish(Status::malformed);
        }
      }
      pos_ = bar + 1;
      const Status s = parse_value(top_level_key(key));
      if (s != Status::complete) return finish(s);
    }
    return finish(Status::complete);
  }

  // php_serialize: one array whose keys are the session variables.
  Outcome parse_php_serialize() noexcept {
    if (data_.empty()) return finish(Status::truncated);
    if (data_[0] != 'a') return finish(Status::malformed);
    const Status s = parse_value(Role::top_level);
    if (s != Status::complete) return finish(s);
    return finish(pos_ == data_.size() ? Status::complete : Status::malformed);
  }

  // php_binary: <len><key><value> ...; a length byte with bit 0x80 set marks
  // an undefined variable: the key (len & 0x7f bytes) has no value.
  Outcome parse_php_binary() noexcept {
    while (pos_ < data_.size()) {
      const auto len_byte = static_cast<unsigned char>(data_[pos_]);
      const bool undefined = (len_byte & 0x80U) != 0;
      const std::size_t len = len_byte & 0x7fU;
      ++pos_;
      if (data_.size() - pos_ < len) return finish(Status::truncated);
      const std::string_view key = data_.substr(pos_, len);
      pos_ += len;
      if (undefined) continue;
      const Status s = parse_value(top_level_key(key));
      if (s != Status::complete) return finish(s);
    }
    return finish(Status::complete);
  }

 private:
  Outcome finish(Status s) noexcept {
    out_.status = s;
    return out_;
  }

  // Records a session variable name; returns how its value is read.
  Role top_level_key(std::string_view key) noexcept {
    if (!unknown_.empty() && key == unknown_) out_.unknown_key = true;
    return (any_container_ || key == container_) ? Role::container : Role::plain;
  }

  [[nodiscard]] bool at_end() const noexcept { return pos_ >= data_.size(); }

  // Consumes the literal c.
  Status expect(char c) noexcept {
    if (at_end()) return Status::truncated;
    if (data_[pos_] != c) return Status::malformed;
    ++pos_;
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
    out = 0;
    std::size_t digits = 0;
    while (!at_end() && is_digit(data_[pos_])) {
      if (out >= kLimit) return Status::malformed;
      out = out * 10U + static_cast<std::uint64_t>(data_[pos_] - '0');
      ++pos_;
      ++digits;
    }
    if (at_end()) return Status::truncated;
    if (digits == 0) return Status::malformed;
    return expect(terminator);
  }

  // Reads [+-]?[0-9]+; and returns the number's text in out.
  Status read_int_text(std::string_view& out) noexcept {
    const std::size_t start = pos_;
    if (!at_end() && (data_[pos_] == '+' || data_[pos_] == '-')) ++pos_;
    const std::size_t digits_start = pos_;
    while (!at_end() && is_digit(data_[pos_])) ++pos_;
    if (at_end()) return Status::truncated;
    if (pos_ == digits_start) return Status::malformed;
    out = data_.substr(start, pos_ - start);
    return expect(';');
  }

  // Reads "<n bytes>" after the length and its ':' have been read.
  Status read_quoted(std::uint64_t n, std::string_view& out) noexcept {
    Status s = expect('"');
    if (s != Status::complete) return s;
    if (data_.size() - pos_ < n) {
      pos_ = data_.size();
      return Status::truncated;
    }
    const auto len = static_cast<std::size_t>(n);
    out = data_.substr(pos_, len);
    pos_ += len;
    return expect('"');
  }

  // s:N:"...";
  Status read_string(std::string_view& out) noexcept {
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
    Status s = read_quoted(n, name);
    if (s != Status::complete) return s;
    if (name.empty()) return Status::malformed;
    for (const char c : name) {
      if (!is_class_char(c)) return Status::malformed;
    }
    return expect(':');
  }

  // Reads one array key or object property name.
  Status read_key(std::string_view& key, bool& is_int) noexcept {
    if (at_end()) return Status::truncated;
    if (data_[pos_] == 'i') {
      is_int = true;
      const Status s = expect_tag('i');
      if (s != Status::complete) return s;
      return read_int_text(key);
    }
    if (data_[pos_] == 's') {
      is_int = false;
      return read_string(key);
    }
    return Status::malformed;
  }

  // Reads the head of one value. Scalars are read whole; for an array or
  // object, the "{" is consumed and opened is set with its pair count.
  Status read_value_head(bool& opened, bool& object, std::uint64_t& count) noexcept {
    opened = false;
    if (at_end()) return Status::truncated;
    const char tag = data_[pos_];
    Status s = Status::complete;
    switch (tag) {
      case 'N':
        ++pos_;
        return expect(';');
      case 'b': {
        s = expect_tag('b');
        if (s != Status::complete) return s;
        if (at_end()) return Status::truncated;
        if (data_[pos_] != '0' && data_[pos_] != '1') return Status::malformed;
        ++pos_;
        return expect(';');
      }
      case 'i': {
        s = expect_tag('i');
        if (s != Status::complete) return s;
        std::string_view ignored;
        return read_int_text(ignored);
      }
      case 'd': {
        s = expect_tag('d');
        if (s != Status::complete) return s;
        const std::size_t start = pos_;
        while (!at_end() && is_double_char(data_[pos_])) ++pos_;
        if (at_end()) return Status::truncated;
        if (data_[pos_] != ';' || !valid_double(data_.substr(start, pos_ - start))) return Status::malformed;
        ++pos_;
        return Status::complete;
      }
      case 's': {
        std::string_view ignored;
        return read_string(ignored);
      }
      case 'r':
      case 'R': {
        s = expect_tag(tag);
        if (s != Status::complete) return s;
        std::uint64_t index = 0;
        s = read_uint(index, ';');
        if (s != Status::complete) return s;
        return index == 0 ? Status::malformed : Status::complete;
      }
      case 'E': {
        s = expect_tag('E');
        if (s != Status::complete) return s;
        std::uint64_t n = 0;
        s = read_uint(n, ':');
        if (s != Status::complete) return s;
        std::string_view name;
        s = read_quoted(n, name);
        if (s != Status::complete) return s;
        const std::size_t colon = name.find(':');
        if (colon == std::string_view::npos || colon == 0 || colon + 1 == name.size()) return Status::malformed;
        return expect(';');
      }
      case 'C': {
        s = expect_tag('C');
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
        if (data_.size() - pos_ < raw) {
          pos_ = data_.size();
          return Status::truncated;
        }
        pos_ += static_cast<std::size_t>(raw);
        return expect('}');
      }
      case 'a':
      case 'O': {
        object = tag == 'O';
        s = expect_tag(tag);
        if (s != Status::complete) return s;
        s = read_uint(count, ':');
        if (s != Status::complete) return s;
        if (object) {
          s = read_class_name(count);
          if (s != Status::complete) return s;
          s = read_uint(count, ':');
          if (s != Status::complete) return s;
        }
        s = expect('{');
        if (s != Status::complete) return s;
        opened = true;
        return Status::complete;
      }
      default:
        return Status::malformed;
    }
  }

  // Reads one complete value whose keys (if it is an array or object) play
  // the given role.
  Status parse_value(Role role) noexcept {
    std::array<Frame, kMaxDepth> stack;  // NOLINT(cppcoreguidelines-pro-type-member-init)
    std::size_t depth = 0;
    Role next_role = role;
    for (;;) {
      bool opened = false;
      bool object = false;
      std::uint64_t count = 0;
      Status s = read_value_head(opened, object, count);
      if (s != Status::complete) return s;
      ++out_.tokens;
      if (opened) {
        if (next_role == Role::top_level && object) return Status::malformed;
        if (depth == kMaxDepth) return Status::malformed;
        stack[depth] = Frame{count, next_role, object};
        ++depth;
      }
      // Close finished containers, then read the next key, if any.
      for (;;) {
        if (depth == 0) return Status::complete;
        Frame& top = stack[depth - 1];
        if (top.remaining == 0) {
          s = expect('}');
          if (s != Status::complete) return s;
          ++out_.tokens;
          --depth;
          continue;
        }
        std::string_view key;
        bool is_int = false;
        s = read_key(key, is_int);
        if (s != Status::complete) return s;
        ++out_.tokens;
        --top.remaining;
        next_role = Role::plain;
        if (top.role == Role::container) {
          const std::string_view name = (top.object && !is_int) ? unmangle(key) : key;
          if (name == marker_) out_.marker = true;
        } else if (top.role == Role::top_level) {
          next_role = top_level_key(key);
        }
        break;
      }
    }
  }

  std::string_view data_;
  std::size_t pos_ = 0;
  std::string_view container_;
  std::string_view marker_;
  std::string_view unknown_;
  bool any_container_;
  bool plausible_php_keys_;
  Outcome out_{};
};

Outcome parse_as(SessionFormat format, std::string_view data, const ClassifierRule& rule,
                 bool automatic) noexcept {
  Parser p(data, rule, automatic);
  switch (format) {
    case SessionFormat::php_serialize:
      return p.parse_php_serialize();
    case SessionFormat::php_binary:
      return p.parse_php_binary();
    case SessionFormat::php:
    case SessionFormat::automatic:
      break;
  }
  return p.parse_php();
}

// Automatic detection.
//
// The formats are tried in the order php_serialize, php, php_binary, and
// the first one that reads the whole input as well-formed wins:
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
Outcome detect(std::string_view data, const ClassifierRule& rule) noexcept {
  constexpr std::array<SessionFormat, 3> kOrder{SessionFormat::php_serialize, SessionFormat::php,
                                                 SessionFormat::php_binary};
  Outcome best{};
  bool have_best = false;
  for (const SessionFormat f : kOrder) {
    const Outcome o = parse_as(f, data, rule, true);
    if (o.status == Status::complete) return o;
    if (!have_best || o.tokens > best.tokens) {
      best = o;
      have_best = true;
    }
  }
  return best;
}

}  // namespace

SessionClass classify_session(std::string_view data, bool truncated, const ClassifierRule& rule) noexcept {
  if (data.empty()) return truncated ? SessionClass::unknown : SessionClass::empty;
  const Outcome o = rule.format == SessionFormat::automatic ? detect(data, rule)
                                                             : parse_as(rule.format, data, rule, false);
  if (o.marker) return SessionClass::authenticated;
  if (truncated || o.status != Status::complete) return SessionClass::unknown;
  if (o.unknown_key) return SessionClass::unknown;
  return SessionClass::anonymous;
}

}  // namespace coupecircuit
