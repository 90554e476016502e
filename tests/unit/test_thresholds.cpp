// Unit tests of common/thresholds.cpp: vhost override lookup, threshold
// precedence and the verdict.
#include "thresholds.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "snapshot.hpp"

namespace coupecircuit {
namespace {

using snapshot::Payload;
using snapshot::ThresholdSet;

std::uint64_t hash_of(std::string_view name) {
  return snapshot::vhost_name_hash(name.data(), name.size());
}

ThresholdSet sessions_set(std::uint64_t sessions) {
  ThresholdSet set{};
  set.has_sessions = 1;
  set.sessions = sessions;
  return set;
}

ThresholdSet load_set(std::uint64_t load_centi) {
  ThresholdSet set{};
  set.has_load = 1;
  set.load_centi = load_centi;
  return set;
}

ThresholdSet both_set(std::uint64_t sessions, std::uint64_t load_centi) {
  ThresholdSet set = sessions_set(sessions);
  set.has_load = 1;
  set.load_centi = load_centi;
  return set;
}

void add_vhost(Payload& payload, std::string_view name, const ThresholdSet& set, std::uint64_t name_hash) {
  auto& entry = payload.vhost_overrides[payload.vhost_override_count++];
  entry.name_hash = name_hash;
  snapshot::copy_text(entry.name, name);
  entry.thresholds = set;
}

void add_vhost(Payload& payload, std::string_view name, const ThresholdSet& set) {
  add_vhost(payload, name, set, hash_of(name));
}

// ---- find_vhost_override

TEST(FindVhostOverride, FindsByHashAndName) {
  Payload payload{};
  add_vhost(payload, "a.example.org", sessions_set(1));
  add_vhost(payload, "b.example.org", sessions_set(2));
  add_vhost(payload, "c.example.org", sessions_set(3));
  const ThresholdSet* found = find_vhost_override(payload, hash_of("b.example.org"), "b.example.org");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found, &payload.vhost_overrides[1].thresholds);
  EXPECT_EQ(found->sessions, 2U);
  EXPECT_EQ(find_vhost_override(payload, hash_of("c.example.org"), "c.example.org"),
            &payload.vhost_overrides[2].thresholds);
}

TEST(FindVhostOverride, MissingNameIsNull) {
  Payload payload{};
  EXPECT_EQ(find_vhost_override(payload, hash_of("a.example.org"), "a.example.org"), nullptr) << "empty payload";
  add_vhost(payload, "a.example.org", sessions_set(1));
  EXPECT_EQ(find_vhost_override(payload, hash_of("z.example.org"), "z.example.org"), nullptr);
  EXPECT_EQ(find_vhost_override(payload, hash_of("A.example.org"), "A.example.org"), nullptr)
      << "names are stored lowercase; callers look up the lowercase name";
}

TEST(FindVhostOverride, AHashCollisionWithADifferentNameIsNotAMatch) {
  Payload payload{};
  // An entry whose hash is the one looked up, but whose name is another.
  add_vhost(payload, "evil.example.org", sessions_set(1), hash_of("www.example.org"));
  EXPECT_EQ(find_vhost_override(payload, hash_of("www.example.org"), "www.example.org"), nullptr);
  // The real entry further on is still found.
  add_vhost(payload, "www.example.org", sessions_set(2));
  const ThresholdSet* found = find_vhost_override(payload, hash_of("www.example.org"), "www.example.org");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->sessions, 2U);
}

TEST(FindVhostOverride, PrefixOrLongerNamesDoNotMatch) {
  Payload payload{};
  add_vhost(payload, "example.org", sessions_set(1), hash_of("example.or"));
  EXPECT_EQ(find_vhost_override(payload, hash_of("example.or"), "example.or"), nullptr);
  add_vhost(payload, "example.o", sessions_set(1), hash_of("example.org"));
  EXPECT_EQ(find_vhost_override(payload, hash_of("example.org"), "example.org"), nullptr);
}

TEST(FindVhostOverride, AHashMatchWithTheRightNameButWrongHashIsNotAMatch) {
  Payload payload{};
  add_vhost(payload, "www.example.org", sessions_set(1), hash_of("other"));
  EXPECT_EQ(find_vhost_override(payload, hash_of("www.example.org"), "www.example.org"), nullptr);
}

TEST(FindVhostOverride, OnlyTheFirstCountEntriesAreSearched) {
  Payload payload{};
  add_vhost(payload, "a.example.org", sessions_set(1));
  add_vhost(payload, "b.example.org", sessions_set(2));
  payload.vhost_override_count = 1;
  EXPECT_EQ(find_vhost_override(payload, hash_of("b.example.org"), "b.example.org"), nullptr);
}

