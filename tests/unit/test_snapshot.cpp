// Unit tests of common/snapshot.cpp: layout facts, writer/reader round trip,
// typed read errors, writer re-open rules, and seqlock stress with reader
// threads and reader processes.
#include "snapshot.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "unit_test_support.hpp"

namespace coupecircuit::snapshot {
namespace {

using test::TempDir;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kWords = sizeof(Payload) / sizeof(std::uint64_t);
using Words = std::array<std::uint64_t, kWords>;

// A payload whose every 64-bit word holds value: any mix of two publishes is
// visible as words that differ.
Payload uniform_payload(std::uint64_t value) {
  Words words;
  words.fill(value);
  Payload payload;
  std::memcpy(&payload, words.data(), sizeof payload);
  return payload;
}

// True when all the words of payload are equal; *value gets the first one.
bool uniform(const Payload& payload, std::uint64_t* value) {
  Words words;
  std::memcpy(words.data(), &payload, sizeof payload);
  for (const auto word : words) {
    if (word != words[0]) return false;
  }
  *value = words[0];
  return true;
}

Payload sample_payload() {
  Payload payload{};
  payload.writer_generation = 0x0123456789abcdefULL;
  payload.writer_pid = 4242;
  payload.flags = kFlagPsiAvailable | kFlagCutActive;
  payload.snapshot_sequence = 17;
  payload.last_scan_wall_ns = 1'700'000'000'123'456'789LL;
  payload.last_scan_duration_us = 1234;
  payload.sessions_active = 321;
  payload.files_seen = 1000;
  for (std::size_t i = 0; i < 4; ++i) {
    payload.count_active[i] = 10 + i;
    payload.count_inactive[i] = 20 + i;
  }
  payload.active_minutes = 24;
  copy_text(payload.sessions_active_text, "321");
  payload.load_centi[0] = 152;
  payload.load_centi[1] = 98;
  payload.load_centi[2] = 45;
  payload.psi_some_avg10_centi[0] = 7;
  payload.mem_available_centi_pct = 5000;
  payload.swap_used_centi_pct = 12;
  copy_text(payload.load1_text, "1.52");
  payload.cut_since_wall_s = 1'700'000'000;
  copy_text(payload.cut_reason, "DB maintenance");
  payload.global_override.has_sessions = 1;
  payload.global_override.sessions = 500;
  copy_text(payload.global_override.sessions_text, "500");
  payload.vhost_override_count = 1;
  copy_text(payload.vhost_overrides[0].name, "www.example.org");
  payload.vhost_overrides[0].name_hash = vhost_name_hash("www.example.org", 15);
  payload.vhost_overrides[0].thresholds.has_load = 1;
  payload.vhost_overrides[0].thresholds.load_centi = 450;
  copy_text(payload.vhost_overrides[0].thresholds.load_text, "4.50");
  return payload;
}

bool same_bytes(const Payload& a, const Payload& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// A second, independent read-write mapping of a snapshot file, to damage it
// the way a crashed writer or another program could.
class RawMapping {
 public:
  explicit RawMapping(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_GE(fd, 0) << path << ": " << std::strerror(errno);
    if (fd < 0) return;
    void* address = ::mmap(nullptr, kTotalSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    EXPECT_NE(address, MAP_FAILED);
    if (address != MAP_FAILED) file_ = static_cast<SnapshotFile*>(address);
  }
  RawMapping(const RawMapping&) = delete;
  RawMapping& operator=(const RawMapping&) = delete;
  ~RawMapping() {
    if (file_ != nullptr) ::munmap(file_, kTotalSize);
  }
  [[nodiscard]] bool valid() const noexcept { return file_ != nullptr; }
  void store_sequence(std::uint64_t value) {
    std::atomic_ref<std::uint64_t>(file_->sync.sequence).store(value, std::memory_order_release);
  }
  void store_heartbeat(std::uint64_t value) {
    std::atomic_ref<std::uint64_t>(file_->sync.heartbeat_ns).store(value, std::memory_order_release);
  }
  [[nodiscard]] SnapshotFile* file() const noexcept { return file_; }

 private:
  SnapshotFile* file_ = nullptr;
};

template <typename T>
void poke(const std::string& path, std::size_t offset, T value) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::pwrite(fd, &value, sizeof value, static_cast<off_t>(offset)), static_cast<ssize_t>(sizeof value));
  ::close(fd);
}

Result<SnapshotWriter> open_writer(const std::string& path) {
  return SnapshotWriter::open(path);
}

// ---- Layout

TEST(SnapshotLayout, StaticFacts) {
  EXPECT_EQ(offsetof(SnapshotFile, header), 0U);
  EXPECT_EQ(offsetof(SnapshotFile, sync), 64U);
  EXPECT_EQ(offsetof(SnapshotFile, payload), 128U);
  EXPECT_EQ(kHeaderSize, 128U);
  EXPECT_EQ(kTotalSize, sizeof(SnapshotFile));
  EXPECT_EQ(kTotalSize % kCacheLine, 0U);
  EXPECT_EQ(alignof(SnapshotFile), kCacheLine);
  EXPECT_EQ(sizeof(Header), kCacheLine);
  EXPECT_EQ(sizeof(SyncLine), kCacheLine);
  EXPECT_EQ(offsetof(SyncLine, sequence), 0U);
  EXPECT_EQ(offsetof(SyncLine, heartbeat_ns), 8U);
  EXPECT_EQ(offsetof(Header, magic), 0U);
  EXPECT_EQ(offsetof(Header, layout_version), 4U);
  EXPECT_EQ(offsetof(Header, header_size), 6U);
  EXPECT_EQ(offsetof(Header, total_size), 8U);
  EXPECT_EQ(sizeof(ThresholdSet), 56U);
  EXPECT_EQ(sizeof(VhostOverride), 152U);
  EXPECT_EQ(sizeof(ClusterState), 232U);
  EXPECT_EQ(sizeof(ProbeEntry), 152U);
  EXPECT_EQ(offsetof(Payload, probes) % 8, 0U);
  EXPECT_EQ(sizeof(Payload) % 8, 0U);
  EXPECT_EQ(kHeaderSize + sizeof(Payload) + (kTotalSize - kHeaderSize - sizeof(Payload)), kTotalSize);
  EXPECT_LT(kTotalSize - kHeaderSize - sizeof(Payload), kCacheLine) << "only tail padding after the payload";
  // No padding at the end of the payload: the last field ends it.
  EXPECT_EQ(offsetof(Payload, vhost_overrides) + sizeof(Payload::vhost_overrides), sizeof(Payload));
  EXPECT_EQ(offsetof(Payload, vhost_overrides) % 8, 0U);
  EXPECT_LE(kTotalSize, 16384U);
  EXPECT_TRUE(std::atomic_ref<std::uint64_t>::is_always_lock_free);
  // "NSCC" in file byte order on little-endian machines.
  EXPECT_EQ(kMagic, 0x4343534EU);
  EXPECT_EQ(kLayoutVersion, 3U);
}

TEST(SnapshotLayout, VhostNameHashIsFnv1a64) {
  EXPECT_EQ(vhost_name_hash("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(vhost_name_hash("a", 1), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(vhost_name_hash("foobar", 6), 0x85944171f73967e8ULL);
  static_assert(vhost_name_hash("a", 1) == 0xaf63dc4c8601ec8cULL, "usable at compile time");
  EXPECT_NE(vhost_name_hash("www.example.org", 15), vhost_name_hash("WWW.example.org", 15));
}

TEST(SnapshotLayout, CopyTextTruncatesAndZeroFills) {
  char text[8];
  std::memset(text, 'X', sizeof text);
  copy_text(text, "abc");
  EXPECT_STREQ(text, "abc");
  for (std::size_t i = 3; i < sizeof text; ++i) EXPECT_EQ(text[i], '\0');
  copy_text(text, "0123456789");
  EXPECT_STREQ(text, "0123456");
  copy_text(text, "");
  for (const char c : text) EXPECT_EQ(c, '\0');
}

TEST(SnapshotReadError, EveryErrorHasAName) {
  for (const ReadError error : {ReadError::missing, ReadError::not_regular, ReadError::bad_magic,
                                ReadError::bad_version, ReadError::bad_size, ReadError::torn, ReadError::stale}) {
    EXPECT_FALSE(to_string(error).empty());
    EXPECT_NE(to_string(error), "unknown");
  }
  EXPECT_EQ(to_string(ReadError::stale), "stale");
}

TEST(SnapshotClocks, MonotonicAndRealtime) {
  const std::uint64_t first = monotonic_now_ns();
  const std::uint64_t second = monotonic_now_ns();
  EXPECT_GT(first, 0U);
  EXPECT_GE(second, first);
  const std::int64_t wall = realtime_now_ns();
  EXPECT_GT(wall, 1'600'000'000LL * 1'000'000'000LL);
  EXPECT_NE(new_writer_generation(), new_writer_generation());
}

// ---- Writer: creation

TEST(SnapshotWriter, OpenCreatesAFreshFileWithAValidHeader) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  EXPECT_TRUE(writer->is_valid());
  EXPECT_EQ(writer->path(), path);
  EXPECT_FALSE(writer->needs_reopen());

  const struct stat info = test::stat_of(path);
  EXPECT_TRUE(S_ISREG(info.st_mode));
  EXPECT_EQ(static_cast<std::size_t>(info.st_size), kTotalSize);
  EXPECT_EQ(info.st_mode & 07777, 0644U);

  SnapshotFile file;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pread(fd, &file, sizeof file, 0), static_cast<ssize_t>(sizeof file));
  ::close(fd);
  EXPECT_EQ(file.header.magic, kMagic);
  EXPECT_EQ(file.header.layout_version, kLayoutVersion);
  EXPECT_EQ(file.header.header_size, kHeaderSize);
  EXPECT_EQ(file.header.total_size, kTotalSize);
  EXPECT_EQ(file.header.reserved, 0U);
  EXPECT_EQ(file.sync.sequence, 0U);
  EXPECT_EQ(file.sync.heartbeat_ns, 0U);
  EXPECT_TRUE(same_bytes(file.payload, Payload{}));
  EXPECT_TRUE(header_is_valid(file, kTotalSize));

  // No temporary file is left beside it.
  EXPECT_EQ(test::list_directory(dir.path()), std::vector<std::string>{"snapshot"});
}

TEST(SnapshotWriter, FileAndDirectoryModesDoNotDependOnTheUmask) {
  TempDir dir;
  const test::ScopedUmask umask(077);
  const std::string path = dir / "run/snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  EXPECT_EQ(test::stat_of(path).st_mode & 07777, 0644U);
  // Readers run as the web server's user: they must reach the file.
  const struct stat parent = test::stat_of(dir / "run");
  EXPECT_TRUE(S_ISDIR(parent.st_mode));
  EXPECT_EQ(parent.st_mode & 07777, 0755U);
}

TEST(SnapshotWriter, AFreshFileIsStaleUntilTheFirstPublish) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  const auto unpublished = read_snapshot(path.c_str());
  ASSERT_FALSE(unpublished.has_value());
  EXPECT_EQ(unpublished.error(), ReadError::stale);

