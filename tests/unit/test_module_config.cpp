// Directive parsers, defaults and merge rules of mod_coupecircuit, without httpd.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "module_config.hpp"
#include "snapshot.hpp"
#include "snapshot_layout.hpp"

namespace cm = coupecircuit::module;

TEST(ModuleConfig, DefaultsAreOnTenSecondsAndTheDocumentedNames) {
  const cm::ServerSettings settings;
  EXPECT_TRUE(settings.is_enabled());
  EXPECT_EQ(settings.max_age_ns(), 10'000'000'000ULL);
  EXPECT_STREQ(settings.env_name(cm::Variable::load_avg), "LOAD_AVG");
  EXPECT_STREQ(settings.env_name(cm::Variable::sessions_actives), "SESSIONS_ACTIVES");
  EXPECT_STREQ(settings.env_name(cm::Variable::coupure), "COUPURE_CHARGE_SERVEUR");
  EXPECT_STREQ(settings.env_name(cm::Variable::seuil_sessions), "SEUIL_SESSIONS_ACTIVES");
  EXPECT_STREQ(settings.env_name(cm::Variable::seuil_load), "SEUIL_LOAD_AVG");
  EXPECT_STREQ(settings.env_name(cm::Variable::etat), "COUPECIRCUIT_ETAT");
  EXPECT_STREQ(settings.env_name(cm::Variable::age), "COUPECIRCUIT_AGE");
  EXPECT_EQ(settings.thresholds.has_sessions, 0U);
  EXPECT_EQ(settings.thresholds.has_load, 0U);
}

TEST(ModuleConfig, OnOff) {
  EXPECT_TRUE(*cm::parse_on_off("CoupeCircuit", "On"));
  EXPECT_FALSE(*cm::parse_on_off("CoupeCircuit", "off"));
  auto bad = cm::parse_on_off("CoupeCircuit", "yes");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("CoupeCircuit"), std::string::npos);
}

TEST(ModuleConfig, MaxAgeAcceptsPositiveSecondsOnly) {
  EXPECT_EQ(*cm::parse_max_age("5"), 5U);
  EXPECT_EQ(*cm::parse_max_age("86400"), 86400U);
  for (const char* bad : {"0", "-1", "abc", "", "1.5", "86401", " 5"}) {
    auto parsed = cm::parse_max_age(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().message.rfind("CoupeCircuitMaxAge", 0), 0U) << parsed.error().message;
  }
}

namespace {

// CoupeCircuitThreshold KIND TRIP [RELEASE] parsed: its kind and values.
void expect_threshold(const char* kind, const char* trip, const char* release, bool is_load, std::uint64_t trip_value,
                      std::uint64_t release_value) {
  auto parsed = cm::parse_threshold(kind, trip, release);
  ASSERT_TRUE(parsed) << kind << " " << trip << " " << release;
  EXPECT_EQ(parsed->is_load, is_load);
  EXPECT_EQ(parsed->trip, trip_value);
  EXPECT_EQ(parsed->release, release_value);
  EXPECT_EQ(parsed->release_given, *release != '\0');
}

}  // namespace

TEST(ModuleConfig, ThresholdSessionsWithDefaultReleaseAtNinetyPercent) {
  expect_threshold("sessions", "500", "", false, 500, 450);
  expect_threshold("sessions", "1", "", false, 1, 0);  // always strictly below TRIP
}

TEST(ModuleConfig, ThresholdLoadWithRelease) {
  expect_threshold("LOAD", "8", "6.5", true, 800, 650);
  auto parsed = cm::parse_threshold("LOAD", "8", "6.5");
  ASSERT_TRUE(parsed);
  cm::ServerSettings settings;
  cm::apply_threshold(settings, *parsed);
  cm::finish_settings(settings, "");
  EXPECT_EQ(settings.thresholds.has_load, 1U);
  EXPECT_STREQ(settings.thresholds.load_text, "8.00");
  EXPECT_EQ(settings.load_release_centi(), 650U);
}

TEST(ModuleConfig, ThresholdErrorsNameTheDirective) {
  const char* cases[][3] = {{"foo", "1", ""},         {"sessions", "abc", ""},  {"load", "1.234", ""},
                            {"sessions", "10", "20"}, {"sessions", "10", "10"}, {"sessions", "0", ""},
                            {"load", "-1", ""},       {"sessions", "5", "x"}};
  for (const auto& c : cases) {
    auto parsed = cm::parse_threshold(c[0], c[1], c[2]);
    ASSERT_FALSE(parsed) << c[0] << " " << c[1] << " " << c[2];
    EXPECT_EQ(parsed.error().message.rfind("CoupeCircuitThreshold", 0), 0U) << parsed.error().message;
  }
}

