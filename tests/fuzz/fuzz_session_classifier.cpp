// libFuzzer target for classify_session: every format (automatic and the
// four fixed ones, igbinary included), the default Voozanoo/Zend rule, a
// Symfony rule and a list of several rules with globs and "has", with
// truncated false and true, and read on in chunks through a small window.
// Besides memory errors (run with ASan and UBSan) it checks properties that
// hold for any input:
//  - empty never for truncated data, always for 0 bytes;
//  - read on through a small window (64 bytes, filled 7 at a time), a fixed
//    format gives the class of the whole input in memory, or unknown when a
//    key is longer than the window;
//  - the truncated flag never changes whether the marker was found, and
//    turns every other class into unknown;
//  - with a fixed format, a prefix that is authenticated stays so when the
//    rest of the data follows (the parse of a prefix is a prefix of the
//    parse).
// Seed corpus: tests/fuzz/corpus/session_classifier (real PHP sessions).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "session_classifier.hpp"

namespace {

using coupecircuit::ClassifierRule;
using coupecircuit::classify_session;
using coupecircuit::SessionClass;
using coupecircuit::SessionFormat;

void check(bool ok) {
  if (!ok) std::abort();
}

ClassifierRule make_rule(SessionFormat format, const char* rules) {
  ClassifierRule r;
  if (rules != nullptr) {
    auto parsed = coupecircuit::parse_authenticated_rule(rules, r);
    check(parsed.has_value());
    r = parsed.value();
  }
  r.format = format;
  return r;
}

// Hands out the input by offset, a few bytes at a time.
class PieceReader final : public coupecircuit::SessionReader {
 public:
  explicit PieceReader(std::string_view data) : data_(data) {}
  std::size_t read_at(std::uint64_t offset, char* into, std::size_t size) noexcept override {
    if (offset >= data_.size()) return 0;
    std::size_t n = data_.size() - static_cast<std::size_t>(offset);
    if (n > size) n = size;
    if (n > 7) n = 7;
    std::memcpy(into, data_.data() + offset, n);
    return n;
  }

 private:
  std::string_view data_;
};

SessionClass classify_chunked(std::string_view input, std::size_t window, const ClassifierRule& rule) {
  std::vector<char> buffer(window == 0 ? 1 : window);
  PieceReader reader(input);
  coupecircuit::SessionStream stream;
  stream.window = buffer;
  stream.size = input.size();
  stream.limit = input.size();
  stream.reader = &reader;
  stream.filled = reader.read_at(0, buffer.data(), buffer.size());
  return coupecircuit::classify_session(stream, rule);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr const char* kSymfony = "_sf2_attributes contains _security_main";
  constexpr const char* kSeveral = "_sf2_attributes contains _security_*, has user_id, vzn_* contains storage";
  static const ClassifierRule kRules[] = {
      make_rule(SessionFormat::automatic, nullptr),     make_rule(SessionFormat::php, nullptr),
      make_rule(SessionFormat::php_serialize, nullptr), make_rule(SessionFormat::php_binary, nullptr),
      make_rule(SessionFormat::igbinary, nullptr),      make_rule(SessionFormat::automatic, kSymfony),
      make_rule(SessionFormat::php, kSymfony),          make_rule(SessionFormat::php_serialize, kSymfony),
      make_rule(SessionFormat::php_binary, kSymfony),   make_rule(SessionFormat::igbinary, kSymfony),
      make_rule(SessionFormat::automatic, kSeveral),    make_rule(SessionFormat::igbinary, kSeveral),
  };
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const ClassifierRule& rule : kRules) {
    const SessionClass whole = classify_session(input, false, rule);
    const SessionClass cut = classify_session(input, true, rule);
    check(static_cast<std::size_t>(whole) < coupecircuit::kSessionClassCount);
    if (input.empty()) check(whole == SessionClass::empty);
    // Read on through a window: a fixed format reads the same bytes; the
    // automatic one may pick another format from a partial window only
    // when the input's start is not one that reads as well-formed.
    if (rule.format != SessionFormat::automatic) {
      // A window of 64 bytes, filled 7 bytes at a time, moves in the middle
      // of tokens: the same class, or unknown when a key does not fit.
      const SessionClass small = classify_chunked(input, 64, rule);
      check(small == whole || small == SessionClass::unknown);
    }
    check(cut != SessionClass::empty && cut != SessionClass::anonymous);
    check((whole == SessionClass::authenticated) == (cut == SessionClass::authenticated));
    if (rule.format != SessionFormat::automatic && size > 1) {
      const std::string_view prefix = input.substr(0, size / 2);
      if (classify_session(prefix, true, rule) == SessionClass::authenticated) {
        check(whole == SessionClass::authenticated);
      }
    }
  }
  return 0;
}