  writer->publish(sample_payload());
  const auto published = read_snapshot(path.c_str());
  ASSERT_TRUE(published.has_value()) << to_string(published.error());
}

TEST(SnapshotWriter, OpenFailsWhenThePathIsADirectory) {
  TempDir dir;
  test::make_directory(dir / "snapshot");
  const auto writer = open_writer(dir / "snapshot");
  ASSERT_FALSE(writer.has_value());
  EXPECT_NE(writer.error().message.find(dir / "snapshot"), std::string::npos) << writer.error().message;
}

TEST(SnapshotWriter, OpenFailsWhenTheParentCannotBeCreated) {
  TempDir dir;
  const auto writer = open_writer(dir / "a/b/snapshot");
  ASSERT_FALSE(writer.has_value());
  EXPECT_EQ(writer.error().code, ENOENT);
}

// ---- Round trip

TEST(SnapshotRoundTrip, PublishThenReadReturnsTheSamePayload) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  const Payload payload = sample_payload();
  const std::uint64_t before = monotonic_now_ns();
  writer->publish(payload);

  const auto copy = read_snapshot(path.c_str());
  ASSERT_TRUE(copy.has_value()) << to_string(copy.error());
  EXPECT_TRUE(same_bytes(copy->payload, payload));
  EXPECT_EQ(copy->sequence, 2U);
  EXPECT_GE(copy->heartbeat_ns, before);
  EXPECT_LT(copy->age_ns, 5ULL * 1000 * 1000 * 1000);
  EXPECT_STREQ(copy->payload.cut_reason, "DB maintenance");
  EXPECT_STREQ(copy->payload.vhost_overrides[0].thresholds.load_text, "4.50");