TEST(ModuleConfig, EnvNameLogicalAndDefaultNames) {
  EXPECT_EQ(*cm::parse_logical_name("load_avg"), cm::Variable::load_avg);
  EXPECT_EQ(*cm::parse_logical_name("COUPECIRCUIT_ETAT"), cm::Variable::etat);
  EXPECT_EQ(*cm::parse_logical_name("Seuil_Load"), cm::Variable::seuil_load);
  auto unknown = cm::parse_logical_name("unknown_logical");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("CoupeCircuitEnvName"), std::string::npos);
  EXPECT_TRUE(cm::validate_env_name("SERVER_LOAD"));
  for (const char* bad : {"", "BAD NAME", "1ABC", "A-B", "A=B"}) EXPECT_FALSE(cm::validate_env_name(bad)) << bad;
}

TEST(ModuleConfig, SnapshotPathMustBeAbsolute) {
  EXPECT_TRUE(cm::validate_snapshot_path("/run/coupecircuit/snapshot"));
  EXPECT_FALSE(cm::validate_snapshot_path("relative/path"));
  EXPECT_FALSE(cm::validate_snapshot_path(""));
}

TEST(ModuleConfig, MergeChildWinsFieldByField) {
  cm::ServerSettings parent;
  parent.enabled = true;
  parent.max_age_seconds = 30;
  cm::apply_threshold(parent, *cm::parse_threshold("sessions", "100", ""));
  cm::apply_threshold(parent, *cm::parse_threshold("load", "4", ""));
  parent.env_names[static_cast<std::size_t>(cm::Variable::load_avg)] = "PARENT_LOAD";
  parent.snapshot_path = "/run/other/snapshot";

  cm::ServerSettings child;
  cm::apply_threshold(child, *cm::parse_threshold("sessions", "7", "5"));
  child.env_names[static_cast<std::size_t>(cm::Variable::etat)] = "CHILD_ETAT";
  child.hold_seconds = 0;  // 0 is a value, not "unset"

  auto merged = cm::merge_settings(parent, child);
  cm::finish_settings(merged, "child.test");
  EXPECT_TRUE(merged.is_enabled());
  EXPECT_EQ(merged.max_age_ns(), 30'000'000'000ULL);
  EXPECT_EQ(merged.hold_ns(), 0U);
  EXPECT_EQ(merged.thresholds.sessions, 7U);
  EXPECT_STREQ(merged.thresholds.sessions_text, "7");
  EXPECT_EQ(merged.sessions_release(), 5U);
  EXPECT_EQ(merged.thresholds.has_load, 1U);  // inherited, with its RELEASE
  EXPECT_STREQ(merged.thresholds.load_text, "4.00");
  EXPECT_EQ(merged.load_release_centi(), 360U);
  EXPECT_STREQ(merged.env_name(cm::Variable::load_avg), "PARENT_LOAD");
  EXPECT_STREQ(merged.env_name(cm::Variable::etat), "CHILD_ETAT");
  EXPECT_STREQ(merged.env_name(cm::Variable::age), "COUPECIRCUIT_AGE");
  EXPECT_STREQ(merged.snapshot_path_or_default(), "/run/other/snapshot");

  cm::ServerSettings off;
  off.enabled = false;
  EXPECT_FALSE(cm::merge_settings(parent, off).is_enabled());
  EXPECT_FALSE(cm::merge_settings(off, cm::ServerSettings{}).is_enabled());
  // Nothing set anywhere: the defaults table.
  const auto defaults = cm::merge_settings(cm::ServerSettings{}, cm::ServerSettings{});
  EXPECT_TRUE(defaults.is_enabled());
  EXPECT_EQ(defaults.max_age_ns(), cm::kDefaults.max_age_seconds * 1'000'000'000ULL);
  EXPECT_EQ(defaults.hold_ns(), cm::kDefaults.hold_seconds * 1'000'000'000ULL);
  EXPECT_STREQ(defaults.snapshot_path_or_default(), "/run/coupecircuit/snapshot");
}

TEST(ModuleConfig, DirectoryMergeChildWinsAndExemptionsAddUp) {
  std::vector<std::vector<cm::ExemptRule>> arena;
  const auto allocate = [&](std::size_t count) { return arena.emplace_back(count).data(); };
  const cm::ExemptRule outer_rules[] = {{"/static", nullptr}};
  const cm::ExemptRule inner_rules[] = {{"/all/keep", nullptr}};

  cm::DirSettings outer;
  outer.action = cm::Action::refuse_new;
  outer.retry_after = 120;
  outer.session_cookie = "SID";
  outer.exempt = outer_rules;
  cm::DirSettings inner;
  inner.action = cm::Action::refuse_all;
  inner.shed_status = 429;
  inner.retry_after = 0;  // 0 is a value: "Retry-After: 0"
  inner.exempt = inner_rules;

  const cm::DirSettings merged = cm::merge_dir_settings(outer, inner, allocate);
  EXPECT_EQ(merged.action_or_default(), cm::Action::refuse_all);
  EXPECT_EQ(merged.shed_status_or_default(), 429);
  ASSERT_TRUE(merged.retry_after.has_value());
  EXPECT_EQ(*merged.retry_after, 0U);
  EXPECT_STREQ(merged.session_cookie_or_default(), "SID");
  EXPECT_FALSE(merged.health_token.has_value());
  ASSERT_EQ(merged.exempt.size(), 2U);
  EXPECT_STREQ(merged.exempt[0].prefix, "/static");
  EXPECT_STREQ(merged.exempt[1].prefix, "/all/keep");

  // An inner section that sets nothing inherits everything.
  const cm::DirSettings inherited = cm::merge_dir_settings(merged, cm::DirSettings{}, allocate);
  EXPECT_EQ(inherited.action_or_default(), cm::Action::refuse_all);
  EXPECT_EQ(inherited.exempt.size(), 2U);

  // Nothing set anywhere: the defaults table.
  const cm::DirSettings defaults = cm::merge_dir_settings(cm::DirSettings{}, cm::DirSettings{}, allocate);
  EXPECT_EQ(defaults.action_or_default(), cm::kDefaults.action);
  EXPECT_FALSE(defaults.refuses());
  EXPECT_EQ(defaults.shed_status_or_default(), 503);
  EXPECT_STREQ(defaults.session_cookie_or_default(), "PHPSESSID");
  EXPECT_FALSE(defaults.retry_after.has_value());
  EXPECT_FALSE(defaults.error_body.has_value());
  EXPECT_TRUE(defaults.exempt.empty());
}

TEST(ModuleConfig, VhostIdentityIsLowercaseAndHashed) {
  cm::ServerSettings settings;
  cm::finish_settings(settings, "WWW.Example.ORG");
  EXPECT_STREQ(settings.vhost_name, "www.example.org");
  EXPECT_EQ(settings.vhost_hash, coupecircuit::snapshot::vhost_name_hash("www.example.org", 15));
  const std::string long_name(200, 'a');
  cm::finish_settings(settings, long_name);
  EXPECT_EQ(std::strlen(settings.vhost_name), coupecircuit::snapshot::kVhostNameCapacity - 1);
}

// ---- The export table

TEST(ExportedVariables, EveryRowHasADistinctNameAndASource) {
  for (std::size_t i = 0; i < cm::kVariableCount; ++i) {
    const auto& row = cm::kExportedVariables[i];
    EXPECT_FALSE(row.logical.empty());
    EXPECT_TRUE(cm::validate_env_name(row.default_env_name)) << row.default_env_name;
    EXPECT_EQ(row.source == cm::TextSource::payload_text, row.payload_text != nullptr) << row.logical;
    EXPECT_EQ(*cm::parse_logical_name(row.logical), static_cast<cm::Variable>(i));
    for (std::size_t j = 0; j < i; ++j) {
      EXPECT_NE(row.logical, cm::kExportedVariables[j].logical);
      EXPECT_STRNE(row.default_env_name, cm::kExportedVariables[j].default_env_name);
    }
  }
}

TEST(ExportedVariables, PresencePatternsRoundTrip) {
  for (std::size_t pattern = 0; pattern < cm::kPresencePatterns; ++pattern) {
    EXPECT_EQ(cm::presence_pattern(cm::rows_of_pattern(pattern)), pattern);
  }
  // The rows always there while fresh are in every pattern.
  const auto always = cm::bit_of(static_cast<std::size_t>(cm::Variable::load_avg));
  EXPECT_NE(cm::rows_of_pattern(0) & always, 0);
  EXPECT_EQ(cm::rows_of_pattern(0) & cm::kOptionalRows, 0);
}

TEST(ExportedVariables, StaticNumberTextsAreTheSameRendering) {
  EXPECT_STREQ(cm::static_number_text("0"), "0");
  EXPECT_STREQ(cm::static_number_text("9999"), "9999");
  EXPECT_STREQ(cm::static_number_text("1.52"), "1.52");
  EXPECT_STREQ(cm::static_number_text("99.99"), "99.99");
  for (const char* other : {"10000", "100.00", "012", "1.5", "1.523", "", "x", "1 ", "-1"}) {
    EXPECT_EQ(cm::static_number_text(other), nullptr) << other;
  }
  EXPECT_STREQ(cm::static_unsigned_text(42), "42");
  EXPECT_EQ(cm::static_unsigned_text(10000), nullptr);
}

TEST(ExportedVariables, TextsComeFromTheirSource) {
  coupecircuit::snapshot::Payload payload{};
  coupecircuit::snapshot::copy_text(payload.load1_text, "1.52");
  coupecircuit::snapshot::copy_text(payload.sessions_active_text, "3");
  payload.flags = coupecircuit::snapshot::kFlagCutActive;
  coupecircuit::snapshot::ThresholdSet directive{};
  directive.has_sessions = 1;
  coupecircuit::snapshot::copy_text(directive.sessions_text, "10");
  cm::ExportInputs inputs;
  inputs.payload = &payload;
  inputs.thresholds.sessions_from = &directive;
  inputs.directive = &directive;
  inputs.verdict = coupecircuit::Verdict::coupure;
  inputs.age = "2";
  const auto text = [&](cm::Variable v) { return cm::text_of(cm::exported(v), inputs); };
  EXPECT_STREQ(text(cm::Variable::load_avg).text, "1.52");
  EXPECT_FALSE(text(cm::Variable::load_avg).lasting);
  EXPECT_STREQ(text(cm::Variable::sessions_actives).text, "3");
  EXPECT_STREQ(text(cm::Variable::coupure).text, "1");
  EXPECT_STREQ(text(cm::Variable::seuil_sessions).text, "10");
  EXPECT_TRUE(text(cm::Variable::seuil_sessions).lasting);  // the directive's own text
  EXPECT_EQ(text(cm::Variable::seuil_load).text, nullptr);
  EXPECT_STREQ(text(cm::Variable::etat).text, "coupure");
  EXPECT_STREQ(text(cm::Variable::age).text, "2");
  // A scan that failed: the session count is absent, not 0.
  payload.flags |= coupecircuit::snapshot::kFlagScanFailed;
  EXPECT_EQ(text(cm::Variable::sessions_actives).text, nullptr);
  // No fresh payload: nothing from the snapshot.
  inputs.payload = nullptr;
  EXPECT_EQ(text(cm::Variable::load_avg).text, nullptr);
  EXPECT_EQ(text(cm::Variable::coupure).text, nullptr);
  EXPECT_STREQ(text(cm::Variable::seuil_sessions).text, "10");
}

TEST(ModuleConfig, SaturationThresholdDirective) {
  auto parsed = cm::parse_threshold("saturation:main-db", "80", "");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->is_saturation);
  EXPECT_STREQ(parsed->probe, "main-db");
  EXPECT_EQ(parsed->trip, 80U);
  EXPECT_EQ(parsed->release, 72U);
  auto with_release = cm::parse_threshold("Saturation:pg", "90", "50");
  ASSERT_TRUE(with_release) << with_release.error().message;
  EXPECT_EQ(with_release->release, 50U);
  for (const auto& [kind, trip, release] :
       std::vector<std::tuple<const char*, const char*, const char*>>{{"saturation:", "80", ""},
                                                                       {"saturation:pg db", "80", ""},
                                                                       {"saturation:pg", "0", ""},
                                                                       {"saturation:pg", "80.5", ""},
                                                                       {"saturation:pg", "1001", ""},
                                                                       {"saturation:pg", "80", "80"},
                                                                       {"saturation:pg", "80", "x"}}) {
    auto bad = cm::parse_threshold(kind, trip, release);
    ASSERT_FALSE(bad) << kind << " " << trip << " " << release;
    EXPECT_EQ(bad.error().message.rfind("CoupeCircuitThreshold", 0), 0U) << bad.error().message;
  }
  cm::ServerSettings settings;
  cm::apply_threshold(settings, *parsed);
  cm::apply_threshold(settings, *with_release);
  cm::apply_threshold(settings, *cm::parse_threshold("saturation:main-db", "85", ""));  // replaces
  ASSERT_TRUE(settings.saturation_thresholds);
  ASSERT_EQ(settings.saturation_thresholds->count, 2U);
  EXPECT_EQ(settings.saturation_thresholds->limit[0].trip_pct, 85U);
  const auto merged = cm::merge_settings(settings, cm::ServerSettings{});
  ASSERT_TRUE(merged.saturation_thresholds);
  EXPECT_EQ(merged.saturation_thresholds->count, 2U);
}