TEST(FindVhostOverride, AnOversizedCountIsClampedToTheArray) {
  Payload payload{};
  auto& last = payload.vhost_overrides[snapshot::kMaxVhostOverrides - 1];
  last.name_hash = hash_of("last.example.org");
  snapshot::copy_text(last.name, "last.example.org");
  last.thresholds = sessions_set(9);
  payload.vhost_override_count = 0xffffffffU;  // damaged or hostile
  const ThresholdSet* found = find_vhost_override(payload, hash_of("last.example.org"), "last.example.org");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->sessions, 9U);
  EXPECT_EQ(find_vhost_override(payload, hash_of("absent"), "absent"), nullptr);
}

TEST(FindVhostOverride, AnUnterminatedNameIsReadWithinItsField) {
  Payload payload{};
  auto& entry = payload.vhost_overrides[0];
  std::memset(entry.name, 'a', sizeof entry.name);  // no NUL at all
  const std::string full(sizeof entry.name, 'a');
  entry.name_hash = hash_of(full);
  entry.thresholds = sessions_set(4);
  payload.vhost_override_count = 1;
  const ThresholdSet* found = find_vhost_override(payload, hash_of(full), full);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->sessions, 4U);
  const std::string longer(sizeof entry.name + 1, 'a');
  EXPECT_EQ(find_vhost_override(payload, hash_of(full), longer), nullptr);
}

// ---- resolve_thresholds

TEST(ResolveThresholds, NothingSetGivesNoThreshold) {
  const Payload payload{};
  const ThresholdSet directive{};
  const EffectiveThresholds result = resolve_thresholds(payload, nullptr, directive);
  EXPECT_EQ(result.sessions_from, nullptr);
  EXPECT_EQ(result.load_from, nullptr);
}

TEST(ResolveThresholds, DirectiveAlone) {
  const Payload payload{};
  const ThresholdSet directive = both_set(100, 400);
  const EffectiveThresholds result = resolve_thresholds(payload, nullptr, directive);
  EXPECT_EQ(result.sessions_from, &directive);
  EXPECT_EQ(result.load_from, &directive);
}

TEST(ResolveThresholds, GlobalOverridesTheDirectivePerThreshold) {
  Payload payload{};
  payload.global_override = sessions_set(50);
  const ThresholdSet directive = both_set(100, 400);
  const EffectiveThresholds result = resolve_thresholds(payload, nullptr, directive);
  EXPECT_EQ(result.sessions_from, &payload.global_override);
  EXPECT_EQ(result.load_from, &directive) << "the global override has no load: the directive's applies";
}

TEST(ResolveThresholds, VhostOverridesGlobalAndDirectivePerThreshold) {
  Payload payload{};
  payload.global_override = both_set(50, 300);
  const ThresholdSet vhost = load_set(200);
  const ThresholdSet directive = both_set(100, 400);
  const EffectiveThresholds result = resolve_thresholds(payload, &vhost, directive);
  EXPECT_EQ(result.load_from, &vhost);
  EXPECT_EQ(result.sessions_from, &payload.global_override);

  const ThresholdSet vhost_sessions = sessions_set(10);
  Payload no_global{};
  const EffectiveThresholds mixed = resolve_thresholds(no_global, &vhost_sessions, directive);
  EXPECT_EQ(mixed.sessions_from, &vhost_sessions);
  EXPECT_EQ(mixed.load_from, &directive);

  const ThresholdSet vhost_both = both_set(1, 1);
  const EffectiveThresholds all_vhost = resolve_thresholds(payload, &vhost_both, directive);
  EXPECT_EQ(all_vhost.sessions_from, &vhost_both);
  EXPECT_EQ(all_vhost.load_from, &vhost_both);
}

TEST(ResolveThresholds, AZeroThresholdIsStillAThreshold) {
  Payload payload{};
  payload.global_override = sessions_set(0);
  const ThresholdSet directive = sessions_set(100);
  const EffectiveThresholds result = resolve_thresholds(payload, nullptr, directive);
  EXPECT_EQ(result.sessions_from, &payload.global_override);
}

TEST(ResolveThresholds, AnEmptyVhostOverrideFallsThrough) {
  Payload payload{};
  payload.global_override = load_set(300);
  const ThresholdSet vhost{};
  const ThresholdSet directive = both_set(100, 400);
  const EffectiveThresholds result = resolve_thresholds(payload, &vhost, directive);
  EXPECT_EQ(result.sessions_from, &directive);
  EXPECT_EQ(result.load_from, &payload.global_override);
}