  Payload second = payload;
  second.sessions_active = 999;
  writer->publish(second);
  const auto again = read_snapshot(path.c_str());
  ASSERT_TRUE(again.has_value()) << to_string(again.error());
  EXPECT_EQ(again->sequence, 4U);
  EXPECT_EQ(again->payload.sessions_active, 999U);
}

TEST(SnapshotRoundTrip, HeartbeatDoesNotChangeTheSequence) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  writer->publish(sample_payload());
  auto mapping = ReadOnlyMapping::open(path.c_str());
  ASSERT_TRUE(mapping.has_value()) << to_string(mapping.error());
  const std::uint64_t sequence = load_sequence(*mapping->file());
  const std::uint64_t beat = load_heartbeat_ns(*mapping->file());
  // Poll until the monotonic clock has moved so the new beat is visible.
  const std::uint64_t deadline = monotonic_now_ns() + 1'000'000'000ULL;
  while (monotonic_now_ns() <= beat && monotonic_now_ns() < deadline) {
  }
  writer->heartbeat();
  EXPECT_EQ(load_sequence(*mapping->file()), sequence);
  EXPECT_GT(load_heartbeat_ns(*mapping->file()), beat);
}

TEST(SnapshotRoundTrip, LowLevelCopyReportsTheEvenSequence) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  writer->publish(uniform_payload(5));
  auto mapping = ReadOnlyMapping::open(path.c_str());
  ASSERT_TRUE(mapping.has_value()) << to_string(mapping.error());
  Payload copy;
  std::uint64_t sequence = 0;
  ASSERT_TRUE(try_copy_payload(*mapping->file(), copy, &sequence, 1));
  EXPECT_EQ(sequence, 2U);
  std::uint64_t value = 0;
  ASSERT_TRUE(uniform(copy, &value));
  EXPECT_EQ(value, 5U);
  ASSERT_TRUE(try_copy_payload(*mapping->file(), copy, nullptr, 1));
  EXPECT_FALSE(try_copy_payload(*mapping->file(), copy, &sequence, 0)) << "zero attempts never copy";
}

TEST(SnapshotRoundTrip, DefaultWriterIsInert) {
  SnapshotWriter writer;
  EXPECT_FALSE(writer.is_valid());
  EXPECT_TRUE(writer.needs_reopen());
  writer.publish(sample_payload());  // no-op, must not crash
  writer.heartbeat();
}

TEST(SnapshotRoundTrip, MovedWriterKeepsPublishing) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto opened = open_writer(path);
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  SnapshotWriter writer = std::move(opened.value());
  writer.publish(uniform_payload(1));
  SnapshotWriter other;
  other = std::move(writer);
  EXPECT_TRUE(other.is_valid());
  EXPECT_EQ(other.path(), path);
  other.publish(uniform_payload(2));
  const auto copy = read_snapshot(path.c_str());
  ASSERT_TRUE(copy.has_value()) << to_string(copy.error());
  EXPECT_EQ(copy->sequence, 4U);
  EXPECT_EQ(copy->payload.writer_generation, 2U);
}

// ---- ReadOnlyMapping

