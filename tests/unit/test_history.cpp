// Unit tests of common/history.cpp: the status page's last hour, its file
// format (validated like any input), and the helper's recorder.
#include "history.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "unit_test_support.hpp"

namespace coupecircuit::history {
namespace {

using test::TempDir;

snapshot::Payload payload_with(std::uint64_t sessions, std::uint32_t load_centi, std::uint32_t flags = 0) {
  snapshot::Payload payload{};
  payload.sessions_active = sessions;
  payload.load_centi[0] = load_centi;
  payload.flags = flags;
  return payload;
}

TEST(History, PathIsNextToTheSnapshot) {
  EXPECT_EQ(path_for("/run/coupecircuit/snapshot"), "/run/coupecircuit/snapshot.history");
}

TEST(History, PointCarriesCutAndUnknownSessions) {
  const Point point = point_from(payload_with(7, 152, snapshot::kFlagCutActive | snapshot::kFlagScanFailed), 1000);
  EXPECT_EQ(point.wall_s, 1000);
  EXPECT_EQ(point.sessions, 7U);
  EXPECT_EQ(point.load1_centi, 152U);
  EXPECT_EQ(point.flags, kPointCut | kPointSessionsUnknown);
  EXPECT_EQ(point_from(payload_with(0, 0, snapshot::kFlagPsiAvailable), 0).flags, 0U);
}

TEST(History, EncodeDecodeRoundTrip) {
  const std::vector<Point> points = {{10, 1, 100, 0}, {20, 2, 200, kPointCut}, {40, 3, 300, kPointSessionsUnknown}};
  const std::string bytes = encode(points);
  EXPECT_EQ(bytes.size(), sizeof(FileHeader) + 3 * sizeof(Point));
  auto decoded = decode(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message;
  ASSERT_EQ(decoded->size(), 3U);
  EXPECT_EQ((*decoded)[2].sessions, 3U);
  EXPECT_EQ((*decoded)[1].flags, kPointCut);
}

TEST(History, DecodeRejectsDamagedFiles) {
  const std::string good = encode({{10, 1, 100, 0}, {20, 2, 200, 0}});
  EXPECT_FALSE(decode(""));
  EXPECT_FALSE(decode(good.substr(0, 10)));
  EXPECT_FALSE(decode(good.substr(0, good.size() - 1)));  // truncated point
  EXPECT_FALSE(decode(good + "x"));                       // trailing bytes
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  EXPECT_FALSE(decode(bad_magic));
  std::string bad_version = good;
  bad_version[4] = 9;
  EXPECT_FALSE(decode(bad_version));
  std::string huge_count = good;
  huge_count[16] = '\xff';
  huge_count[17] = '\xff';
  EXPECT_FALSE(decode(huge_count));
  EXPECT_FALSE(decode(encode({{20, 1, 100, 0}, {20, 2, 200, 0}})));  // not increasing
}

// A recorder whose history file lies beside dir_/snapshot.
class HistoryRecorder : public ::testing::Test {
 protected:
  TempDir dir_;
  const std::string snapshot_ = dir_.path() + "/snapshot";
  Recorder recorder_;
};

TEST_F(HistoryRecorder, OnePointPerSlotWrittenToTheFile) {
  EXPECT_EQ(recorder_.record(snapshot_, payload_with(1, 10), 1003), "");
  EXPECT_EQ(recorder_.record(snapshot_, payload_with(2, 20), 1009), "");  // same slot: nothing
  EXPECT_EQ(recorder_.record(snapshot_, payload_with(3, 30), 1010), "");
  ASSERT_EQ(recorder_.points().size(), 2U);
  EXPECT_EQ(recorder_.points()[0].wall_s, 1000);
  EXPECT_EQ(recorder_.points()[0].sessions, 1U);
  EXPECT_EQ(recorder_.points()[1].wall_s, 1010);
  auto file = read_file(path_for(snapshot_));
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->size(), 2U);
  struct stat info {};
  ASSERT_EQ(::stat(path_for(snapshot_).c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644U);
}

TEST_F(HistoryRecorder, KeepsOneHourAndDropsOlderPoints) {
  for (std::int64_t t = 0; t < 2 * kSpanSeconds; t += kIntervalSeconds) {
    EXPECT_EQ(recorder_.record(snapshot_, payload_with(static_cast<std::uint64_t>(t), 0), 100000 + t), "");
  }
  ASSERT_EQ(recorder_.points().size(), kCapacity);
  EXPECT_EQ(recorder_.points().back().wall_s - recorder_.points().front().wall_s, kSpanSeconds - kIntervalSeconds);
  // A gap of 30 minutes (helper stopped): the points older than an hour go.
  const std::int64_t later = recorder_.points().back().wall_s + kSpanSeconds / 2;
  EXPECT_EQ(recorder_.record(snapshot_, payload_with(1, 0), later), "");
  EXPECT_EQ(recorder_.points().size(), kCapacity / 2 + 1);  // the last half hour and the new point
  EXPECT_GT(recorder_.points().front().wall_s, later - kSpanSeconds);
}

TEST_F(HistoryRecorder, ContinuesFromTheFileAfterARestart) {
  {
    Recorder first;
    EXPECT_EQ(first.record(snapshot_, payload_with(5, 50), 2000), "");
    EXPECT_EQ(first.record(snapshot_, payload_with(6, 60), 2010), "");
  }
  Recorder second;
  EXPECT_EQ(second.record(snapshot_, payload_with(7, 70), 2015), "");  // same slot as the last point
  ASSERT_EQ(second.points().size(), 2U);
  EXPECT_EQ(second.record(snapshot_, payload_with(8, 80), 2020), "");
  ASSERT_EQ(second.points().size(), 3U);
  EXPECT_EQ(second.points()[0].sessions, 5U);
  EXPECT_EQ(second.points()[2].sessions, 8U);
}

TEST_F(HistoryRecorder, IgnoresADamagedFileAndReplacesIt) {
  std::ofstream(path_for(snapshot_)) << "garbage";
  EXPECT_EQ(recorder_.record(snapshot_, payload_with(1, 1), 3000), "");
  EXPECT_EQ(recorder_.points().size(), 1U);
  auto file = read_file(path_for(snapshot_));
  ASSERT_TRUE(file);
  EXPECT_EQ(file->size(), 1U);
}

TEST_F(HistoryRecorder, ReportsAWriteFailureOnce) {
  const std::string snapshot = dir_.path() + "/missing-dir/snapshot";
  EXPECT_NE(recorder_.record(snapshot, payload_with(1, 1), 4000), "");
  EXPECT_EQ(recorder_.record(snapshot, payload_with(1, 1), 4010), "");  // still failing: said already
  EXPECT_EQ(recorder_.points().size(), 2U);                             // kept in memory
}

TEST_F(HistoryRecorder, StartsAgainWhenTheClockGoesBack) {
  EXPECT_EQ(recorder_.record(snapshot_, payload_with(1, 1), 5000), "");
  EXPECT_EQ(recorder_.record(snapshot_, payload_with(2, 2), 4000), "");
  ASSERT_EQ(recorder_.points().size(), 1U);
  EXPECT_EQ(recorder_.points()[0].wall_s, 4000);
}

TEST(History, ReadFileRefusesWhatIsNotAHistory) {
  TempDir dir;
  EXPECT_FALSE(read_file(dir.path() + "/none"));
  EXPECT_FALSE(read_file(dir.path()));  // a directory
  std::ofstream(dir.path() + "/big") << std::string(100000, 'x');
  EXPECT_FALSE(read_file(dir.path() + "/big"));
}

}  // namespace
}  // namespace coupecircuit::history
