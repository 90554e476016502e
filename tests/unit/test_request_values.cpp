// What mod_coupecircuit exports, computed from a real snapshot file written by
// SnapshotWriter, without httpd.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "decimal.hpp"
#include "module_config.hpp"
#include "request_values.hpp"
#include "snapshot.hpp"
#include "state_file.hpp"

namespace cm = coupecircuit::module;
namespace snap = coupecircuit::snapshot;
using coupecircuit::ControlState;
using coupecircuit::Verdict;

namespace {

// A variable's exported text; "" when absent.
std::string text(const cm::RequestValues& values, cm::Variable variable) {
  const char* exported = values.get(variable);
  return exported != nullptr ? exported : "";
}

// Each thread's FreshValues by vhost slot, as mod_coupecircuit keeps them.
thread_local cm::FreshValues t_fresh_slots[cm::kFreshSlots];

const cm::FreshRequest* compute_fresh(cm::SnapshotSource& source, const cm::ServerSettings& settings,
                                      std::uint64_t now_ns, cm::SharedState* shared = nullptr) {
  return source.compute_fresh(settings, now_ns, shared, t_fresh_slots[settings.cache_slot % cm::kFreshSlots]);
}

class RequestValuesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/cc-request-values-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    directory_ = pattern;
    path_ = directory_ + "/snapshot";
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  snap::Payload payload(std::uint64_t sessions, std::uint32_t load_centi, const ControlState& state = {}) {
    snap::Payload p{};
    p.sessions_active = sessions;
    coupecircuit::render_unsigned(p.sessions_active_text, sizeof p.sessions_active_text, sessions);
    p.load_centi[0] = load_centi;
    coupecircuit::render_centi(p.load1_text, sizeof p.load1_text, load_centi);
    coupecircuit::apply_state_to_payload(state, p);
    return p;
  }

  static cm::ServerSettings vhost(const char* name, const char* sessions_trip, const char* load_trip) {
    cm::ServerSettings settings;
    if (sessions_trip != nullptr) cm::apply_threshold(settings, *cm::parse_threshold("sessions", sessions_trip, ""));
    if (load_trip != nullptr) cm::apply_threshold(settings, *cm::parse_threshold("load", load_trip, ""));
    cm::finish_settings(settings, name);
    return settings;
  }

  // The helper's writer with a first payload published; a failure to open
  // is recorded and leaves an inert writer, so that what follows fails too.
  snap::SnapshotWriter published(const snap::Payload& first) {
    auto writer = snap::SnapshotWriter::open(path_);
    EXPECT_TRUE(writer) << writer.error().message;
    if (!writer) return {};
    writer->publish(first);
    return std::move(*writer);
  }

  // Publishes payloads whose sessions equal their load in hundredths until
  // the readers have done plenty of reads (bounded in time), then stops them.
  void publish_while_reading(snap::SnapshotWriter& writer, const std::atomic<std::uint64_t>& reads,
                             std::atomic<bool>& stop, std::vector<std::thread>& readers) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (std::uint32_t i = 1; reads.load() < 20000 && std::chrono::steady_clock::now() < deadline; ++i) {
      writer.publish(payload(i % 100000, i % 100000));
    }
    stop = true;
    for (auto& thread : readers) thread.join();
  }

  std::string directory_;
  std::string path_;
};

TEST_F(RequestValuesTest, MissingSnapshotIsInconnuWithNoInventedValues) {
  cm::SnapshotSource source;
  source.open(path_.c_str());
  cm::RequestValues values;
  cm::Transition transition = cm::Transition::none;
  const auto settings = vhost("a.test", "10", nullptr);
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(values.health, cm::Health::missing);
  EXPECT_EQ(values.verdict, Verdict::inconnu);
  EXPECT_FALSE(values.has(cm::Variable::load_avg));
  EXPECT_FALSE(values.has(cm::Variable::age));
  EXPECT_TRUE(values.has(cm::Variable::seuil_sessions));  // the vhost's own configuration is not invented
  EXPECT_EQ(text(values, cm::Variable::seuil_sessions), "10");
  EXPECT_EQ(transition, cm::Transition::became_missing);
  // One report per incident, not per request.
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(transition, cm::Transition::none);
}

