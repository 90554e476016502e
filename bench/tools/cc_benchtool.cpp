// cc_benchtool: session directories for the CoupeCircuit benchmarks.
//
//   cc_benchtool generate DIR COUNT SEED STABLE_SECONDS [MODE]
//   cc_benchtool retime   DIR
//   cc_benchtool mutate   DIR PERMILLE SEED
//   cc_benchtool expect   DIR
//   cc_benchtool churn    DIR RATE SECONDS SEED
//   cc_benchtool remove   DIR
//   cc_benchtool warm     DIR THREADS
//
// Files are named like PHP's (sess_ + 26 characters of [0-9a-v]) and hold
// one of four kinds of content, mixed 30 % empty, 30 % anonymous, 15 %
// unknown (a Zend_Session namespace without the login marker), 25 %
// authenticated (a key whose value is an array with the key "storage").
//
// Modification times: 24/60 of the files are active (modified within the
// last 24 minutes), the others are spread between 24 and 60 minutes old.
// No file is within STABLE_SECONDS (plus a margin) of the 24-minute boundary,
// so that a scan started up to STABLE_SECONDS later still sees exactly the
// same active set: two counting methods that run at different moments can be
// compared exactly. `retime` shifts every modification time forward by the
// time elapsed since generation (or since the previous retime), which
// restores that guarantee.
//
// DIR.manifest (next to DIR) records each file's class and mtime, so that the
// expected count of active authenticated sessions is known at any moment
// without reading the files. Every subcommand prints one JSON object.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

constexpr std::int64_t kActiveSeconds = 24 * 60;
constexpr std::int64_t kHourSeconds = 60 * 60;
constexpr std::int64_t kMargin = 30;  // seconds kept clear on each side of the boundary

enum Class : std::uint8_t { kEmpty = 0, kAnonymous = 1, kUnknown = 2, kAuthenticated = 3 };

