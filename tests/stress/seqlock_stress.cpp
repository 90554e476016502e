// Seqlock stress across processes: one writer (SnapshotWriter, as in
// coupecircuitd) publishes a payload whose every 64-bit word holds the same
// counter, at a fixed rate, while reader processes (fork, ReadOnlyMapping:
// PROT_READ, MAP_SHARED, as in every Apache child) and reader threads in the
// writer's own process (which ThreadSanitizer can observe) copy it with
// try_copy_payload as fast as they can. A copy the seqlock accepts must be
// made of one publish only: every word equal, its sequence twice the
// counter, and never older than a copy the same reader accepted before.
//
//   seqlock_stress [--seconds N] [--readers N] [--reader-threads N]
//                  [--rate UPDATES_PER_S] [--min-rate UPDATES_PER_S]
//                  [--min-reads N] [--control 0|1]
//
// Prints the counts; exits 1 on any inconsistent copy, on a reader that
// failed or hung, or when the writer's rate or the number of reads stays
// below the minimums; 2 on bad usage.
//
// --control 1 adds a thread that copies the payload without the seqlock
// (the same relaxed loads, no sequence check): it must see torn copies,
// which shows that the check above would catch one.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "snapshot.hpp"

namespace {

namespace snap = coupecircuit::snapshot;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kWords = sizeof(snap::Payload) / sizeof(std::uint64_t);
constexpr unsigned kCopyAttempts = 64;
constexpr int kMaxReaders = 64;

struct Options {
  double seconds = 10.0;
  int readers = 3;          // processes
  int reader_threads = 1;   // in the writer's process
  double rate = 50'000.0;   // publishes per second; 0: as fast as possible
  double min_rate = 10'000.0;
  std::uint64_t min_reads = 1'000'000;
  bool control = false;
};

// Per reader, in memory shared by every process.
struct alignas(64) ReaderStats {
  std::atomic<std::uint64_t> reads;         // consistent copies accepted
  std::atomic<std::uint64_t> gave_up;       // every attempt saw a write in progress
  std::atomic<std::uint64_t> torn;          // accepted copies mixing publishes
  std::atomic<std::uint64_t> mismatched;    // sequence does not belong to the content
  std::atomic<std::uint64_t> backwards;     // older than an earlier accepted copy
  std::atomic<std::uint64_t> distinct;      // distinct values seen
  std::atomic<int> state;                   // 0 starting, 1 reading, 2 done, negative: failed
};

struct Shared {
  std::atomic<bool> stop;
  std::atomic<std::uint64_t> control_copies;
  std::atomic<std::uint64_t> control_torn;
  ReaderStats readers[kMaxReaders];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "shared between processes");

snap::Payload uniform_payload(std::uint64_t value) {
  std::array<std::uint64_t, kWords> words;
  words.fill(value);
  snap::Payload payload;
  std::memcpy(&payload, words.data(), sizeof payload);
  return payload;
}

bool uniform(const snap::Payload& payload, std::uint64_t* value) {
  std::array<std::uint64_t, kWords> words;
  std::memcpy(words.data(), &payload, sizeof payload);
  for (const auto word : words) {
    if (word != words[0]) return false;
  }
  *value = words[0];
  return true;
}

// The permissions of the mapping holding address, from /proc/self/maps
// ("r--s" for a read-only shared mapping).
std::string mapping_permissions(const void* address) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto where = reinterpret_cast<std::uintptr_t>(address);
  while (std::getline(maps, line)) {
    std::uintptr_t start = 0;
    std::uintptr_t end = 0;
    char permissions[8] = {};
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " %4s", &start, &end, permissions) != 3) continue;
    if (where >= start && where < end) return permissions;
  }
  return "";
}

void read_until_stopped(const snap::SnapshotFile& file, const std::atomic<bool>& stop, ReaderStats& stats) {
  snap::Payload copy;
  std::uint64_t last = 0;
  bool have_last = false;
  std::uint64_t reads = 0, gave_up = 0, torn = 0, mismatched = 0, backwards = 0, distinct = 0;
  for (std::uint64_t i = 0;; ++i) {
    if ((i & 255U) == 0) {
      stats.reads.store(reads, std::memory_order_relaxed);
      stats.gave_up.store(gave_up, std::memory_order_relaxed);
      if (stop.load(std::memory_order_relaxed)) break;
    }
    std::uint64_t sequence = 0;
    if (!snap::try_copy_payload(file, copy, &sequence, kCopyAttempts)) {
      ++gave_up;
      std::this_thread::yield();  // the writer may be waiting for this CPU
      continue;
    }
    ++reads;
    std::uint64_t value = 0;
    if (!uniform(copy, &value)) {
      ++torn;
      continue;
    }
    if (sequence != 2 * value) ++mismatched;
    if (have_last && value < last) ++backwards;
    if (!have_last || value != last) ++distinct;
    last = value;
    have_last = true;
  }
  stats.reads.store(reads, std::memory_order_relaxed);
  stats.gave_up.store(gave_up, std::memory_order_relaxed);
  stats.torn.store(torn, std::memory_order_relaxed);
  stats.mismatched.store(mismatched, std::memory_order_relaxed);
  stats.backwards.store(backwards, std::memory_order_relaxed);
  stats.distinct.store(distinct, std::memory_order_relaxed);
}