// ---- compute_verdict

TEST(ComputeVerdict, CutWinsOverEverything) {
  Payload payload{};
  payload.flags = snapshot::kFlagCutActive;
  payload.sessions_active = 0;
  const ThresholdSet directive = both_set(100, 400);
  EXPECT_EQ(compute_verdict(payload, resolve_thresholds(payload, nullptr, directive)), Verdict::coupure);
  EXPECT_EQ(compute_verdict(payload, EffectiveThresholds{}), Verdict::coupure);
  payload.sessions_active = 1000;
  EXPECT_EQ(compute_verdict(payload, resolve_thresholds(payload, nullptr, directive)), Verdict::coupure);
}

TEST(ComputeVerdict, SessionsAtOrAboveTheThresholdIsSurcharge) {
  Payload payload{};
  payload.flags = snapshot::kFlagPsiAvailable | snapshot::kFlagStateInvalid;  // not the cut flag
  const ThresholdSet directive = sessions_set(100);
  const EffectiveThresholds thresholds = resolve_thresholds(payload, nullptr, directive);
  payload.sessions_active = 99;
  EXPECT_EQ(compute_verdict(payload, thresholds), Verdict::ok);
  payload.sessions_active = 100;
  EXPECT_EQ(compute_verdict(payload, thresholds), Verdict::surcharge);
  payload.sessions_active = 101;
  EXPECT_EQ(compute_verdict(payload, thresholds), Verdict::surcharge);
}

TEST(ComputeVerdict, OneMinuteLoadAtOrAboveTheThresholdIsSurcharge) {
  Payload payload{};
  const ThresholdSet directive = load_set(450);
  const EffectiveThresholds thresholds = resolve_thresholds(payload, nullptr, directive);
  payload.load_centi[0] = 449;
  payload.load_centi[1] = 10000;  // 5 and 15 minute averages do not count
  payload.load_centi[2] = 10000;
  EXPECT_EQ(compute_verdict(payload, thresholds), Verdict::ok);
  payload.load_centi[0] = 450;
  EXPECT_EQ(compute_verdict(payload, thresholds), Verdict::surcharge);
  payload.load_centi[0] = 451;
  EXPECT_EQ(compute_verdict(payload, thresholds), Verdict::surcharge);
}

TEST(ComputeVerdict, NoThresholdIsOk) {
  Payload payload{};
  payload.sessions_active = 1'000'000;
  payload.load_centi[0] = 100'000;
  EXPECT_EQ(compute_verdict(payload, EffectiveThresholds{}), Verdict::ok);
}

TEST(ComputeVerdict, UsesTheResolvedLayer) {
  Payload payload{};
  payload.sessions_active = 60;
  payload.global_override = sessions_set(50);
  const ThresholdSet directive = sessions_set(100);
  EXPECT_EQ(compute_verdict(payload, resolve_thresholds(payload, nullptr, directive)), Verdict::surcharge)
      << "the global override (50) applies, not the directive (100)";
  const ThresholdSet vhost = sessions_set(70);
  EXPECT_EQ(compute_verdict(payload, resolve_thresholds(payload, &vhost, directive)), Verdict::ok)
      << "the vhost override (70) applies";
}

TEST(ComputeVerdict, EitherThresholdTrips) {
  Payload payload{};
  const ThresholdSet directive = both_set(100, 400);
  const EffectiveThresholds thresholds = resolve_thresholds(payload, nullptr, directive);
  payload.sessions_active = 10;
  payload.load_centi[0] = 500;
  EXPECT_EQ(compute_verdict(payload, thresholds), Verdict::surcharge);
  payload.sessions_active = 200;
  payload.load_centi[0] = 10;
  EXPECT_EQ(compute_verdict(payload, thresholds), Verdict::surcharge);
  payload.sessions_active = 10;
  EXPECT_EQ(compute_verdict(payload, thresholds), Verdict::ok);
}

TEST(Verdict, Names) {
  const std::string_view names[] = {"ok", "surcharge", "coupure", "inconnu"};
  for (const Verdict verdict : {Verdict::ok, Verdict::surcharge, Verdict::coupure, Verdict::inconnu}) {
    EXPECT_EQ(to_string(verdict), names[static_cast<std::size_t>(verdict)]);
    EXPECT_EQ(std::string_view(verdict_word(verdict)), to_string(verdict));
  }
  EXPECT_STREQ(verdict_word(static_cast<Verdict>(4)), "inconnu");  // beyond the table: never a null pointer
}