std::uint64_t mix(std::uint64_t x) {
  // splitmix64 finaliser: a bijection on 64-bit values.
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct Manifest {
  std::uint64_t count = 0;
  std::uint64_t seed = 0;
  std::int64_t reference_s = 0;  // wall time the mtimes were last laid out against
  std::int64_t stable_s = 0;
  std::vector<std::int64_t> mtime_s;
  std::vector<std::uint8_t> klass;
};

std::string manifest_path(const std::string& dir) { return dir + ".manifest"; }

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "cc_benchtool: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

void save_manifest(const std::string& dir, const Manifest& m) {
  const std::string path = manifest_path(dir);
  const std::string temporary = path + ".tmp";
  FILE* f = std::fopen(temporary.c_str(), "wb");
  if (f == nullptr) die("cannot write " + temporary);
  std::fwrite(&m.count, sizeof m.count, 1, f);
  std::fwrite(&m.seed, sizeof m.seed, 1, f);
  std::fwrite(&m.reference_s, sizeof m.reference_s, 1, f);
  std::fwrite(&m.stable_s, sizeof m.stable_s, 1, f);
  std::fwrite(m.mtime_s.data(), sizeof(std::int64_t), m.count, f);
  std::fwrite(m.klass.data(), 1, m.count, f);
  if (std::fclose(f) != 0) die("cannot write " + temporary);
  if (std::rename(temporary.c_str(), path.c_str()) != 0) die("cannot rename " + temporary);
}

Manifest load_manifest(const std::string& dir) {
  Manifest m;
  FILE* f = std::fopen(manifest_path(dir).c_str(), "rb");
  if (f == nullptr) die("cannot read " + manifest_path(dir));
  bool ok = std::fread(&m.count, sizeof m.count, 1, f) == 1 && std::fread(&m.seed, sizeof m.seed, 1, f) == 1 &&
            std::fread(&m.reference_s, sizeof m.reference_s, 1, f) == 1 &&
            std::fread(&m.stable_s, sizeof m.stable_s, 1, f) == 1;
  if (ok) {
    m.mtime_s.resize(m.count);
    m.klass.resize(m.count);
    ok = std::fread(m.mtime_s.data(), sizeof(std::int64_t), m.count, f) == m.count &&
         std::fread(m.klass.data(), 1, m.count, f) == m.count;
  }
  std::fclose(f);
  if (!ok) {
    std::fprintf(stderr, "cc_benchtool: %s is truncated\n", manifest_path(dir).c_str());
    std::exit(1);
  }
  return m;
}

// sess_ + 26 characters of PHP's default alphabet (5 bits per character).
// The first 13 characters encode a bijection of the index: names never collide.
std::string session_name(std::uint64_t seed, std::uint64_t index) {
  static const char kAlphabet[] = "0123456789abcdefghijklmnopqrstuv";
  std::string name = "sess_";
  std::uint64_t a = mix(index ^ (seed * 0x2545f4914f6cdd1dULL));
  std::uint64_t b = mix(a ^ 0x5851f42d4c957f2dULL);
  for (int i = 0; i < 13; ++i, a >>= 5) name += kAlphabet[a & 31];  // 65 bits: the last one is padding
  for (int i = 0; i < 13; ++i, b >>= 5) name += kAlphabet[b & 31];
  return name;
}

Class class_from(std::uint64_t random) {
  const auto bucket = random % 100;
  if (bucket < 30) return kEmpty;
  if (bucket < 60) return kAnonymous;
  if (bucket < 75) return kUnknown;
  return kAuthenticated;
}

std::string content_for(Class c, std::uint64_t random) {
  char id[32];
  std::snprintf(id, sizeof id, "%06llx", static_cast<unsigned long long>(random & 0xffffff));
  const std::string head = "Default|a:1:{s:11:\"initialized\";b:1;}";
  switch (c) {
    case kEmpty: return {};
    case kAnonymous: return head;
    case kUnknown:
      return head + "__ZF|a:1:{s:3:\"vzn\";a:1:{s:3:\"ENT\";i:" + std::to_string(1585145718 + (random % 100000)) + ";}}";
    case kAuthenticated: return head + "vzn_" + id + "|a:1:{s:7:\"storage\";s:11:\"compte_reel\";}";
  }
  return {};
}

// Rewrites like PHP's files handler: write from offset 0, then cut the file
// to the new length (no O_TRUNC, so a file that keeps its size keeps its
// blocks). Either way the helper sees IN_CLOSE_WRITE.
void write_file(int dir_fd, const std::string& name, const std::string& content, int mode, bool create) {
  const int flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0);
  const int fd = ::openat(dir_fd, name.c_str(), flags, mode);
  if (fd < 0) die("cannot open " + name);
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::pwrite(fd, content.data() + done, content.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("cannot write " + name);
    done += static_cast<std::size_t>(n);
  }
  if (!create && ::ftruncate(fd, static_cast<off_t>(content.size())) != 0) die("cannot truncate " + name);
  if (create && ::fchmod(fd, static_cast<mode_t>(mode)) != 0) die("cannot chmod " + name);
  ::close(fd);
}