// The negative control: copies without the seqlock's sequence check.
void run_control(const char* path, Shared& shared) {
  auto mapping = snap::ReadOnlyMapping::open(path);
  if (!mapping) return;
  const auto* source = reinterpret_cast<const std::uint64_t*>(&mapping->file()->payload);
  std::array<std::uint64_t, kWords> words;
  std::uint64_t copies = 0;
  std::uint64_t torn = 0;
  while (!shared.stop.load(std::memory_order_relaxed)) {
    for (std::size_t i = 0; i < kWords; ++i) {
      words[i] = std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(source[i])).load(std::memory_order_relaxed);
    }
    ++copies;
    for (const auto word : words) {
      if (word != words[0]) {
        ++torn;
        break;
      }
    }
  }
  shared.control_copies.store(copies);
  shared.control_torn.store(torn);
}

// A reader on its own mapping; false (and the state says why) when the file
// cannot be mapped or the mapping is not read-only.
bool run_reader(const char* path, Shared& shared, ReaderStats& stats) {
  auto mapping = snap::ReadOnlyMapping::open(path);
  if (!mapping) {
    stats.state.store(-1);
    return false;
  }
  const std::string permissions = mapping_permissions(mapping->file());
  if (permissions != "r--s") {
    std::fprintf(stderr, "seqlock_stress: reader mapping is \"%s\", expected r--s\n", permissions.c_str());
    stats.state.store(-2);
    return false;
  }
  stats.state.store(1);
  read_until_stopped(*mapping->file(), shared.stop, stats);
  stats.state.store(2);
  return true;
}

bool parse_number(const char* text, double* out) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || value < 0) return false;
  *out = value;
  return true;
}

int usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--seconds N] [--readers N] [--reader-threads N] [--rate UPDATES_PER_S] "
               "[--min-rate UPDATES_PER_S] [--min-reads N] [--control 0|1]\n",
               program);
  return 2;
}