TEST_F(RequestValuesTest, FreshSnapshotExportsValuesAndVerdict) {
  snap::SnapshotWriter writer = published(payload(3, 152));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  cm::RequestValues values;
  cm::Transition transition{};
  source.compute(vhost("a.test", "10", "4"), cm::coarse_monotonic_now_ns() + 1'000'000, values, &transition);
  EXPECT_EQ(values.health, cm::Health::fresh);
  EXPECT_EQ(values.verdict, Verdict::ok);
  EXPECT_EQ(text(values, cm::Variable::load_avg), "1.52");
  EXPECT_EQ(text(values, cm::Variable::sessions_actives), "3");
  EXPECT_FALSE(values.cut);
  EXPECT_EQ(text(values, cm::Variable::seuil_sessions), "10");
  EXPECT_EQ(text(values, cm::Variable::seuil_load), "4.00");
  EXPECT_EQ(text(values, cm::Variable::age), "0");
  EXPECT_EQ(transition, cm::Transition::none);

  // Reaching a threshold is "surcharge"; the cut wins over it.
  writer.publish(payload(10, 152));
  source.compute(vhost("a.test", "10", "4"), cm::coarse_monotonic_now_ns(), values, nullptr);
  EXPECT_EQ(values.verdict, Verdict::surcharge);
  EXPECT_EQ(text(values, cm::Variable::sessions_actives), "10");
  ControlState cut;
  cut.cut_active = true;
  writer.publish(payload(10, 152, cut));
  source.compute(vhost("a.test", "10", "4"), cm::coarse_monotonic_now_ns(), values, nullptr);
  EXPECT_EQ(values.verdict, Verdict::coupure);
  EXPECT_TRUE(values.cut);
}

TEST_F(RequestValuesTest, OverridesApplyPerVhostThenGlobally) {
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer);
  ControlState state;
  state.vhosts["a.test"].sessions = 7;
  state.global.load_centi = 250;
  writer->publish(payload(1, 100, state));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  cm::RequestValues a, b;
  source.compute(vhost("A.TEST", "10", "4"), cm::coarse_monotonic_now_ns(), a, nullptr);
  source.compute(vhost("b.test", "10", "4"), cm::coarse_monotonic_now_ns(), b, nullptr);
  EXPECT_EQ(text(a, cm::Variable::seuil_sessions), "7");    // vhost override
  EXPECT_EQ(text(b, cm::Variable::seuil_sessions), "10");   // directive
  EXPECT_EQ(text(a, cm::Variable::seuil_load), "2.50");     // global override
  EXPECT_EQ(text(b, cm::Variable::seuil_load), "2.50");
  cm::RequestValues none;
  source.compute(vhost("c.test", nullptr, nullptr), cm::coarse_monotonic_now_ns(), none, nullptr);
  EXPECT_FALSE(none.has(cm::Variable::seuil_sessions));
  EXPECT_TRUE(none.has(cm::Variable::seuil_load));
}