void set_mtime(int dir_fd, const std::string& name, std::int64_t mtime_s, std::uint64_t random) {
  timespec times[2];
  times[0].tv_sec = mtime_s;
  times[0].tv_nsec = static_cast<long>(random % 1000000000ULL);
  times[1] = times[0];
  if (::utimensat(dir_fd, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) die("cannot set the mtime of " + name);
}

std::int64_t now_s() { return static_cast<std::int64_t>(::time(nullptr)); }

// Prints the expected counts at `now`, and how many files lie within `guard`
// seconds of the active boundary (non-zero: an exact comparison is unsafe).
void print_expectation(const Manifest& m, std::int64_t now, const char* extra) {
  std::uint64_t active[4] = {}, inactive[4] = {}, near_boundary = 0;
  const std::int64_t cutoff = now - kActiveSeconds;
  for (std::uint64_t i = 0; i < m.count; ++i) {
    const bool is_active = m.mtime_s[i] >= cutoff;  // whole seconds, like the helper
    (is_active ? active : inactive)[m.klass[i]]++;
    const std::int64_t distance = m.mtime_s[i] - cutoff;
    if (distance > -3 && distance < 3) ++near_boundary;
  }
  std::printf(
      "{\"files\": %llu, \"expected_active_authenticated\": %llu, \"active\": [%llu, %llu, %llu, %llu], "
      "\"inactive\": [%llu, %llu, %llu, %llu], \"near_boundary\": %llu, \"seconds_since_layout\": %lld, "
      "\"stable_seconds\": %lld%s}\n",
      static_cast<unsigned long long>(m.count), static_cast<unsigned long long>(active[kAuthenticated]),
      static_cast<unsigned long long>(active[0]), static_cast<unsigned long long>(active[1]),
      static_cast<unsigned long long>(active[2]), static_cast<unsigned long long>(active[3]),
      static_cast<unsigned long long>(inactive[0]), static_cast<unsigned long long>(inactive[1]),
      static_cast<unsigned long long>(inactive[2]), static_cast<unsigned long long>(inactive[3]),
      static_cast<unsigned long long>(near_boundary), static_cast<long long>(now - m.reference_s),
      static_cast<long long>(m.stable_s), extra);
}

int open_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) die("cannot open " + dir);
  return fd;
}

int generate(const std::string& dir, std::uint64_t count, std::uint64_t seed, std::int64_t stable, int mode) {
  const auto started = std::chrono::steady_clock::now();
  if (stable < 0 || stable > kActiveSeconds - 2 * kMargin - 60) {
    std::fprintf(stderr, "cc_benchtool: STABLE_SECONDS must be between 0 and %lld\n",
                 static_cast<long long>(kActiveSeconds - 2 * kMargin - 60));
    return 2;
  }
  if (::mkdir(dir.c_str(), 0700) != 0) die("cannot create " + dir);
  const int dir_fd = open_dir(dir);
  Manifest m;
  m.count = count;
  m.seed = seed;
  m.reference_s = now_s();
  m.stable_s = stable;
  m.mtime_s.resize(count);
  m.klass.resize(count);
  // Active ages in [0, 24 min - stable - margin), inactive in [24 min + margin, 60 min).
  const std::int64_t active_span = kActiveSeconds - stable - kMargin;
  const std::int64_t inactive_from = kActiveSeconds + kMargin;
  const std::int64_t inactive_span = kHourSeconds - inactive_from;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t r1 = mix(seed ^ mix(i * 4 + 1));
    const std::uint64_t r2 = mix(seed ^ mix(i * 4 + 2));
    const Class c = class_from(r1);
    const bool is_active = (r2 % 60) < 24;
    const std::uint64_t spread = r2 >> 8;
    const std::int64_t age = is_active ? static_cast<std::int64_t>(spread % static_cast<std::uint64_t>(active_span))
                                       : inactive_from + static_cast<std::int64_t>(spread % static_cast<std::uint64_t>(inactive_span));
    const std::string name = session_name(seed, i);
    write_file(dir_fd, name, content_for(c, r1 >> 32), mode, true);
    m.klass[i] = c;
    m.mtime_s[i] = m.reference_s - age;
    set_mtime(dir_fd, name, m.mtime_s[i], r2);
  }
  // World-readable files (MODE 0644) get a world-readable directory.
  if (::fchmod(dir_fd, (mode & 0044) != 0 ? 0755 : 0700) != 0) die("cannot chmod " + dir);
  ::close(dir_fd);
  save_manifest(dir, m);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  char extra[64];
  std::snprintf(extra, sizeof extra, ", \"seconds\": %.3f", seconds);
  print_expectation(m, now_s(), extra);
  return 0;
}