TEST(ReadOnlyMapping, IsAReadOnlySharedMappingOfTheFile) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  auto mapping = ReadOnlyMapping::open(path.c_str());
  ASSERT_TRUE(mapping.has_value()) << to_string(mapping.error());
  const struct stat info = test::stat_of(path);
  EXPECT_EQ(mapping->inode(), info.st_ino);
  EXPECT_EQ(mapping->device(), info.st_dev);

  const auto address = reinterpret_cast<std::uintptr_t>(mapping->file());
  std::ifstream maps("/proc/self/maps");
  std::string line;
  std::string permissions;
  while (std::getline(maps, line)) {
    std::uintptr_t start = 0;
    std::uintptr_t end = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%zx-%zx %7s", &start, &end, perms) != 3) continue;
    if (address >= start && address < end) {
      permissions = perms;
      break;
    }
  }
  EXPECT_EQ(permissions, "r--s") << "the mapping must be PROT_READ and MAP_SHARED";

  // Writes through the writer are visible through the reader's mapping.
  writer->publish(uniform_payload(77));
  Payload copy;
  ASSERT_TRUE(try_copy_payload(*mapping->file(), copy, nullptr, 10));
  std::uint64_t value = 0;
  ASSERT_TRUE(uniform(copy, &value));
  EXPECT_EQ(value, 77U);

  // release() keeps the mapping alive and forgets it.
  ReadOnlyMapping moved = std::move(mapping.value());
  EXPECT_EQ(mapping->file(), nullptr);
  const SnapshotFile* kept = moved.release();
  EXPECT_EQ(moved.file(), nullptr);
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->header.magic, kMagic);
  ::munmap(const_cast<SnapshotFile*>(kept), kTotalSize);
}

// ---- Typed read errors

TEST(SnapshotReadErrors, Missing) {
  TempDir dir;
  const auto in_dir = read_snapshot((dir / "snapshot").c_str());
  ASSERT_FALSE(in_dir.has_value());
  EXPECT_EQ(in_dir.error(), ReadError::missing);
  const auto no_dir = read_snapshot((dir / "nowhere/snapshot").c_str());
  ASSERT_FALSE(no_dir.has_value());
  EXPECT_EQ(no_dir.error(), ReadError::missing);
}

TEST(SnapshotReadErrors, ADirectoryIsNotRegular) {
  TempDir dir;
  test::make_directory(dir / "snapshot");
  const auto copy = read_snapshot((dir / "snapshot").c_str());
  ASSERT_FALSE(copy.has_value());
  EXPECT_EQ(copy.error(), ReadError::not_regular);
}

TEST(SnapshotReadErrors, ASymlinkToAValidSnapshotIsNotFollowed) {
  TempDir dir;
  const std::string target = dir / "real";
  auto writer = open_writer(target);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  writer->publish(sample_payload());
  ASSERT_TRUE(read_snapshot(target.c_str()).has_value());
  ASSERT_EQ(::symlink(target.c_str(), (dir / "snapshot").c_str()), 0);
  const auto copy = read_snapshot((dir / "snapshot").c_str());
  ASSERT_FALSE(copy.has_value());
  EXPECT_EQ(copy.error(), ReadError::not_regular);
  const auto mapping = ReadOnlyMapping::open((dir / "snapshot").c_str());
  ASSERT_FALSE(mapping.has_value());
  EXPECT_EQ(mapping.error(), ReadError::not_regular);
}

TEST(SnapshotReadErrors, AFifoIsNotRegularAndDoesNotBlock) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "snapshot").c_str(), 0644), 0);
  const auto started = Clock::now();
  const auto copy = read_snapshot((dir / "snapshot").c_str());
  ASSERT_FALSE(copy.has_value());
  EXPECT_EQ(copy.error(), ReadError::not_regular);
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(2));
}

TEST(SnapshotReadErrors, BadMagic) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  {
    auto writer = open_writer(path);
    ASSERT_TRUE(writer.has_value()) << writer.error().message;
    writer->publish(sample_payload());
  }
  ASSERT_NO_FATAL_FAILURE(poke<std::uint32_t>(path, offsetof(Header, magic), 0xdeadbeefU));
  const auto copy = read_snapshot(path.c_str());
  ASSERT_FALSE(copy.has_value());
  EXPECT_EQ(copy.error(), ReadError::bad_magic);
}

TEST(SnapshotReadErrors, BadVersion) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  {
    auto writer = open_writer(path);
    ASSERT_TRUE(writer.has_value()) << writer.error().message;
    writer->publish(sample_payload());
  }
  ASSERT_NO_FATAL_FAILURE(
      poke<std::uint16_t>(path, offsetof(Header, layout_version), static_cast<std::uint16_t>(kLayoutVersion + 1)));
  const auto copy = read_snapshot(path.c_str());
  ASSERT_FALSE(copy.has_value());
  EXPECT_EQ(copy.error(), ReadError::bad_version);
  ASSERT_NO_FATAL_FAILURE(poke<std::uint16_t>(path, offsetof(Header, layout_version), 0));
  EXPECT_EQ(read_snapshot(path.c_str()).error(), ReadError::bad_version);
}

TEST(SnapshotReadErrors, BadSizeFieldsInTheHeader) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  {
    auto writer = open_writer(path);
    ASSERT_TRUE(writer.has_value()) << writer.error().message;
    writer->publish(sample_payload());
  }
  ASSERT_NO_FATAL_FAILURE(poke<std::uint16_t>(path, offsetof(Header, header_size), 64));
  EXPECT_EQ(read_snapshot(path.c_str()).error(), ReadError::bad_size);
  ASSERT_NO_FATAL_FAILURE(poke<std::uint16_t>(path, offsetof(Header, header_size), kHeaderSize));
  EXPECT_TRUE(read_snapshot(path.c_str()).has_value());
  ASSERT_NO_FATAL_FAILURE(
      poke<std::uint32_t>(path, offsetof(Header, total_size), static_cast<std::uint32_t>(kTotalSize + 64)));
  EXPECT_EQ(read_snapshot(path.c_str()).error(), ReadError::bad_size);
}