TEST_F(RequestValuesTest, StaleThenRecovered) {
  snap::SnapshotWriter writer = published(payload(2, 100));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  auto settings = vhost("a.test", nullptr, nullptr);
  settings.max_age_seconds = 1;
  cm::RequestValues values;
  cm::Transition transition{};
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  ASSERT_EQ(values.health, cm::Health::fresh);
  // 3.5 s later without a heartbeat: stale, the age (whole seconds) is still told.
  source.compute(settings, cm::coarse_monotonic_now_ns() + 3'500'000'000ULL, values, &transition);
  EXPECT_EQ(values.health, cm::Health::stale);
  EXPECT_EQ(values.verdict, Verdict::inconnu);
  EXPECT_FALSE(values.has(cm::Variable::load_avg));
  EXPECT_TRUE(values.has(cm::Variable::age));
  EXPECT_EQ(std::string(text(values, cm::Variable::age)), "3");
  EXPECT_EQ(transition, cm::Transition::became_stale);
  source.compute(settings, cm::coarse_monotonic_now_ns() + 4'000'000'000ULL, values, &transition);
  EXPECT_EQ(transition, cm::Transition::none);
  writer.heartbeat();
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(values.health, cm::Health::fresh);
  EXPECT_EQ(transition, cm::Transition::recovered);
}

TEST_F(RequestValuesTest, ReplacedFileIsReopenedAfterItGoesStale) {
  snap::SnapshotWriter writer = published(payload(2, 100));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  auto settings = vhost("a.test", nullptr, nullptr);
  cm::RequestValues values;
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
  ASSERT_EQ(text(values, cm::Variable::sessions_actives), "2");

  // The file is deleted and a new writer creates another one. A request that
  // finds the old mapping stale (20 s later) re-opens the path; the next
  // request reads the new file.
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  auto second = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(second);
  second->publish(payload(5, 100));
  source.compute(settings, cm::coarse_monotonic_now_ns() + 20'000'000'000ULL, values, nullptr);
  EXPECT_EQ(values.health, cm::Health::stale);
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
  EXPECT_EQ(values.health, cm::Health::fresh);
  EXPECT_EQ(text(values, cm::Variable::sessions_actives), "5");
}

TEST_F(RequestValuesTest, TruncatedUnderTheMappingFailsOpenInsteadOfCrashing) {
  snap::SnapshotWriter writer = published(payload(2, 100));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  const auto settings = vhost("a.test", nullptr, nullptr);
  cm::RequestValues values;
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
  ASSERT_EQ(values.health, cm::Health::fresh);

  // Pages beyond the end of a truncated file raise SIGBUS on access.
  ASSERT_EQ(::truncate(path_.c_str(), 0), 0);
  cm::Transition transition{};
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(values.health, cm::Health::missing);
  EXPECT_EQ(values.verdict, Verdict::inconnu);
  EXPECT_FALSE(values.has(cm::Variable::load_avg));
  EXPECT_EQ(transition, cm::Transition::became_missing);

  // The helper notices and re-creates the file; the next reopen maps it.
  ASSERT_TRUE(writer.needs_reopen());
  const snap::SnapshotWriter recreated = published(payload(4, 100));
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(values.health, cm::Health::fresh);
  EXPECT_EQ(text(values, cm::Variable::sessions_actives), "4");
  EXPECT_EQ(transition, cm::Transition::recovered);
}

// compute_fresh() is what Apache runs on nearly every request: it must agree
// with compute() while the snapshot is fresh, and hand every other case back.
// Old-style indexes of the fresh texts: load, sessions, sessions threshold,
// load threshold.
constexpr cm::Variable kFreshRows[] = {cm::Variable::load_avg, cm::Variable::sessions_actives,
                                       cm::Variable::seuil_sessions, cm::Variable::seuil_load};
std::string fresh_text(const cm::FreshRequest& request, std::size_t index) {
  return request.values->text(static_cast<std::size_t>(kFreshRows[index]));
}
bool fresh_has(const cm::FreshRequest& request, cm::Variable variable) {
  return (request.values->present & cm::bit_of(static_cast<std::size_t>(variable))) != 0;
}

void expect_same(const cm::FreshRequest* fresh, const cm::RequestValues& full) {
  ASSERT_NE(fresh, nullptr);
  ASSERT_NE(fresh->values, nullptr);
  EXPECT_EQ(full.health, cm::Health::fresh);
  EXPECT_EQ(fresh->verdict, full.verdict);
  EXPECT_EQ(fresh->tripped, full.tripped);
  EXPECT_EQ(fresh->state, cm::state_code(full));
  EXPECT_EQ(fresh->values->cut, full.cut);
  EXPECT_EQ(fresh->values->sessions_high, full.sessions_high);
  EXPECT_EQ(fresh->values->load_high, full.load_high);
  EXPECT_EQ(fresh_text(*fresh, 0), text(full, cm::Variable::load_avg));
  EXPECT_EQ(fresh_text(*fresh, 1), text(full, cm::Variable::sessions_actives));
  EXPECT_EQ(fresh_has(*fresh, cm::Variable::seuil_sessions), full.has(cm::Variable::seuil_sessions));
  EXPECT_EQ(fresh_text(*fresh, 2), full.has(cm::Variable::seuil_sessions) ? text(full, cm::Variable::seuil_sessions) : "");
  EXPECT_EQ(fresh_has(*fresh, cm::Variable::seuil_load), full.has(cm::Variable::seuil_load));
  EXPECT_EQ(fresh_text(*fresh, 3), full.has(cm::Variable::seuil_load) ? text(full, cm::Variable::seuil_load) : "");
  EXPECT_EQ(std::to_string(fresh->age_seconds), text(full, cm::Variable::age));
  EXPECT_EQ(std::string(fresh->age_text), text(full, cm::Variable::age));
  // The texts that outlive requests, when there are such, say the same.
  for (std::size_t i = 0; i < 4; ++i) {
    const auto row = static_cast<std::size_t>(kFreshRows[i]);
    if (fresh->values->lasting[row] != nullptr) {
      EXPECT_EQ(fresh->values->lasting[row], fresh_text(*fresh, i)) << i;
    }
  }
}

TEST_F(RequestValuesTest, TheFastPathAgreesWithComputeWhileFresh) {
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer) << writer.error().message;
  ControlState state;
  state.vhosts["a.test"].sessions = 7;
  state.global.load_centi = 250;
  writer->publish(payload(3, 152, state));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  // Settings stay where they are, as httpd's configuration does; a and b
  // share a cache slot and take turns in it.
  const auto a = vhost("a.test", "10", "4");
  const auto b = vhost("b.test", "10", nullptr);
  const auto c = [] {
    auto settings = vhost("c.test", nullptr, nullptr);
    settings.cache_slot = 1;
    return settings;
  }();
  cm::RequestValues full;
  const std::uint64_t now = cm::coarse_monotonic_now_ns();
  // Until compute() has seen the snapshot fresh (and logged it), the fast
  // path declines.
  EXPECT_EQ(compute_fresh(source, a, now), nullptr);
  source.compute(a, now, full, nullptr);
  ASSERT_EQ(full.health, cm::Health::fresh);

  for (const cm::ServerSettings* settings : {&a, &b, &c, &a, &a, &c, &b, &b}) {
    const cm::FreshRequest* fresh = compute_fresh(source, *settings, now);
    ASSERT_NE(fresh, nullptr);
    source.compute(*settings, now, full, nullptr);
    expect_same(fresh, full);
  }
  const cm::FreshRequest* fresh = compute_fresh(source, a, now);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh_text(*fresh, 2), "7");     // vhost override
  EXPECT_EQ(fresh_text(*fresh, 3), "2.50");  // global override
  EXPECT_TRUE(fresh->values->all_lasting);
  fresh = compute_fresh(source, c, now);
  ASSERT_NE(fresh, nullptr);
  EXPECT_FALSE(fresh_has(*fresh, cm::Variable::seuil_sessions));
  EXPECT_EQ(fresh_text(*fresh, 0), "1.52");
  EXPECT_EQ(fresh_text(*fresh, 1), "3");

  // A new sequence goes through compute() once (the thread copies it), then
  // the fast path follows it: surcharge, then the cut, then back to normal.
  writer->publish(payload(12, 152, state));
  EXPECT_EQ(compute_fresh(source, b, now), nullptr);
  source.compute(b, now, full, nullptr);
  fresh = compute_fresh(source, b, now);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->verdict, Verdict::surcharge);
  EXPECT_EQ(fresh_text(*fresh, 1), "12");
  expect_same(fresh, full);
  ControlState cut = state;
  cut.cut_active = true;
  writer->publish(payload(1, 152, cut));
  source.compute(c, now, full, nullptr);
  fresh = compute_fresh(source, c, now);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->verdict, Verdict::coupure);
  EXPECT_TRUE(fresh->values->cut);
  expect_same(fresh, full);
  writer->publish(payload(1, 152, state));
  source.compute(c, now, full, nullptr);
  fresh = compute_fresh(source, c, now);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->verdict, Verdict::ok);

  // The age in whole seconds (a new second, a new stamp); too old is for
  // compute() (stale, logged once).
  const std::uint64_t stamp = fresh->stamp;
  EXPECT_EQ(compute_fresh(source, c, now)->stamp, stamp);
  fresh = compute_fresh(source, c, now + 2'500'000'000ULL);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->age_seconds, 2U);
  EXPECT_STREQ(fresh->age_text, "2");
  EXPECT_NE(fresh->stamp, stamp);
  EXPECT_EQ(compute_fresh(source, a, now + 20'000'000'000ULL), nullptr);
  cm::Transition transition{};
  source.compute(a, now + 20'000'000'000ULL, full, &transition);
  EXPECT_EQ(full.health, cm::Health::stale);
  EXPECT_EQ(transition, cm::Transition::became_stale);
  writer->heartbeat();
  EXPECT_EQ(compute_fresh(source, a, cm::coarse_monotonic_now_ns()), nullptr);  // not before compute() logs it
  source.compute(a, cm::coarse_monotonic_now_ns(), full, &transition);
  EXPECT_EQ(transition, cm::Transition::recovered);
  EXPECT_NE(compute_fresh(source, a, cm::coarse_monotonic_now_ns()), nullptr);
}

TEST_F(RequestValuesTest, AnOverrideGoneFromTheSnapshotIsGoneFromTheValues) {
  // Copies stop at the overrides in use: what an earlier, longer table left
  // in the thread's buffer must never count.
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer);
  ControlState state;
  state.vhosts["z.test"].sessions = 3;
  state.vhosts["a.test"].sessions = 7;
  writer->publish(payload(1, 100, state));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  const auto a = vhost("a.test", "10", nullptr);
  cm::RequestValues full;
  source.compute(a, cm::coarse_monotonic_now_ns(), full, nullptr);
  EXPECT_EQ(text(full, cm::Variable::seuil_sessions), "7");
  state.vhosts.erase("a.test");
  writer->publish(payload(1, 100, state));
  source.compute(a, cm::coarse_monotonic_now_ns(), full, nullptr);
  EXPECT_EQ(text(full, cm::Variable::seuil_sessions), "10");
  const cm::FreshRequest* fresh = compute_fresh(source, a, cm::coarse_monotonic_now_ns());
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh_text(*fresh, 2), "10");
  writer->publish(payload(1, 100));
  source.compute(a, cm::coarse_monotonic_now_ns(), full, nullptr);
  EXPECT_EQ(text(full, cm::Variable::seuil_sessions), "10");
}

TEST_F(RequestValuesTest, TheFastPathFollowsTheSharedHysteresis) {
  snap::SnapshotWriter writer = published(payload(12, 100));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  cm::SharedBlock block{};
  cm::SharedState::initialise(block);
  cm::SharedState shared(&block);
  auto settings = vhost("a.test", "10", nullptr);
  settings.verdict_slot = shared.slot_for(settings.vhost_hash);
  cm::RequestValues full;
  const std::uint64_t now = cm::coarse_monotonic_now_ns();
  source.compute(settings, now, full, nullptr, &shared);
  EXPECT_EQ(full.verdict, Verdict::surcharge);  // the first trip is immediate
  const cm::FreshRequest* fresh = compute_fresh(source, settings, now, &shared);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->verdict, Verdict::surcharge);
  // Another child's release shows at once, though nothing else moved.
  block.slots[static_cast<std::size_t>(settings.verdict_slot)].state.store(2);
  fresh = compute_fresh(source, settings, now, &shared);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->verdict, Verdict::surcharge);  // over its TRIP again: trips again
  EXPECT_EQ(shared.trips(settings.verdict_slot), 2U);
}