int retime(const std::string& dir) {
  const auto started = std::chrono::steady_clock::now();
  Manifest m = load_manifest(dir);
  const std::int64_t now = now_s();
  const std::int64_t shift = now - m.reference_s;
  const int dir_fd = open_dir(dir);
  for (std::uint64_t i = 0; i < m.count; ++i) {
    m.mtime_s[i] += shift;
    set_mtime(dir_fd, session_name(m.seed, i), m.mtime_s[i], mix(i));
  }
  ::close(dir_fd);
  m.reference_s = now;
  save_manifest(dir, m);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  char extra[96];
  std::snprintf(extra, sizeof extra, ", \"shift\": %lld, \"seconds\": %.3f", static_cast<long long>(shift), seconds);
  print_expectation(m, now_s(), extra);
  return 0;
}

// Rewrites PERMILLE/1000 of the files (new content and class, mtime now), as
// PHP would when those sessions are used again.
int mutate(const std::string& dir, std::uint64_t permille, std::uint64_t seed) {
  const auto started = std::chrono::steady_clock::now();
  Manifest m = load_manifest(dir);
  const int dir_fd = open_dir(dir);
  std::uint64_t changed = 0;
  for (std::uint64_t i = 0; i < m.count; ++i) {
    const std::uint64_t r = mix(mix(seed * 0x9e3779b97f4a7c15ULL) ^ i);
    if (r % 1000 >= permille) continue;
    const std::uint64_t r1 = mix(r ^ 0x1234567ULL);
    const Class c = class_from(r1);
    const std::string name = session_name(m.seed, i);
    write_file(dir_fd, name, content_for(c, r1 >> 32), 0600, false);
    struct stat info {};
    if (::fstatat(dir_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) die("cannot stat " + name);
    m.klass[i] = c;
    m.mtime_s[i] = info.st_mtim.tv_sec;
    ++changed;
  }
  ::close(dir_fd);
  save_manifest(dir, m);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  char extra[96];
  std::snprintf(extra, sizeof extra, ", \"changed\": %llu, \"seconds\": %.3f", static_cast<unsigned long long>(changed),
                seconds);
  print_expectation(m, now_s(), extra);
  return 0;
}

// Rewrites random files at a steady RATE per second for SECONDS (content
// always changes: a counter is part of it). The manifest is not updated.
int churn(const std::string& dir, double rate, double seconds, std::uint64_t seed) {
  const Manifest m = load_manifest(dir);
  const int dir_fd = open_dir(dir);
  const auto period = std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 / rate));
  const auto started = std::chrono::steady_clock::now();
  const auto end = started + std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9));
  auto next = started;
  std::uint64_t writes = 0, late = 0;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) break;
    if (now < next) {
      const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(next - now).count();
      timespec ts{static_cast<time_t>(wait / 1000000000LL), static_cast<long>(wait % 1000000000LL)};
      ::nanosleep(&ts, nullptr);
      continue;
    }
    if (now - next > std::chrono::milliseconds(100)) {
      ++late;
      next = now;  // do not burst to catch up after a stall
    }
    const std::uint64_t r = mix(seed ^ mix(writes + 0x77));
    const std::uint64_t index = r % m.count;
    const Class c = class_from(mix(r));
    std::string content = content_for(c, r >> 32);
    if (c != kEmpty) content += "n|i:" + std::to_string(writes) + ";";
    write_file(dir_fd, session_name(m.seed, index), content, 0600, false);
    ++writes;
    next += period;
  }
  ::close(dir_fd);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("{\"writes\": %llu, \"seconds\": %.3f, \"rate\": %.1f, \"stalls\": %llu}\n",
              static_cast<unsigned long long>(writes), elapsed, static_cast<double>(writes) / elapsed,
              static_cast<unsigned long long>(late));
  return 0;
}