TEST(SnapshotReadErrors, BadSizeOfTheFile) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  {
    auto writer = open_writer(path);
    ASSERT_TRUE(writer.has_value()) << writer.error().message;
    writer->publish(sample_payload());
  }
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(kTotalSize - 64)), 0);
  EXPECT_EQ(read_snapshot(path.c_str()).error(), ReadError::bad_size);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(kTotalSize + 4096)), 0);
  EXPECT_EQ(read_snapshot(path.c_str()).error(), ReadError::bad_size);
  ASSERT_EQ(::truncate(path.c_str(), 0), 0);
  EXPECT_EQ(read_snapshot(path.c_str()).error(), ReadError::bad_size);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(kTotalSize)), 0);
  EXPECT_EQ(read_snapshot(path.c_str()).error(), ReadError::bad_magic) << "right size, zeroed header";
}

TEST(SnapshotReadErrors, HeaderIsValidChecksTheMappedSize) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  auto mapping = ReadOnlyMapping::open(path.c_str());
  ASSERT_TRUE(mapping.has_value());
  ReadError why = ReadError::missing;
  EXPECT_TRUE(header_is_valid(*mapping->file(), kTotalSize, &why));
  EXPECT_FALSE(header_is_valid(*mapping->file(), kTotalSize - 1, &why));
  EXPECT_EQ(why, ReadError::bad_size);
  EXPECT_FALSE(header_is_valid(*mapping->file(), 0, nullptr));
}

TEST(SnapshotReadErrors, StaleWhenTheHeartbeatIsOlderThanTheMaximumAge) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  writer->publish(sample_payload());
  ASSERT_TRUE(read_snapshot(path.c_str()).has_value()) << "fresh with the default maximum age";

  // With max_age_ns = 1 the copy turns stale as soon as the clock moves on.
  ReadOptions strict;
  strict.max_age_ns = 1;
  const std::uint64_t deadline = monotonic_now_ns() + 2'000'000'000ULL;
  Result<SnapshotCopy, ReadError> copy = read_snapshot(path.c_str(), strict);
  while (copy.has_value() && monotonic_now_ns() < deadline) copy = read_snapshot(path.c_str(), strict);
  ASSERT_FALSE(copy.has_value());
  EXPECT_EQ(copy.error(), ReadError::stale);

  bool stale = false;
  const auto allowed = read_snapshot_allow_stale(path.c_str(), strict, &stale);
  ASSERT_TRUE(allowed.has_value());
  EXPECT_TRUE(stale);
  EXPECT_GT(allowed->age_ns, 1U);
  EXPECT_TRUE(same_bytes(allowed->payload, sample_payload()));

  // A heartbeat 20 s in the past is stale for the default 10 s.
  RawMapping raw(path);
  ASSERT_TRUE(raw.valid());
  raw.store_heartbeat(monotonic_now_ns() - 20'000'000'000ULL);
  const auto old = read_snapshot(path.c_str());
  ASSERT_FALSE(old.has_value());
  EXPECT_EQ(old.error(), ReadError::stale);
  const auto old_allowed = read_snapshot_allow_stale(path.c_str(), ReadOptions{}, &stale);
  ASSERT_TRUE(old_allowed.has_value());
  EXPECT_TRUE(stale);
  EXPECT_GE(old_allowed->age_ns, 20'000'000'000ULL);

  // A heartbeat revives it.
  writer->heartbeat();
  EXPECT_TRUE(read_snapshot(path.c_str()).has_value());
}

TEST(SnapshotReadErrors, TornWhenTheSequenceStaysOdd) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  writer->publish(sample_payload());
  RawMapping raw(path);
  ASSERT_TRUE(raw.valid());
  raw.store_sequence(3);  // a writer stuck mid-update

  ReadOptions options;
  options.max_attempts = 1000;
  auto started = Clock::now();
  const auto copy = read_snapshot(path.c_str(), options);
  ASSERT_FALSE(copy.has_value());
  EXPECT_EQ(copy.error(), ReadError::torn);
  EXPECT_LT(Clock::now() - started, std::chrono::milliseconds(500));

  started = Clock::now();
  const auto with_defaults = read_snapshot(path.c_str());
  ASSERT_FALSE(with_defaults.has_value());
  EXPECT_EQ(with_defaults.error(), ReadError::torn);
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(2)) << "the retries are bounded";

  bool stale = false;
  EXPECT_EQ(read_snapshot_allow_stale(path.c_str(), options, &stale).error(), ReadError::torn);

  raw.store_sequence(4);
  const auto recovered = read_snapshot(path.c_str());
  ASSERT_TRUE(recovered.has_value()) << to_string(recovered.error());
  EXPECT_EQ(recovered->sequence, 4U);
}

// ---- Writer re-open

TEST(SnapshotWriterReopen, AValidFileIsReusedInPlace) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  ino_t first_inode = 0;
  {
    auto writer = open_writer(path);
    ASSERT_TRUE(writer.has_value()) << writer.error().message;
    writer->publish(uniform_payload(1));
    writer->publish(uniform_payload(2));
    first_inode = test::stat_of(path).st_ino;
  }
  auto reader = ReadOnlyMapping::open(path.c_str());
  ASSERT_TRUE(reader.has_value());

  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  EXPECT_EQ(test::stat_of(path).st_ino, first_inode);
  EXPECT_FALSE(writer->needs_reopen());
  EXPECT_EQ(load_sequence(*reader->file()), 4U) << "the sequence is kept";
  bool stale = false;
  const auto kept = read_snapshot_allow_stale(path.c_str(), ReadOptions{}, &stale);
  ASSERT_TRUE(kept.has_value());
  std::uint64_t value = 0;
  ASSERT_TRUE(uniform(kept->payload, &value));
  EXPECT_EQ(value, 2U) << "the last payload survives the restart";

  writer->publish(uniform_payload(3));
  EXPECT_EQ(load_sequence(*reader->file()), 6U);
  Payload copy;
  ASSERT_TRUE(try_copy_payload(*reader->file(), copy, nullptr, 10));
  ASSERT_TRUE(uniform(copy, &value));
  EXPECT_EQ(value, 3U) << "an existing reader mapping sees the new writer";
  EXPECT_EQ(test::list_directory(dir.path()), std::vector<std::string>{"snapshot"});
}