TEST(SharedStateHold, DelaysTheReleaseButNeverATrip) {
  cm::SharedBlock block{};
  cm::SharedState::initialise(block);
  cm::SharedState shared(&block);
  const int slot = shared.slot_for(0x1234);
  ASSERT_GE(slot, 0);
  constexpr std::uint64_t kSecond = 1'000'000'000ULL;
  constexpr std::uint64_t kHold = 10 * kSecond;
  const std::uint64_t t0 = 1000 * kSecond;
  EXPECT_TRUE(shared.update(slot, true, false, t0, kHold));                  // the first trip is immediate
  EXPECT_TRUE(shared.update(slot, false, true, t0 + kSecond, kHold));        // under RELEASE: held
  EXPECT_FALSE(shared.update(slot, false, true, t0 + kHold, kHold));         // released once Hold has passed
  EXPECT_TRUE(shared.update(slot, true, false, t0 + kHold + kSecond, kHold));  // over TRIP again: trips at once
  EXPECT_EQ(shared.trips(slot), 2U);
  EXPECT_TRUE(shared.update(slot, false, true, t0 + kHold + 2 * kSecond, kHold));  // and holds again
}

TEST_F(RequestValuesTest, TheFastPathFailsOpenOnAFileTruncatedUnderTheMapping) {
  snap::SnapshotWriter writer = published(payload(2, 100));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  const auto settings = vhost("a.test", nullptr, nullptr);
  cm::RequestValues values;
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
  ASSERT_NE(compute_fresh(source, settings, cm::coarse_monotonic_now_ns()), nullptr);

  // The fast path reads the mapping without a fault guard: the fault is
  // repaired (zeros mapped in place), the read fails open.
  ASSERT_EQ(::truncate(path_.c_str(), 0), 0);
  EXPECT_EQ(compute_fresh(source, settings, cm::coarse_monotonic_now_ns()), nullptr);
  cm::Transition transition{};
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(values.health, cm::Health::missing);
  EXPECT_EQ(transition, cm::Transition::became_missing);
  EXPECT_EQ(compute_fresh(source, settings, cm::coarse_monotonic_now_ns()), nullptr);

  // The helper re-creates the file: followed as before.
  ASSERT_TRUE(writer.needs_reopen());
  const snap::SnapshotWriter recreated = published(payload(4, 100));
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(values.health, cm::Health::fresh);
  EXPECT_EQ(transition, cm::Transition::recovered);
  const cm::FreshRequest* fresh = compute_fresh(source, settings, cm::coarse_monotonic_now_ns());
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh_text(*fresh, 1), "4");
}