// Reads every sess_ file (stat, open, read, close) with THREADS readers, so
// that the page cache holds the whole directory right before a "warm"
// measurement: some virtual machines page out file pages left idle for a
// minute, less than one cold pass over a million files takes.
int warm(const std::string& dir, unsigned threads) {
  const auto started = std::chrono::steady_clock::now();
  const int dir_fd = open_dir(dir);
  std::vector<std::string> names;
  DIR* listing = ::fdopendir(::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
  if (listing == nullptr) die("cannot list " + dir);
  while (const dirent* item = ::readdir(listing)) {
    if (std::strncmp(item->d_name, "sess_", 5) == 0) names.emplace_back(item->d_name);
  }
  ::closedir(listing);
  std::atomic<std::uint64_t> bytes{0};
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      char buffer[65536];
      std::uint64_t local = 0;
      for (std::size_t i = t; i < names.size(); i += threads) {
        struct stat info {};
        if (::fstatat(dir_fd, names[i].c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0 || info.st_size == 0) continue;
        const int fd = ::openat(dir_fd, names[i].c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) continue;
        ssize_t n;
        while ((n = ::read(fd, buffer, sizeof buffer)) > 0) local += static_cast<std::uint64_t>(n);
        ::close(fd);
      }
      bytes += local;
    });
  }
  for (auto& worker : workers) worker.join();
  ::close(dir_fd);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("{\"files\": %zu, \"bytes\": %llu, \"seconds\": %.3f}\n", names.size(),
              static_cast<unsigned long long>(bytes.load()), seconds);
  return 0;
}

// Unlinks in inode order: much faster than directory order on ext4 once the
// files' blocks are allocated (and freed blocks are discarded).
int remove_dir(const std::string& dir) {
  const auto started = std::chrono::steady_clock::now();
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  std::uint64_t removed = 0;
  if (dir_fd >= 0) {
    for (;;) {
      std::vector<std::pair<ino_t, std::string>> names;
      DIR* listing = ::fdopendir(::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
      if (listing == nullptr) die("cannot list " + dir);
      while (const dirent* item = ::readdir(listing)) {
        if (std::strcmp(item->d_name, ".") == 0 || std::strcmp(item->d_name, "..") == 0) continue;
        names.emplace_back(item->d_ino, item->d_name);
      }
      ::closedir(listing);
      if (names.empty()) break;
      std::sort(names.begin(), names.end());
      std::uint64_t pass = 0;
      for (const auto& [inode, name] : names) {
        if (::unlinkat(dir_fd, name.c_str(), 0) == 0) ++pass;
      }
      removed += pass;
      if (pass == 0) break;
    }
    ::close(dir_fd);
    if (::rmdir(dir.c_str()) != 0) die("cannot remove " + dir);
  }
  ::unlink(manifest_path(dir).c_str());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("{\"removed\": %llu, \"seconds\": %.3f}\n", static_cast<unsigned long long>(removed), seconds);
  return 0;
}

int usage() {
  std::fputs(
      "usage: cc_benchtool generate DIR COUNT SEED STABLE_SECONDS [MODE_OCTAL]\n"
      "       cc_benchtool retime DIR\n"
      "       cc_benchtool mutate DIR PERMILLE SEED\n"
      "       cc_benchtool expect DIR\n"
      "       cc_benchtool churn DIR RATE SECONDS SEED\n"
      "       cc_benchtool remove DIR\n"
      "       cc_benchtool warm DIR THREADS\n",
      stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string command = argv[1];
  const std::string dir = argv[2];
  auto number = [&](int i) { return std::strtoull(argv[i], nullptr, 10); };
  if (command == "generate" && (argc == 6 || argc == 7)) {
    const int mode = argc == 7 ? static_cast<int>(std::strtol(argv[6], nullptr, 8)) : 0600;
    return generate(dir, number(3), number(4), static_cast<std::int64_t>(number(5)), mode);
  }
  if (command == "retime" && argc == 3) return retime(dir);
  if (command == "mutate" && argc == 5) return mutate(dir, number(3), number(4));
  if (command == "expect" && argc == 3) {
    print_expectation(load_manifest(dir), now_s(), "");
    return 0;
  }
  if (command == "churn" && argc == 6) return churn(dir, std::strtod(argv[3], nullptr), std::strtod(argv[4], nullptr), number(5));
  if (command == "remove" && argc == 3) return remove_dir(dir);
  if (command == "warm" && argc == 4) return warm(dir, static_cast<unsigned>(number(3)));
  return usage();
}
