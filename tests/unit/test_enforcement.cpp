// Shedding decisions, the session cookie parser, exemptions and the health
// answer of mod_coupecircuit, without httpd.
#include <gtest/gtest.h>

#include <string_view>

#include "enforcement.hpp"

namespace cm = coupecircuit::module;
using coupecircuit::Verdict;

TEST(SessionCookie, FoundAmongOthersWithOrWithoutSpaces) {
  EXPECT_TRUE(cm::has_cookie("PHPSESSID=abc", "PHPSESSID"));
  EXPECT_TRUE(cm::has_cookie("a=1; PHPSESSID=abc; b=2", "PHPSESSID"));
  EXPECT_TRUE(cm::has_cookie("a=1;PHPSESSID=abc", "PHPSESSID"));
  EXPECT_TRUE(cm::has_cookie("a=1,  PHPSESSID = abc ", "PHPSESSID"));  // two Cookie headers merged by httpd
  EXPECT_TRUE(cm::has_cookie("PHPSESSID=\"abc\"", "PHPSESSID"));
}

TEST(SessionCookie, RepeatedNamesCountAsASession) {
  // The same cookie set for two paths or domains: common, and a session.
  EXPECT_TRUE(cm::has_cookie("PHPSESSID=abc; PHPSESSID=def", "PHPSESSID"));
  EXPECT_TRUE(cm::has_cookie("PHPSESSID=; PHPSESSID=def", "PHPSESSID"));
  EXPECT_TRUE(cm::has_cookie("PHPSESSID=abc; PHPSESSID=", "PHPSESSID"));
}

TEST(SessionCookie, EmptyMissingOrOtherNamesAreNoSession) {
  for (const std::string_view header :
       {"", "PHPSESSID=", "PHPSESSID", "PHPSESSID=\"\"", "PHPSESSID= ; PHPSESSID=", "XPHPSESSID=abc",
        "PHPSESSIDX=abc", "phpsessid=abc", "a=PHPSESSID=abc", ";;;", "=abc", "a=1; b=2"}) {
    EXPECT_FALSE(cm::has_cookie(header, "PHPSESSID")) << header;
  }
  EXPECT_TRUE(cm::has_cookie("SID=1", "SID"));
  EXPECT_FALSE(cm::has_cookie("PHPSESSID=1", "SID"));
}

namespace {
bool matches_css(const void* regex, std::string_view path) noexcept {
  return regex != nullptr && path.size() >= 4 && path.substr(path.size() - 4) == ".css";
}
}  // namespace

TEST(Exemptions, PrefixesMatchWholeSegmentsAndRegexesThroughTheMatcher) {
  static const int css_regex = 0;
  const cm::ExemptRule rules[] = {{"/static", nullptr}, {nullptr, &css_regex}};
  EXPECT_TRUE(cm::is_exempt(rules, "/static", matches_css));
  EXPECT_TRUE(cm::is_exempt(rules, "/static/app.js", matches_css));
  EXPECT_FALSE(cm::is_exempt(rules, "/staticky.html", matches_css));
  EXPECT_TRUE(cm::is_exempt(rules, "/styles/site.css", matches_css));
  EXPECT_FALSE(cm::is_exempt(rules, "/env.php", matches_css));
  EXPECT_FALSE(cm::is_exempt({}, "/static", matches_css));
}

TEST(Shedding, OnlyWhileTrippedOrCutAndNeverExempt) {
  for (const Verdict verdict : {Verdict::ok, Verdict::inconnu}) {
    EXPECT_FALSE(cm::should_shed(cm::Action::refuse_all, verdict, false, false));
  }
  for (const Verdict verdict : {Verdict::surcharge, Verdict::coupure}) {
    EXPECT_TRUE(cm::should_shed(cm::Action::refuse_all, verdict, true, false));
    EXPECT_FALSE(cm::should_shed(cm::Action::refuse_all, verdict, false, true));
    EXPECT_TRUE(cm::should_shed(cm::Action::refuse_new, verdict, false, false));
    EXPECT_FALSE(cm::should_shed(cm::Action::refuse_new, verdict, true, false));
    EXPECT_FALSE(cm::should_shed(cm::Action::none, verdict, false, false));
  }
}

TEST(Health, UnknownSessionsAreSaidWithoutDraining) {
  cm::RequestValues values;
  values.verdict = Verdict::ok;
  EXPECT_EQ(cm::health_answer(values).body, "UP\n");
  values.sessions_known = false;
  values.sessions_high = true;  // unknown counts as high for the hysteresis: not a reason given
  EXPECT_EQ(cm::health_answer(values).status, 200);
  EXPECT_EQ(cm::health_answer(values).body, "UP sessions-inconnues\n");
  values.verdict = Verdict::surcharge;
  values.tripped = true;
  values.load_high = true;
  EXPECT_EQ(cm::health_answer(values).status, 503);
  EXPECT_EQ(cm::health_answer(values).body, "DRAIN load sessions-inconnues\n");
  values.verdict = Verdict::inconnu;
  EXPECT_EQ(cm::health_answer(values).body, "UP inconnu\n");
}