TEST(SnapshotWriterReopen, AnOddSequenceLeftByAKilledWriterIsClosed) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  {
    auto writer = open_writer(path);
    ASSERT_TRUE(writer.has_value()) << writer.error().message;
    writer->publish(uniform_payload(1));
  }
  {
    RawMapping raw(path);
    ASSERT_TRUE(raw.valid());
    raw.store_sequence(5);
  }
  ASSERT_EQ(read_snapshot(path.c_str()).error(), ReadError::torn);
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  auto reader = ReadOnlyMapping::open(path.c_str());
  ASSERT_TRUE(reader.has_value());
  EXPECT_EQ(load_sequence(*reader->file()), 6U);
  writer->publish(uniform_payload(9));
  const auto copy = read_snapshot(path.c_str());
  ASSERT_TRUE(copy.has_value()) << to_string(copy.error());
  EXPECT_EQ(copy->sequence, 8U);
  EXPECT_EQ(copy->sequence % 2, 0U);
}

void expect_replaced(const std::string& path, std::string_view old_content) {
  const int old_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // keeps the old inode alive
  ASSERT_GE(old_fd, 0);
  const ino_t old_inode = test::stat_of(path).st_ino;
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  const struct stat info = test::stat_of(path);
  EXPECT_NE(info.st_ino, old_inode) << "replaced by rename, not rewritten in place";
  EXPECT_EQ(static_cast<std::size_t>(info.st_size), kTotalSize);
  EXPECT_FALSE(writer->needs_reopen());
  writer->publish(uniform_payload(11));
  EXPECT_TRUE(read_snapshot(path.c_str()).has_value());

  // The old inode is untouched.
  std::string before(old_content.size() + 16, '\0');
  const ssize_t got = ::pread(old_fd, before.data(), before.size(), 0);
  ::close(old_fd);
  ASSERT_GE(got, 0);
  before.resize(static_cast<std::size_t>(got));
  EXPECT_EQ(before, old_content);
}

TEST(SnapshotWriterReopen, AShortGarbageFileIsReplaced) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  test::write_file(path, "garbage");
  ASSERT_NO_FATAL_FAILURE(expect_replaced(path, "garbage"));
  EXPECT_EQ(test::list_directory(dir.path()), std::vector<std::string>{"snapshot"});
}

TEST(SnapshotWriterReopen, AFullSizeGarbageFileIsReplaced) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  const std::string junk(kTotalSize, '\xab');
  test::write_file(path, junk);
  ASSERT_NO_FATAL_FAILURE(expect_replaced(path, junk));
  EXPECT_EQ(test::list_directory(dir.path()), std::vector<std::string>{"snapshot"});
}

// The upgrade from layout 2 (before the cluster block and the probe table): a
// new helper renames a fresh file over the old one; readers of the old inode
// keep it.
TEST(SnapshotWriterReopen, ALayoutTwoFileIsReplacedNotRewritten) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  constexpr std::size_t kAddedByLayoutThree = sizeof(ClusterState) + 2 * 4 + 8 + kProbesDownCapacity +
                                              kMaxProbes * sizeof(ProbeEntry);
  const std::size_t old_size =
      (kHeaderSize + sizeof(Payload) - kAddedByLayoutThree + kCacheLine - 1) / kCacheLine * kCacheLine;
  std::string old(old_size, '\0');
  Header header{};
  header.magic = kMagic;
  header.layout_version = 2;
  header.header_size = static_cast<std::uint16_t>(kHeaderSize);
  header.total_size = static_cast<std::uint32_t>(old_size);
  std::memcpy(old.data(), &header, sizeof header);
  test::write_file(path, old);
  const auto refused = read_snapshot(path.c_str());
  ASSERT_FALSE(refused.has_value()) << "this build's readers refuse it";
  EXPECT_TRUE(refused.error() == ReadError::bad_size || refused.error() == ReadError::bad_version);
  ASSERT_NO_FATAL_FAILURE(expect_replaced(path, old));
}

TEST(SnapshotWriterReopen, AnEmptyFileIsReplaced) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  test::write_file(path, "");
  ASSERT_NO_FATAL_FAILURE(expect_replaced(path, ""));
}

TEST(SnapshotWriterReopen, AnIncompatibleLayoutVersionIsNotReusedAsIs) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  {
    auto writer = open_writer(path);
    ASSERT_TRUE(writer.has_value()) << writer.error().message;
  }
  ASSERT_NO_FATAL_FAILURE(
      poke<std::uint16_t>(path, offsetof(Header, layout_version), static_cast<std::uint16_t>(kLayoutVersion + 1)));
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  writer->publish(uniform_payload(1));
  const auto copy = read_snapshot(path.c_str());
  ASSERT_TRUE(copy.has_value()) << to_string(copy.error());
}