// Waits until the steady clock reaches `until`, giving the CPU away.
void pace_until(Clock::time_point until) {
  for (;;) {
    const auto now = Clock::now();
    if (now >= until) return;
    if (until - now > std::chrono::microseconds(200)) {
      const timespec pause{0, 100'000};  // 100 us: the writer's pacing interval
      ::nanosleep(&pause, nullptr);
    } else {
      std::this_thread::yield();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) return usage(argv[0]);
    double value = 0;
    if (!parse_number(argv[i + 1], &value)) return usage(argv[0]);
    ++i;
    if (flag == "--seconds" && value > 0) {
      options.seconds = value;
    } else if (flag == "--readers" && value >= 1 && value <= kMaxReaders - 8) {
      options.readers = static_cast<int>(value);
    } else if (flag == "--reader-threads" && value <= 8) {
      options.reader_threads = static_cast<int>(value);
    } else if (flag == "--rate") {
      options.rate = value;
    } else if (flag == "--min-rate") {
      options.min_rate = value;
    } else if (flag == "--min-reads") {
      options.min_reads = static_cast<std::uint64_t>(value);
    } else if (flag == "--control" && (value == 0 || value == 1)) {
      options.control = value == 1;
    } else {
      return usage(argv[0]);
    }
  }

  char directory[] = "/tmp/coupecircuit-seqlock-XXXXXX";
  if (::mkdtemp(directory) == nullptr) {
    std::perror("seqlock_stress: mkdtemp");
    return 1;
  }
  const std::string path = std::string(directory) + "/snapshot";
  auto writer = snap::SnapshotWriter::open(path);
  if (!writer) {
    std::fprintf(stderr, "seqlock_stress: %s\n", writer.error().message.c_str());
    return 1;
  }
  // A fresh file: sequence 0 and a zero payload, i.e. counter 0. Publish n
  // stores counter n under sequence 2n.

  void* memory = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    std::perror("seqlock_stress: mmap");
    return 1;
  }
  auto* shared = new (memory) Shared{};
  const int total_readers = options.readers + options.reader_threads;

  // Processes first, while this process has one thread.
  std::vector<pid_t> children;
  for (int r = 0; r < options.readers; ++r) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("seqlock_stress: fork");
      shared->stop.store(true);
      break;
    }
    if (pid == 0) ::_exit(run_reader(path.c_str(), *shared, shared->readers[r]) ? 0 : 1);
    children.push_back(pid);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < options.reader_threads; ++t) {
    ReaderStats& stats = shared->readers[options.readers + t];
    threads.emplace_back([&path, shared, &stats] { run_reader(path.c_str(), *shared, stats); });
  }
  if (options.control) threads.emplace_back([&path, shared] { run_control(path.c_str(), *shared); });

  // Every reader mapped and reading before the clock starts.
  bool all_started = true;
  const auto start_deadline = Clock::now() + std::chrono::seconds(30);
  for (int r = 0; r < total_readers; ++r) {
    while (shared->readers[r].state.load() == 0 && Clock::now() < start_deadline) std::this_thread::yield();
    if (shared->readers[r].state.load() != 1) {
      std::fprintf(stderr, "seqlock_stress: reader %d did not start (state %d)\n", r, shared->readers[r].state.load());
      all_started = false;
    }
  }

  // The writer: bursts of 8 back-to-back publishes (readers collide with
  // writes in progress), paced to the wanted average rate.
  std::uint64_t value = 0;
  const auto started = Clock::now();
  const auto until = started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.seconds));
  if (all_started) {
    while (Clock::now() < until) {
      for (int burst = 0; burst < 8; ++burst) writer->publish(uniform_payload(++value));
      if (options.rate > 0) {
        pace_until(started + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(static_cast<double>(value) / options.rate)));
      }
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  shared->stop.store(true);

  for (auto& thread : threads) thread.join();
  bool readers_ok = all_started;
  const auto stop_deadline = Clock::now() + std::chrono::seconds(30);
  for (std::size_t c = 0; c < children.size(); ++c) {
    int status = 0;
    pid_t done = 0;
    while ((done = ::waitpid(children[c], &status, WNOHANG)) == 0 && Clock::now() < stop_deadline) {
      std::this_thread::yield();
    }
    if (done != children[c]) {
      ::kill(children[c], SIGKILL);
      ::waitpid(children[c], &status, 0);
      std::fprintf(stderr, "seqlock_stress: reader process %zu did not stop\n", c);
      readers_ok = false;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "seqlock_stress: reader process %zu failed (status %d)\n", c, status);
      readers_ok = false;
    }
  }

  std::uint64_t reads = 0, gave_up = 0, torn = 0, mismatched = 0, backwards = 0, min_distinct = UINT64_MAX;
  for (int r = 0; r < total_readers; ++r) {
    const ReaderStats& stats = shared->readers[r];
    reads += stats.reads.load();
    gave_up += stats.gave_up.load();
    torn += stats.torn.load();
    mismatched += stats.mismatched.load();
    backwards += stats.backwards.load();
    if (stats.distinct.load() < min_distinct) min_distinct = stats.distinct.load();
    if (stats.state.load() != 2) readers_ok = false;
  }
  const double rate = elapsed > 0 ? static_cast<double>(value) / elapsed : 0;
  std::printf("seqlock_stress: %.1f s, %" PRIu64 " updates (%.0f/s), %d reader processes + %d reader threads\n",
              elapsed, value, rate, options.readers, options.reader_threads);
  std::printf("seqlock_stress: %" PRIu64 " consistent reads (%.0f/s), %" PRIu64 " gave up after %u attempts, "
              "fewest distinct values seen by a reader %" PRIu64 "\n",
              reads, elapsed > 0 ? static_cast<double>(reads) / elapsed : 0.0, gave_up, kCopyAttempts,
              min_distinct == UINT64_MAX ? 0 : min_distinct);
  std::printf("seqlock_stress: torn %" PRIu64 ", sequence mismatches %" PRIu64 ", went backwards %" PRIu64 "\n", torn,
              mismatched, backwards);

  if (options.control) {
    std::printf("seqlock_stress: control without the seqlock: %" PRIu64 " copies, %" PRIu64 " torn\n",
                shared->control_copies.load(), shared->control_torn.load());
  }

  ::unlink(path.c_str());
  ::rmdir(directory);

  bool ok = readers_ok;
  if (torn != 0 || mismatched != 0 || backwards != 0) {
    std::fprintf(stderr, "seqlock_stress: FAIL: a reader accepted an inconsistent copy\n");
    ok = false;
  }
  if (rate < options.min_rate) {
    std::fprintf(stderr, "seqlock_stress: FAIL: %.0f updates/s, below the minimum %.0f\n", rate, options.min_rate);
    ok = false;
  }
  if (reads < options.min_reads) {
    std::fprintf(stderr, "seqlock_stress: FAIL: %" PRIu64 " reads, below the minimum %" PRIu64 "\n", reads,
                 options.min_reads);
    ok = false;
  }
  if (min_distinct < 100 && value >= 1000) {
    std::fprintf(stderr, "seqlock_stress: FAIL: a reader saw only %" PRIu64 " distinct values\n", min_distinct);
    ok = false;
  }
  if (options.control && shared->control_torn.load() == 0) {
    std::fprintf(stderr, "seqlock_stress: FAIL: the control saw no torn copy: the check would not have seen one\n");
    ok = false;
  }
  if (!readers_ok) std::fprintf(stderr, "seqlock_stress: FAIL: a reader did not run to the end\n");
  std::printf("seqlock_stress: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