TEST(LastingTexts, AreTheRenderingsOfTheSameNumbers) {
  char text[32];
  for (std::uint64_t n = 0; n < 10000; ++n) {
    coupecircuit::render_unsigned(text, sizeof text, n);
    ASSERT_STREQ(cm::static_number_text(text), text) << n;
    ASSERT_STREQ(cm::static_unsigned_text(n), text) << n;
    coupecircuit::render_centi(text, sizeof text, n);
    ASSERT_STREQ(cm::static_number_text(text), text) << n;
  }
  EXPECT_EQ(cm::static_number_text("10000"), nullptr);  // beyond: copied per request
  EXPECT_EQ(cm::static_number_text("1.5"), nullptr);    // not a rendering of the helper's
}

TEST_F(RequestValuesTest, ThreadsSeeConsistentValuesWhileTheWriterPublishes) {
  snap::SnapshotWriter writer = published(payload(0, 0));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  const auto settings = vhost("a.test", nullptr, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> inconsistent{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      cm::RequestValues values;
      while (!stop.load()) {
        source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
        // Every payload has sessions == load centi: a torn copy would differ.
        if (values.has(cm::Variable::load_avg)) {
          std::string load(text(values, cm::Variable::load_avg)), sessions(text(values, cm::Variable::sessions_actives));
          if (coupecircuit::centi_to_string(std::stoull(sessions)) != load) ++inconsistent;
        }
        ++reads;
      }
    });
  }
  publish_while_reading(writer, reads, stop, readers);
  EXPECT_EQ(inconsistent.load(), 0U);
  EXPECT_GE(reads.load(), 20000U);
}