TEST(SnapshotWriterReopen, ASymlinkAtThePathIsReplacedWithoutTouchingItsTarget) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  const std::string target = dir / "target";
  test::write_file(target, "precious");
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  EXPECT_TRUE(S_ISREG(test::stat_of(path).st_mode));
  EXPECT_EQ(test::read_file(target), "precious");
  writer->publish(uniform_payload(1));
  EXPECT_TRUE(read_snapshot(path.c_str()).has_value());
}

TEST(SnapshotWriterReopen, NeedsReopenAfterUnlink) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  EXPECT_FALSE(writer->needs_reopen());
  ASSERT_EQ(::unlink(path.c_str()), 0);
  EXPECT_TRUE(writer->needs_reopen());
  auto reopened = open_writer(path);
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
  EXPECT_FALSE(reopened->needs_reopen());
}

TEST(SnapshotWriterReopen, NeedsReopenAfterReplacement) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  writer->publish(uniform_payload(1));
  // Another valid snapshot renamed over the path: same content, new inode.
  const std::string copy_path = dir / "copy";
  test::write_file(copy_path, test::read_file(path));
  ASSERT_EQ(::rename(copy_path.c_str(), path.c_str()), 0);
  EXPECT_TRUE(read_snapshot(path.c_str()).has_value());
  EXPECT_TRUE(writer->needs_reopen());
}

TEST(SnapshotWriterReopen, NeedsReopenAfterDamage) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  ASSERT_NO_FATAL_FAILURE(poke<std::uint32_t>(path, offsetof(Header, magic), 0));
  EXPECT_TRUE(writer->needs_reopen()) << "damaged header";
  ASSERT_NO_FATAL_FAILURE(poke<std::uint32_t>(path, offsetof(Header, magic), kMagic));
  EXPECT_FALSE(writer->needs_reopen());
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(kTotalSize + 4096)), 0);
  EXPECT_TRUE(writer->needs_reopen()) << "wrong size";
}

TEST(SnapshotWriterReopen, NeedsReopenWhenThePathBecomesASymlinkToTheSameFile) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  ASSERT_EQ(::rename(path.c_str(), (dir / "moved").c_str()), 0);
  ASSERT_EQ(::symlink((dir / "moved").c_str(), path.c_str()), 0);
  EXPECT_TRUE(writer->needs_reopen());
}

// ---- Seqlock stress
//
// The writer publishes payloads whose every word holds the publish number v
// (sequence 2v); readers check every accepted copy: all words equal, the
// sequence matching the content, values never going backwards. The machine
// may be shared and busy, so the readers run for a bounded time: at least
// kStressMinimum, then until they have seen kStressWantedDistinct distinct
// values, at most kStressMaximum.

constexpr auto kStressMinimum = std::chrono::milliseconds(1000);
constexpr auto kStressMaximum = std::chrono::milliseconds(2000);
constexpr std::uint64_t kStressWantedDistinct = 200;
constexpr unsigned kStressAttempts = 64;
constexpr std::uint64_t kStressBurst = 32;

// The writer publishes in bursts of kStressBurst back-to-back updates, so that
// readers collide with writes in progress, then waits until some reader has
// completed a copy (at most 5 ms), so that readers also see the values move
// whatever the relative speed of copying and publishing (sanitizers slow
// copies down far more than publishes).
void pace_writer(std::uint64_t value, const std::atomic<std::uint64_t>& reader_copies) {
  if (value % kStressBurst != 0) return;
  const std::uint64_t seen = reader_copies.load(std::memory_order_relaxed);
  const auto until = Clock::now() + std::chrono::milliseconds(5);
  while (reader_copies.load(std::memory_order_relaxed) == seen && Clock::now() < until) std::this_thread::yield();
}

struct ReaderResult {
  std::uint64_t copies = 0;
  std::uint64_t failed = 0;        // every attempt saw a write in progress
  std::uint64_t inconsistent = 0;  // accepted copies that mix publishes
  std::uint64_t mismatched = 0;    // sequence does not belong to the content
  std::uint64_t backwards = 0;     // an older value after a newer one
  std::uint64_t distinct = 0;
};

// One reader's loop over a mapping; reader_copies counts accepted copies for
// pace_writer.
ReaderResult run_reader(const SnapshotFile& file, std::atomic<std::uint64_t>& reader_copies) {
  ReaderResult result;
  const auto started = Clock::now();
  Payload copy;
  std::uint64_t last = 0;
  bool have_last = false;
  unsigned unchanged = 0;
  for (std::uint64_t i = 1;; ++i) {
    if ((i & 63U) == 0) {
      const auto elapsed = Clock::now() - started;
      if (elapsed >= kStressMaximum) break;
      if (elapsed >= kStressMinimum && result.distinct >= kStressWantedDistinct) break;
    }
    std::uint64_t sequence = 0;
    if (!try_copy_payload(file, copy, &sequence, kStressAttempts)) {
      ++result.failed;
      std::this_thread::yield();  // let a writer sharing this CPU finish
      continue;
    }
    ++result.copies;
    reader_copies.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t value = 0;
    if (!uniform(copy, &value)) {
      ++result.inconsistent;
      continue;
    }
    if (sequence != 2 * value) ++result.mismatched;
    if (have_last && value < last) ++result.backwards;
    if (!have_last || value != last) {
      ++result.distinct;
      unchanged = 0;
    } else if (++unchanged == 16) {
      unchanged = 0;
      std::this_thread::yield();  // nothing new: let the writer run if it shares this CPU
    }
    last = value;
    have_last = true;
  }
  return result;
}

