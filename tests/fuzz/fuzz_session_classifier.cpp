// libFuzzer target for classify_session: every format (automatic and the
// three fixed ones), the default Voozanoo/Zend rule and a Symfony rule,
// with truncated false and true. Besides memory errors (run with ASan and
// UBSan) it checks properties that hold for any input:
//  - empty only for 0 bytes that are not truncated;
//  - the truncated flag never changes whether the marker was found, and
//    turns every other class into unknown;
//  - with a fixed format, a prefix that is authenticated stays so when the
//    rest of the data follows (the parse of a prefix is a prefix of the
//    parse).
// Seed corpus: tests/fuzz/corpus/session_classifier (real PHP sessions).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "session_classifier.hpp"

namespace {

using coupecircuit::ClassifierRule;
using coupecircuit::classify_session;
using coupecircuit::SessionClass;
using coupecircuit::SessionFormat;

void check(bool ok) {
  if (!ok) std::abort();
}

ClassifierRule make_rule(SessionFormat format, bool symfony) {
  ClassifierRule r;
  if (symfony) {
    auto parsed = coupecircuit::parse_authenticated_rule("_sf2_attributes contains _security_main", r);
    check(parsed.has_value());
    r = parsed.value();
  }
  r.format = format;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const ClassifierRule kRules[] = {
      make_rule(SessionFormat::automatic, false),     make_rule(SessionFormat::php, false),
      make_rule(SessionFormat::php_serialize, false), make_rule(SessionFormat::php_binary, false),
      make_rule(SessionFormat::automatic, true),      make_rule(SessionFormat::php, true),
      make_rule(SessionFormat::php_serialize, true),  make_rule(SessionFormat::php_binary, true),
  };
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const ClassifierRule& rule : kRules) {
    const SessionClass whole = classify_session(input, false, rule);
    const SessionClass cut = classify_session(input, true, rule);
    check(static_cast<std::size_t>(whole) < coupecircuit::kSessionClassCount);
    check((whole == SessionClass::empty) == input.empty());
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