TEST_F(RequestValuesTest, TheFastPathSeesConsistentValuesWhileTheWriterPublishes) {
  snap::SnapshotWriter writer = published(payload(0, 0));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  const auto settings = vhost("a.test", nullptr, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> inconsistent{0}, fast{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      cm::RequestValues values;
      while (!stop.load()) {
        std::string load, sessions;
        if (const cm::FreshRequest* fresh = compute_fresh(source, settings, cm::coarse_monotonic_now_ns())) {
          load = fresh_text(*fresh, 0);
          sessions = fresh_text(*fresh, 1);
          ++fast;
        } else {
          source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
          if (!values.has(cm::Variable::load_avg)) continue;
          load = text(values, cm::Variable::load_avg);
          sessions = text(values, cm::Variable::sessions_actives);
        }
        // Every payload has sessions == load centi: a torn copy would differ.
        if (coupecircuit::centi_to_string(std::stoull(sessions)) != load) ++inconsistent;
        ++reads;
      }
    });
  }
  publish_while_reading(writer, reads, stop, readers);
  EXPECT_EQ(inconsistent.load(), 0U);
  EXPECT_GE(reads.load(), 20000U);
  EXPECT_GT(fast.load(), 0U);
}

}  // namespace

TEST_F(RequestValuesTest, ASnapshotWritableByOthersIsNotTrusted) {
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer);
  writer->publish(payload(3, 100));
  ASSERT_EQ(::chmod(path_.c_str(), 0666), 0);
  cm::SnapshotSource source;
  source.open(path_.c_str());
  const auto settings = vhost("a.test", "10", nullptr);
  cm::RequestValues values;
  cm::Transition transition{};
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(values.health, cm::Health::missing);  // fail open: inconnu, no value
  EXPECT_EQ(values.verdict, Verdict::inconnu);
  EXPECT_FALSE(values.has(cm::Variable::sessions_actives));
  EXPECT_EQ(source.last_open_error(), snap::ReadError::untrusted);
  EXPECT_EQ(transition, cm::Transition::became_missing);  // logged once (CC0302)
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(transition, cm::Transition::none);
  // Group-writable is refused too; 0644 is used again (re-opened within a second).
  ASSERT_EQ(::chmod(path_.c_str(), 0664), 0);
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  bool fresh = false;
  for (int i = 0; i < 300 && !fresh; ++i) {
    source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
    fresh = values.health == cm::Health::fresh;
    if (!fresh) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(fresh);
  EXPECT_EQ(text(values, cm::Variable::sessions_actives), "3");
}

