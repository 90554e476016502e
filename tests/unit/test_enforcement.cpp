// Shedding decisions, the session cookie parser, exemptions and the health
// answer of mod_coupecircuit, without httpd.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string_view>

#include "enforcement.hpp"

namespace cm = coupecircuit::module;
namespace snapshot = coupecircuit::snapshot;
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

namespace {

snapshot::Payload probes_payload() {
  snapshot::Payload p{};
  p.probe_flags = snapshot::kProbesConfigured;
  p.probe_count = 3;
  p.probes_updated_wall_s = 1'700'000'000;
  const char* names[] = {"pg", "elastic", "cache"};
  for (int i = 0; i < 3; ++i) {
    std::strcpy(p.probes[i].name, names[i]);
    p.probes[i].status = snapshot::kProbeUp;
    p.probes[i].latency_us = 1500;
  }
  p.probes[0].flags = snapshot::kProbeCritical | snapshot::kProbeHasSaturation;
  p.probes[0].saturation_pct = 57;
  p.probes[1].flags = snapshot::kProbeCritical;
  return p;
}

}  // namespace

TEST(Health, ACriticalProbeDownDrainsAndIsNamed) {
  cm::RequestValues values;
  values.verdict = Verdict::ok;
  auto p = probes_payload();
  EXPECT_EQ(cm::health_answer(values, &p).body, "UP\n");
  p.probes[2].status = snapshot::kProbeDown;  // not critical: no drain
  EXPECT_EQ(cm::health_answer(values, &p).status, 200);
  p.probes[1].status = snapshot::kProbeDown;
  p.probes[0].status = snapshot::kProbeDown;
  p.probe_flags |= snapshot::kProbesCriticalDown;
  EXPECT_EQ(cm::health_answer(values, &p).status, 503);
  EXPECT_EQ(cm::health_answer(values, &p).body, "DRAIN indisponible:pg,elastic\n");
  values.verdict = Verdict::surcharge;
  values.tripped = true;
  values.load_high = true;
  EXPECT_EQ(cm::health_answer(values, &p).body, "DRAIN load indisponible:pg,elastic\n");
  // An unknown snapshot says nothing of the probes.
  values.verdict = Verdict::inconnu;
  EXPECT_EQ(cm::health_answer(values, &p).body, "UP inconnu\n");
}

TEST(Health, StaleProbeResultsNeverDrain) {
  cm::RequestValues values;
  values.verdict = Verdict::ok;
  auto p = probes_payload();
  p.probe_flags |= snapshot::kProbesStale | snapshot::kProbesCriticalDown;  // a damaged file: stale wins
  for (auto& entry : p.probes) entry.status = snapshot::kProbeUnknown;
  EXPECT_EQ(cm::health_answer(values, &p).status, 200);
  EXPECT_EQ(cm::health_answer(values, &p).body, "UP probes-inconnues\n");
  const auto json = nlohmann::json::parse(cm::health_json_answer(values, &p, 0).body);
  EXPECT_EQ(json["status"], "warn");
  // Without probes configured, nothing changes.
  snapshot::Payload none{};
  EXPECT_EQ(cm::health_answer(values, &none).body, "UP\n");
  EXPECT_EQ(nlohmann::json::parse(cm::health_json_answer(values, &none, 0).body)["status"], "pass");
}

TEST(Health, JsonAnswer) {
  cm::RequestValues values;
  values.verdict = Verdict::ok;
  auto p = probes_payload();
  auto answer = cm::health_json_answer(values, &p, 0);
  EXPECT_EQ(answer.status, 200);
  auto json = nlohmann::json::parse(answer.body);
  EXPECT_EQ(json["status"], "pass");
  EXPECT_EQ(json["output"], "UP");
  EXPECT_EQ(json["checks"]["pg:responseTime"][0]["status"], "pass");
  EXPECT_EQ(json["checks"]["pg:responseTime"][0]["observedValue"], 1.5);
  EXPECT_EQ(json["checks"]["pg:utilization"][0]["observedValue"], 57);
  EXPECT_FALSE(json["checks"].contains("elastic:utilization"));
  p.probes[2].status = snapshot::kProbeDown;
  std::strcpy(p.probes[2].last_error, "connection refused");
  json = nlohmann::json::parse(cm::health_json_answer(values, &p, 0).body);
  EXPECT_EQ(json["status"], "warn");
  EXPECT_EQ(json["checks"]["cache:responseTime"][0]["status"], "warn");
  EXPECT_EQ(json["checks"]["cache:responseTime"][0]["output"], "connection refused");
  p.probes[1].status = snapshot::kProbeDown;
  p.probe_flags |= snapshot::kProbesCriticalDown;
  answer = cm::health_json_answer(values, &p, 0);
  EXPECT_EQ(answer.status, 503);
  json = nlohmann::json::parse(answer.body);
  EXPECT_EQ(json["status"], "fail");
  EXPECT_EQ(json["output"], "DRAIN indisponible:elastic");
  EXPECT_EQ(json["checks"]["elastic:responseTime"][0]["status"], "fail");
}

TEST(Health, WantsJson) {
  EXPECT_TRUE(cm::wants_health_json("format=health+json"));
  EXPECT_TRUE(cm::wants_health_json("a=1&format=health%2Bjson"));
  EXPECT_FALSE(cm::wants_health_json(nullptr));
  EXPECT_FALSE(cm::wants_health_json("format=json"));
  EXPECT_FALSE(cm::wants_health_json("xformat=health+json"));
}