TEST(SeqlockStress, ReaderThreadsNeverAcceptATornCopy) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;

  constexpr int kReaders = 3;
  std::atomic<bool> stop_writer{false};
  std::atomic<std::uint64_t> reader_copies{0};
  std::atomic<std::uint64_t> published{0};
  std::thread writer_thread([&] {
    std::uint64_t value = 0;
    while (!stop_writer.load(std::memory_order_relaxed)) {
      writer->publish(uniform_payload(++value));
      published.store(value, std::memory_order_relaxed);
      pace_writer(value, reader_copies);
    }
  });

  std::vector<ReaderResult> results(kReaders);
  std::vector<int> opened(kReaders, 0);  // not vector<bool>: its elements share words
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      auto mapping = ReadOnlyMapping::open(path.c_str());
      if (!mapping) return;
      opened[static_cast<std::size_t>(r)] = 1;
      results[static_cast<std::size_t>(r)] = run_reader(*mapping->file(), reader_copies);
    });
  }
  for (auto& reader : readers) reader.join();
  stop_writer.store(true);
  writer_thread.join();

  ReaderResult total;
  for (int r = 0; r < kReaders; ++r) {
    const ReaderResult& result = results[static_cast<std::size_t>(r)];
    EXPECT_EQ(opened[static_cast<std::size_t>(r)], 1) << "reader " << r;
    EXPECT_EQ(result.inconsistent, 0U) << "reader " << r << " accepted torn copies";
    EXPECT_EQ(result.mismatched, 0U) << "reader " << r;
    EXPECT_EQ(result.backwards, 0U) << "reader " << r;
    EXPECT_GE(result.distinct, 20U) << "reader " << r << " should see the values change under it";
    total.copies += result.copies;
    total.failed += result.failed;
    total.distinct += result.distinct;
  }
  std::printf("[ seqlock  ] %llu publishes, %llu consistent copies, %llu distinct values seen, %llu copies gave up\n",
              static_cast<unsigned long long>(published.load()), static_cast<unsigned long long>(total.copies),
              static_cast<unsigned long long>(total.distinct), static_cast<unsigned long long>(total.failed));
  EXPECT_GT(published.load(), 100U);
  EXPECT_GT(total.copies, 1000U);
}

// Child side of the process stress: exit status 0 when every accepted copy
// was consistent, else a code saying what went wrong.
[[noreturn]] void reader_process(const char* path, std::atomic<std::uint64_t>* reader_copies) {
  auto mapping = ReadOnlyMapping::open(path);
  if (!mapping) ::_exit(10);
  const ReaderResult result = run_reader(*mapping->file(), *reader_copies);
  if (result.inconsistent != 0) ::_exit(11);
  if (result.mismatched != 0) ::_exit(12);
  if (result.backwards != 0) ::_exit(13);
  if (result.copies < 100) ::_exit(14);
  if (result.distinct < 20) ::_exit(15);
  ::_exit(0);
}

TEST(SeqlockStress, ReaderProcessesWithReadOnlyMappingsNeverAcceptATornCopy) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = open_writer(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;

  // A counter shared with the children, for pace_writer.
  void* shared =
      ::mmap(nullptr, sizeof(std::atomic<std::uint64_t>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared between processes");
  auto* reader_copies = new (shared) std::atomic<std::uint64_t>(0);

  constexpr int kChildren = 3;
  std::vector<pid_t> children;
  for (int i = 0; i < kChildren; ++i) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0) << std::strerror(errno);
    if (pid == 0) reader_process(path.c_str(), reader_copies);
    children.push_back(pid);
  }

  // The parent writes until every child has exited (they stop on their own
  // within kStressMaximum); a generous deadline guards against a hang.
  const auto deadline = Clock::now() + kStressMaximum + std::chrono::seconds(20);
  std::vector<int> statuses(kChildren, -1);
  int running = kChildren;
  std::uint64_t value = 0;
  while (running > 0 && Clock::now() < deadline) {
    for (int burst = 0; burst < 64; ++burst) {
      writer->publish(uniform_payload(++value));
      pace_writer(value, *reader_copies);
    }
    for (int i = 0; i < kChildren; ++i) {
      const auto index = static_cast<std::size_t>(i);
      if (statuses[index] != -1) continue;
      int status = 0;
      if (::waitpid(children[index], &status, WNOHANG) == children[index]) {
        statuses[index] = status;
        --running;
      }
    }
  }
  for (int i = 0; i < kChildren; ++i) {
    const auto index = static_cast<std::size_t>(i);
    if (statuses[index] != -1) continue;
    ::kill(children[index], SIGKILL);
    ::waitpid(children[index], nullptr, 0);
    ADD_FAILURE() << "reader process " << i << " did not finish in time";
  }
  for (int i = 0; i < kChildren; ++i) {
    const int status = statuses[static_cast<std::size_t>(i)];
    if (status == -1) continue;
    ASSERT_TRUE(WIFEXITED(status)) << "reader process " << i << " died, status " << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "reader process " << i
                                      << " failed (10 open, 11 torn copy, 12 sequence mismatch, 13 went "
                                         "backwards, 14 too few copies, 15 too few distinct values)";
  }
  std::printf("[ seqlock  ] %llu publishes, %llu consistent copies in %d reader processes\n",
              static_cast<unsigned long long>(value), static_cast<unsigned long long>(reader_copies->load()),
              kChildren);
  EXPECT_GT(reader_copies->load(), 300U);
  ::munmap(shared, sizeof(std::atomic<std::uint64_t>));
}

}  // namespace
}  // namespace coupecircuit::snapshot