TEST_F(RequestValuesTest, SessionsUnknownAreAbsentAndDoNotTrip) {
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer);
  auto blind = payload(50, 100);
  blind.flags |= snap::kFlagScanFailed;
  writer->publish(blind);
  cm::SnapshotSource source;
  source.open(path_.c_str());
  const auto settings = vhost("a.test", "10", nullptr);
  cm::RequestValues values;
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
  ASSERT_EQ(values.health, cm::Health::fresh);
  EXPECT_FALSE(values.sessions_known);
  EXPECT_FALSE(values.has(cm::Variable::sessions_actives));  // absent, not 0
  EXPECT_EQ(text(values, cm::Variable::seuil_sessions), "10");
  EXPECT_EQ(values.verdict, Verdict::ok);  // 50 sessions it cannot see do not trip it
  const cm::FreshRequest* fresh = compute_fresh(source, settings, cm::coarse_monotonic_now_ns());
  ASSERT_NE(fresh, nullptr);
  EXPECT_FALSE(fresh_has(*fresh, cm::Variable::sessions_actives));
  EXPECT_EQ(fresh->verdict, Verdict::ok);
  EXPECT_EQ(fresh->state, cm::state_code(values));
}

namespace {

void add_probe(snap::Payload& p, const char* name, std::uint32_t status, std::uint32_t saturation, bool measured) {
  auto& entry = p.probes[p.probe_count++];
  std::snprintf(entry.name, sizeof entry.name, "%s", name);
  entry.status = status;
  if (measured) {
    entry.flags |= snap::kProbeHasSaturation;
    entry.saturation_pct = saturation;
    coupecircuit::render_unsigned(entry.saturation_text, sizeof entry.saturation_text, saturation);
  }
}

}  // namespace

