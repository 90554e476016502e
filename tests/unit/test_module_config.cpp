// Directive parsers, defaults and merge rules of mod_coupecircuit, without httpd.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "module_config.hpp"
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

TEST(ModuleConfig, ThresholdSessionsWithDefaultReleaseAtNinetyPercent) {
  auto parsed = cm::parse_threshold("sessions", "500", "");
  ASSERT_TRUE(parsed);
  EXPECT_FALSE(parsed->is_load);
  EXPECT_EQ(parsed->trip, 500U);
  EXPECT_EQ(parsed->release, 450U);
  EXPECT_FALSE(parsed->release_given);
  auto small = cm::parse_threshold("sessions", "1", "");
  ASSERT_TRUE(small);
  EXPECT_EQ(small->release, 0U);  // always strictly below TRIP
}

TEST(ModuleConfig, ThresholdLoadWithRelease) {
  auto parsed = cm::parse_threshold("LOAD", "8", "6.5");
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->is_load);
  EXPECT_EQ(parsed->trip, 800U);
  EXPECT_EQ(parsed->release, 650U);
  cm::ServerSettings settings;
  cm::apply_threshold(settings, *parsed);
  EXPECT_EQ(settings.thresholds.has_load, 1U);
  EXPECT_STREQ(settings.thresholds.load_text, "8.00");
  EXPECT_EQ(settings.load_release_centi, 650U);
}

TEST(ModuleConfig, ThresholdErrorsNameTheDirective) {
  const char* cases[][3] = {{"foo", "1", ""},        {"sessions", "abc", ""}, {"load", "1.234", ""},
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
  parent.enabled = 1;
  parent.max_age_seconds = 30;
  parent.max_age_set = true;
  cm::apply_threshold(parent, *cm::parse_threshold("sessions", "100", ""));
  cm::apply_threshold(parent, *cm::parse_threshold("load", "4", ""));
  parent.env_names[static_cast<std::size_t>(cm::Variable::load_avg)] = "PARENT_LOAD";

  cm::ServerSettings child;
  cm::apply_threshold(child, *cm::parse_threshold("sessions", "7", "5"));
  child.env_names[static_cast<std::size_t>(cm::Variable::etat)] = "CHILD_ETAT";

  const auto merged = cm::merge_settings(parent, child);
  EXPECT_TRUE(merged.is_enabled());
  EXPECT_EQ(merged.max_age_ns(), 30'000'000'000ULL);
  EXPECT_EQ(merged.thresholds.sessions, 7U);
  EXPECT_STREQ(merged.thresholds.sessions_text, "7");
  EXPECT_EQ(merged.sessions_release, 5U);
  EXPECT_EQ(merged.thresholds.has_load, 1U);  // inherited
  EXPECT_STREQ(merged.thresholds.load_text, "4.00");
  EXPECT_STREQ(merged.env_name(cm::Variable::load_avg), "PARENT_LOAD");
  EXPECT_STREQ(merged.env_name(cm::Variable::etat), "CHILD_ETAT");

  cm::ServerSettings off;
  off.enabled = 0;
  EXPECT_FALSE(cm::merge_settings(parent, off).is_enabled());
  EXPECT_TRUE(cm::merge_settings(off, cm::ServerSettings{}).enabled == 0);
}

TEST(ModuleConfig, VhostIdentityIsLowercaseAndHashed) {
  cm::ServerSettings settings;
  cm::set_vhost_identity(settings, "WWW.Example.ORG");
  EXPECT_STREQ(settings.vhost_name, "www.example.org");
  EXPECT_EQ(settings.vhost_hash, coupecircuit::snapshot::vhost_name_hash("www.example.org", 15));
  const std::string long_name(200, 'a');
  cm::set_vhost_identity(settings, long_name);
  EXPECT_EQ(std::strlen(settings.vhost_name), coupecircuit::snapshot::kVhostNameCapacity - 1);
}
