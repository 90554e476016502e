// What mod_coupecircuit exports, computed from a real snapshot file written by
// SnapshotWriter, without httpd.
#include <gtest/gtest.h>
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
    cm::set_vhost_identity(settings, name);
    return settings;
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
  EXPECT_FALSE(values.has_values);
  EXPECT_FALSE(values.has_age);
  EXPECT_TRUE(values.has_seuil_sessions);  // the vhost's own configuration is not invented
  EXPECT_STREQ(values.seuil_sessions, "10");
  EXPECT_EQ(transition, cm::Transition::became_missing);
  // One report per incident, not per request.
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(transition, cm::Transition::none);
}

TEST_F(RequestValuesTest, FreshSnapshotExportsValuesAndVerdict) {
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer) << writer.error().message;
  writer->publish(payload(3, 152));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  cm::RequestValues values;
  cm::Transition transition{};
  source.compute(vhost("a.test", "10", "4"), cm::coarse_monotonic_now_ns() + 1'000'000, values, &transition);
  EXPECT_EQ(values.health, cm::Health::fresh);
  EXPECT_EQ(values.verdict, Verdict::ok);
  EXPECT_STREQ(values.load_avg, "1.52");
  EXPECT_STREQ(values.sessions, "3");
  EXPECT_FALSE(values.cut);
  EXPECT_STREQ(values.seuil_sessions, "10");
  EXPECT_STREQ(values.seuil_load, "4.00");
  EXPECT_STREQ(values.age, "0");
  EXPECT_EQ(transition, cm::Transition::none);

  // Reaching a threshold is "surcharge"; the cut wins over it.
  writer->publish(payload(10, 152));
  source.compute(vhost("a.test", "10", "4"), cm::coarse_monotonic_now_ns(), values, nullptr);
  EXPECT_EQ(values.verdict, Verdict::surcharge);
  EXPECT_STREQ(values.sessions, "10");
  ControlState cut;
  cut.cut_active = true;
  writer->publish(payload(10, 152, cut));
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
  EXPECT_STREQ(a.seuil_sessions, "7");    // vhost override
  EXPECT_STREQ(b.seuil_sessions, "10");   // directive
  EXPECT_STREQ(a.seuil_load, "2.50");     // global override
  EXPECT_STREQ(b.seuil_load, "2.50");
  cm::RequestValues none;
  source.compute(vhost("c.test", nullptr, nullptr), cm::coarse_monotonic_now_ns(), none, nullptr);
  EXPECT_FALSE(none.has_seuil_sessions);
  EXPECT_TRUE(none.has_seuil_load);
}

TEST_F(RequestValuesTest, StaleThenRecovered) {
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer);
  writer->publish(payload(2, 100));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  auto settings = vhost("a.test", nullptr, nullptr);
  settings.max_age_seconds = 1;
  settings.max_age_set = true;
  cm::RequestValues values;
  cm::Transition transition{};
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  ASSERT_EQ(values.health, cm::Health::fresh);
  // 3.5 s later without a heartbeat: stale, the age (whole seconds) is still told.
  source.compute(settings, cm::coarse_monotonic_now_ns() + 3'500'000'000ULL, values, &transition);
  EXPECT_EQ(values.health, cm::Health::stale);
  EXPECT_EQ(values.verdict, Verdict::inconnu);
  EXPECT_FALSE(values.has_values);
  EXPECT_TRUE(values.has_age);
  EXPECT_EQ(std::string(values.age), "3");
  EXPECT_EQ(transition, cm::Transition::became_stale);
  source.compute(settings, cm::coarse_monotonic_now_ns() + 4'000'000'000ULL, values, &transition);
  EXPECT_EQ(transition, cm::Transition::none);
  writer->heartbeat();
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(values.health, cm::Health::fresh);
  EXPECT_EQ(transition, cm::Transition::recovered);
}

TEST_F(RequestValuesTest, ReplacedFileIsReopenedAfterItGoesStale) {
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer);
  writer->publish(payload(2, 100));
  cm::SnapshotSource source;
  source.open(path_.c_str());
  auto settings = vhost("a.test", nullptr, nullptr);
  cm::RequestValues values;
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, nullptr);
  ASSERT_STREQ(values.sessions, "2");

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
  EXPECT_STREQ(values.sessions, "5");
}

TEST_F(RequestValuesTest, TruncatedUnderTheMappingFailsOpenInsteadOfCrashing) {
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer);
  writer->publish(payload(2, 100));
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
  EXPECT_FALSE(values.has_values);
  EXPECT_EQ(transition, cm::Transition::became_missing);

  // The helper notices and re-creates the file; the next reopen maps it.
  ASSERT_TRUE(writer->needs_reopen());
  auto recreated = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(recreated) << recreated.error().message;
  recreated->publish(payload(4, 100));
  source.compute(settings, cm::coarse_monotonic_now_ns(), values, &transition);
  EXPECT_EQ(values.health, cm::Health::fresh);
  EXPECT_STREQ(values.sessions, "4");
  EXPECT_EQ(transition, cm::Transition::recovered);
}

TEST_F(RequestValuesTest, ThreadsSeeConsistentValuesWhileTheWriterPublishes) {
  auto writer = snap::SnapshotWriter::open(path_);
  ASSERT_TRUE(writer);
  writer->publish(payload(0, 0));
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
        if (values.has_values) {
          std::string load(values.load_avg), sessions(values.sessions);
          if (coupecircuit::centi_to_string(std::stoull(sessions)) != load) ++inconsistent;
        }
        ++reads;
      }
    });
  }
  // Publish until the readers have done plenty of reads (bounded in time).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (std::uint32_t i = 1; reads.load() < 20000 && std::chrono::steady_clock::now() < deadline; ++i) {
    writer->publish(payload(i % 100000, i % 100000));
  }
  stop = true;
  for (auto& thread : readers) thread.join();
  EXPECT_EQ(inconsistent.load(), 0U);
  EXPECT_GE(reads.load(), 20000U);
}

}  // namespace