TEST_F(RequestValuesTest, ProbesExportIndisponibleAndSaturation) {
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer) << writer.error().message;
  const auto settings = vhost("a.test", nullptr, nullptr);
  cm::SnapshotSource source;
  source.open(path_.c_str());
  cm::RequestValues values;

  // No probes configured: neither COUPECIRCUIT_INDISPONIBLE nor SATURATION_*.
  writer->publish(payload(3, 100));
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
  EXPECT_FALSE(values.has(cm::Variable::indisponible));
  EXPECT_EQ(values.tail.count, 0U);

  auto p = payload(3, 100);
  p.probe_flags = snap::kProbesConfigured;
  add_probe(p, "main-db", snap::kProbeUp, 57, true);
  add_probe(p, "replica", snap::kProbeUp, 1000, true);
  add_probe(p, "elastic", snap::kProbeUp, 0, false);
  add_probe(p, "old-db", snap::kProbeDown, 90, false);
  writer->publish(p);
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
  EXPECT_TRUE(values.has(cm::Variable::indisponible));
  EXPECT_EQ(text(values, cm::Variable::indisponible), "");  // none down
  ASSERT_EQ(values.tail.count, 2U);
  EXPECT_STREQ(values.tail.name[0], "SATURATION_MAIN_DB");
  EXPECT_STREQ(values.tail.value[0], "57");
  EXPECT_STREQ(values.tail.name[1], "SATURATION_REPLICA");
  EXPECT_STREQ(values.tail.value[1], "1000");

  // A long down list is exported whole (longer than a number's text).
  std::snprintf(p.probes_down_text, sizeof p.probes_down_text, "%s",
                "a-very-long-probe-name-number-1,a-very-long-probe-name-number-2");
  writer->publish(p);
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
  EXPECT_EQ(text(values, cm::Variable::indisponible),
            "a-very-long-probe-name-number-1,a-very-long-probe-name-number-2");
  // The fast path gives the same lasting text.
  const cm::FreshRequest* fresh = compute_fresh(source, settings, cm::coarse_monotonic_now_ns());
  ASSERT_NE(fresh, nullptr);
  const std::size_t row = static_cast<std::size_t>(cm::Variable::indisponible);
  ASSERT_NE(fresh->values->lasting[row], nullptr);
  EXPECT_STREQ(fresh->values->lasting[row], "a-very-long-probe-name-number-1,a-very-long-probe-name-number-2");
  EXPECT_EQ(fresh->values->tail.count, 2U);

  // Stale probe results: nothing is said (absent is not "none down").
  p.probe_flags |= snap::kProbesStale;
  writer->publish(p);
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
  EXPECT_FALSE(values.has(cm::Variable::indisponible));
  EXPECT_EQ(values.tail.count, 0U);
}