// snapshot::sessions_known: a scan that could not read the session store
// leaves the sessions threshold out of the verdict and the hysteresis.
TEST(SessionsKnown, FalseOnlyWhenTheScanFailed) {
  Payload payload{};
  EXPECT_TRUE(snapshot::sessions_known(payload));
  payload.flags |= snapshot::kFlagScanFailed;
  EXPECT_FALSE(snapshot::sessions_known(payload));
}

TEST(SessionsKnown, UnknownSessionsNeitherTripNorRelease) {
  Payload payload{};
  payload.sessions_active = 500;
  payload.flags |= snapshot::kFlagScanFailed;
  const ThresholdSet directive = sessions_set(100);
  const EffectiveThresholds effective = resolve_thresholds(payload, nullptr, directive);
  EXPECT_EQ(compute_verdict(payload, effective), Verdict::ok);
  const ThresholdCheck check = check_thresholds(payload, effective, 90, 0);
  EXPECT_FALSE(check.over);   // does not trip
  EXPECT_FALSE(check.under);  // does not release a tripped vhost either
  payload.sessions_active = 0;
  EXPECT_FALSE(check_thresholds(payload, effective, 90, 0).under);
  // The load is still judged.
  const ThresholdSet both = both_set(100, 400);
  payload.load_centi[0] = 400;
  EXPECT_TRUE(check_thresholds(payload, resolve_thresholds(payload, nullptr, both), 90, 300).over);
}

}  // namespace
}  // namespace coupecircuit

namespace coupecircuit {
namespace {

snapshot::Payload saturation_payload(std::uint32_t status, std::uint32_t pct, std::uint32_t table_flags = 0) {
  snapshot::Payload p{};
  p.probe_flags = snapshot::kProbesConfigured | table_flags;
  p.probe_count = 1;
  std::strcpy(p.probes[0].name, "pg");
  p.probes[0].status = status;
  p.probes[0].flags = snapshot::kProbeHasSaturation;
  p.probes[0].saturation_pct = pct;
  return p;
}

// One saturation limit on probe "pg": trips at 80 %, releases below 70 %.
struct PgSaturationThresholds {
  SaturationLimits limits;
  EffectiveThresholds thresholds;
  PgSaturationThresholds() {
    limits.count = 1;
    std::strcpy(limits.limit[0].probe, "pg");
    limits.limit[0].trip_pct = 80;
    limits.limit[0].release_pct = 70;
    thresholds.saturation = &limits;
  }
  PgSaturationThresholds(const PgSaturationThresholds&) = delete;
  PgSaturationThresholds& operator=(const PgSaturationThresholds&) = delete;
};

TEST(SaturationThreshold, TripsAndReleasesThroughTheOneCheck) {
  const PgSaturationThresholds pg;
  const EffectiveThresholds& thresholds = pg.thresholds;
  auto low = check_thresholds(saturation_payload(snapshot::kProbeUp, 50), thresholds, 0, 0);
  EXPECT_FALSE(low.over);
  EXPECT_TRUE(low.under);
  auto at = check_thresholds(saturation_payload(snapshot::kProbeUp, 80), thresholds, 0, 0);
  EXPECT_TRUE(at.over);
  EXPECT_TRUE(at.saturation_high);
  auto between = check_thresholds(saturation_payload(snapshot::kProbeUp, 75), thresholds, 0, 0);
  EXPECT_FALSE(between.over);
  EXPECT_FALSE(between.under);  // above RELEASE: stays tripped
  EXPECT_EQ(compute_verdict(saturation_payload(snapshot::kProbeUp, 100), thresholds), Verdict::surcharge);
}

TEST(SaturationThreshold, DownUnknownOrStaleNeitherTripsNorReleases) {
  PgSaturationThresholds pg;
  const EffectiveThresholds& thresholds = pg.thresholds;
  for (const auto& payload : {saturation_payload(snapshot::kProbeDown, 100),
                              saturation_payload(snapshot::kProbeUnknown, 100),
                              saturation_payload(snapshot::kProbeUp, 100, snapshot::kProbesStale)}) {
    const auto check = check_thresholds(payload, thresholds, 0, 0);
    EXPECT_FALSE(check.over);
    EXPECT_FALSE(check.under);
  }
  // A probe absent from the table (renamed) neither.
  std::strcpy(pg.limits.limit[0].probe, "other");
  const auto absent = check_thresholds(saturation_payload(snapshot::kProbeUp, 100), thresholds, 0, 0);
  EXPECT_FALSE(absent.over);
  EXPECT_FALSE(absent.under);
}

}  // namespace
}  // namespace coupecircuit
