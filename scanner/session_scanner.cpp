#include "session_scanner.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>
#include <csignal>
#include <ctime>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

namespace coupecircuit {
namespace {

constexpr std::string_view kSessionPrefix = "sess_";
constexpr std::uint64_t kRootHash = 0xcbf29ce484222325ULL;
// Names examined together: enough to keep every thread busy, small enough
// that a batch's names and results stay in cache.
constexpr std::size_t kBatchSize = 1024;

std::int64_t mtime_ns_of(const struct stat& info) noexcept {
  return static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000LL + info.st_mtim.tv_nsec;
}

bool is_session_name(std::string_view name) noexcept {
  return name.size() > kSessionPrefix.size() && name.substr(0, kSessionPrefix.size()) == kSessionPrefix;
}

// The type of a directory entry (DT_*), never following a symbolic link;
// DT_UNKNOWN when it vanished.
unsigned char entry_type(int directory_fd, const dirent* item) noexcept {
  if (item->d_type != DT_UNKNOWN) return item->d_type;
  struct stat info {};
  if (::fstatat(directory_fd, item->d_name, &info, AT_SYMLINK_NOFOLLOW) != 0) return DT_UNKNOWN;
  if (S_ISDIR(info.st_mode)) return DT_DIR;
  return S_ISREG(info.st_mode) ? DT_REG : DT_LNK;
}

std::int64_t floor_seconds(std::int64_t ns) noexcept {
  return ns >= 0 ? ns / 1'000'000'000LL : -((-ns + 999'999'999LL) / 1'000'000'000LL);
}

// Reads a session file by offset; remembers a failed read.
class FileReader final : public SessionReader {
 public:
  explicit FileReader(int fd) noexcept : fd_(fd) {}
  std::size_t read_at(std::uint64_t offset, char* into, std::size_t size) noexcept override {
    std::size_t got = 0;
    while (got < size) {
      const ssize_t n = ::pread(fd_, into + got, size - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        failed_ = true;
        break;
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    return got;
  }
  [[nodiscard]] bool failed() const noexcept { return failed_; }

 private:
  int fd_;
  bool failed_ = false;
};

}  // namespace

std::uint64_t directory_hash(std::string_view directory) noexcept {
  return directory.empty() ? 0 : extend_path_hash(0, directory);
}

std::uint64_t extend_path_hash(std::uint64_t parent, std::string_view component) noexcept {
  std::uint64_t hash = parent == 0 ? kRootHash : parent;
  if (parent != 0) {
    hash ^= static_cast<unsigned char>('/');
    hash *= 0x100000001b3ULL;
  }
  for (const char c : component) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// The full scan's pipeline: the calling thread lists a directory into one
// batch and applies the results of the previous batch to the tables while
// helper threads examine (stat, read, classify) the batch before. Threads
// are started on the first batch large enough to be worth them and stopped
// at the end of the full scan: between scans the helper has one thread.
class SessionScanner::ScanWorkers {
 public:
  ScanWorkers(SessionScanner& scanner, ScanStatistics& statistics, unsigned threads)
      : scanner_(scanner), statistics_(statistics), wanted_(threads) {}
  ScanWorkers(const ScanWorkers&) = delete;
  ScanWorkers& operator=(const ScanWorkers&) = delete;
  ~ScanWorkers() {
    finish();
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

  // The batch names are appended to.
  [[nodiscard]] Batch& filling() noexcept { return batches_[filling_]; }

  // Hands the filling batch over for examination and applies the batch
  // handed over before, meanwhile.
  void submit() {
    Batch& next = batches_[filling_];
    if (next.size() == 0) return;
    Batch* const previous = in_flight_;
    if (previous != nullptr) wait_examined();
    launch(next);
    in_flight_ = &next;
    filling_ ^= 1U;
    if (previous != nullptr) apply_and_clear(*previous);
  }

  // Waits for the batch in flight and applies it: before the descriptor of
  // its directory is closed.
  void finish() {
    if (in_flight_ == nullptr) return;
    wait_examined();
    apply_and_clear(*in_flight_);
    in_flight_ = nullptr;
  }

 private:
  static constexpr std::size_t kParallelMinimum = 64;

  void launch(Batch& batch) {
    batch.results.resize(batch.size());
    if (batch.size() >= kParallelMinimum && wanted_ > 1 && threads_.empty() && !start_failed_) start();
    if (threads_.empty()) {
      next_.store(0, std::memory_order_relaxed);
      drain(batch, scanner_.read_buffer_);
      return;
    }
    {
      const std::lock_guard lock(mutex_);
      batch_ = &batch;
      next_.store(0, std::memory_order_relaxed);
      pending_ = static_cast<unsigned>(threads_.size());
      ++round_;
    }
    wake_.notify_all();
  }

  void wait_examined() {
    if (threads_.empty()) return;           // examined in launch()
    drain(*batch_, scanner_.read_buffer_);  // the calling thread helps
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
  }

  void apply_and_clear(Batch& batch) {
    for (std::size_t i = 0; i < batch.size(); ++i) scanner_.apply(batch.keys[i], batch.results[i], statistics_);
    batch.clear();
  }

  void start() {
    // The helper threads take no signal: the daemon's signalfd keeps them.
    sigset_t all;
    sigset_t previous;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous);
    try {
      buffers_.resize(wanted_ - 1);
      for (unsigned i = 0; i + 1 < wanted_; ++i) {
        buffers_[i].resize(scanner_.options_.window_bytes());
        threads_.emplace_back([this, i] { work(buffers_[i]); });
      }
    } catch (const std::exception&) {
      // Fewer threads (or none): the scan goes on with those that started.
      start_failed_ = true;
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }

  void work(std::vector<char>& buffer) {
    std::uint64_t seen = 0;
    for (;;) {
      Batch* batch = nullptr;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || round_ != seen; });
        if (stop_) return;
        seen = round_;
        batch = batch_;
      }
      drain(*batch, buffer);
      {
        const std::lock_guard lock(mutex_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  void drain(Batch& batch, std::vector<char>& buffer) {
    for (std::size_t i = next_.fetch_add(1, std::memory_order_relaxed); i < batch.size();
         i = next_.fetch_add(1, std::memory_order_relaxed)) {
      scanner_.examine(batch.directory_fd, batch.names.data() + batch.name_offsets[i], batch.known[i],
                       batch.unread_before_s, buffer, batch.results[i]);
    }
  }

  SessionScanner& scanner_;
  ScanStatistics& statistics_;
  const unsigned wanted_;
  std::array<Batch, 2> batches_;
  unsigned filling_ = 0;
  Batch* in_flight_ = nullptr;
  bool start_failed_ = false;
  std::vector<std::vector<char>> buffers_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::uint64_t round_ = 0;
  unsigned pending_ = 0;
  bool stop_ = false;
  Batch* batch_ = nullptr;
  std::atomic<std::size_t> next_{0};
};

SessionScanner::SessionScanner(ScanOptions options)
    : options_(std::move(options)), read_buffer_(options_.window_bytes()) {}

bool SessionScanner::reconfigure(ScanOptions options) {
  const bool same_files = options.session_dir == options_.session_dir && options.max_depth == options_.max_depth &&
                          options.max_read_bytes == options_.max_read_bytes &&
                          options.read_chunk_bytes == options_.read_chunk_bytes &&
                          options.classify_inactive == options_.classify_inactive && options.rule == options_.rule;
  if (!same_files) {
    entries_.clear();
    by_mtime_second_.clear();
    totals_ = {};
    directories_.clear();
    read_buffer_.assign(options.window_bytes(), '\0');
  }
  // A longer window needs no reset either: the next full scan reads the
  // "unread" files it now covers.
  options_ = std::move(options);
  return same_files;
}

std::int64_t SessionScanner::unread_before_s() const {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<std::int64_t>(now.tv_sec) - static_cast<std::int64_t>(options_.active_minutes) * 60;
}

Result<ScanStatistics> SessionScanner::full_scan() {
  const auto started = std::chrono::steady_clock::now();
  ScanStatistics statistics;
  UniqueFd root(::open(options_.session_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!root) {
    const int saved = errno;
    return make_error("cannot open session directory " + options_.session_dir + ": " + std::strerror(saved), saved);
  }
  epoch_ = (epoch_ + 1) & kEpochMask;
  directories_.clear();
  {
    ScanWorkers workers(*this, statistics, std::max(1U, options_.scan_threads));
    walk(root.get(), "", 0, 0, unread_before_s(), statistics, workers);
  }

  erase_unseen(entries_, epoch_, [this](const auto& entry) { account(entry, -1); });
  statistics.duration_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count());
  return statistics;
}

void SessionScanner::walk(int directory_fd, const std::string& relative, std::uint64_t path_hash, unsigned depth,
                          std::int64_t unread_before_s, ScanStatistics& statistics, ScanWorkers& workers) {
  ++statistics.directories;
  directories_.push_back(relative);
  // fdopendir takes ownership of its descriptor: give it a duplicate.
  const int listing_fd = ::fcntl(directory_fd, F_DUPFD_CLOEXEC, 0);
  if (listing_fd < 0) return;
  DIR* listing = ::fdopendir(listing_fd);
  if (listing == nullptr) {
    ::close(listing_fd);
    return;
  }
  std::vector<std::string> subdirectories;
  while (const dirent* item = ::readdir(listing)) {
    const std::string_view name(item->d_name);
    if (name == "." || name == "..") continue;
    const unsigned char type = entry_type(directory_fd, item);
    if (type == DT_UNKNOWN) continue;  // vanished since listed
    if (type == DT_DIR) {
      if (depth < options_.max_depth) subdirectories.emplace_back(name);
    } else if (is_session_name(name) && type != DT_REG) {
      ++statistics.skipped;
    } else if (is_session_name(name)) {
      queue_file(workers, directory_fd, unread_before_s, extend_path_hash(path_hash, name), name);
    }
  }
  ::closedir(listing);
  workers.submit();
  workers.finish();
  for (const auto& name : subdirectories) {
    UniqueFd child(::openat(directory_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child) continue;
    const std::string child_relative = relative.empty() ? name : relative + "/" + name;
    walk(child.get(), child_relative, extend_path_hash(path_hash, name), depth + 1, unread_before_s, statistics,
         workers);
  }
}

void SessionScanner::queue_file(ScanWorkers& workers, int directory_fd, std::int64_t unread_before_s, std::uint64_t key,
                                std::string_view name) {
  Batch& batch = workers.filling();
  batch.directory_fd = directory_fd;
  batch.unread_before_s = unread_before_s;
  batch.keys.push_back(key);
  batch.known.push_back(known(key));
  batch.name_offsets.push_back(static_cast<std::uint32_t>(batch.names.size()));
  batch.names.insert(batch.names.end(), name.begin(), name.end());
  batch.names.push_back('\0');
  if (batch.size() >= kBatchSize) workers.submit();
}

SessionScanner::Known SessionScanner::known(std::uint64_t key) const {
  const auto found = entries_.find(key);
  if (found == entries_.end()) return {};
  const Entry& entry = found->second;
  return {true, static_cast<std::uint8_t>(entry.slot), entry.inode_low, entry.mtime_ns, entry.size};
}

void SessionScanner::examine(int directory_fd, const char* name, const Known& known, std::int64_t unread_before_s,
                             std::vector<char>& buffer, Examined& out) const {
  out = Examined{};
  struct stat info {};
  if (::fstatat(directory_fd, name, &info, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(info.st_mode)) {
    return;  // vanished, or not a regular file
  }
  out.inode_low = static_cast<std::uint32_t>(info.st_ino);
  out.size = static_cast<std::uint32_t>(std::min<std::int64_t>(info.st_size, kSizeLimit));
  out.mtime_ns = mtime_ns_of(info);
  const bool inactive = !options_.classify_inactive && floor_seconds(out.mtime_ns) < unread_before_s;
  if (known.present && known.inode_low == out.inode_low && known.size == out.size && known.mtime_ns == out.mtime_ns &&
      (known.slot != kUnreadSlot || inactive)) {
    out.outcome = Examined::Outcome::unchanged;
    out.slot = known.slot;
    return;
  }
  out.outcome = Examined::Outcome::fresh;
  if (out.size == 0) {
    out.slot = static_cast<std::uint8_t>(SessionClass::empty);
    return;
  }
  if (inactive) {
    // Cannot become active without a write, which changes the mtime and
    // brings the file back here: reading it now would only refine the
    // inactive counts.
    out.slot = kUnreadSlot;
    out.deferred = true;
    return;
  }
  bool vanished = false;
  out.slot = static_cast<std::uint8_t>(read_and_classify(directory_fd, name, buffer, &vanished, &out));
  if (vanished) out.outcome = Examined::Outcome::gone;
}

void SessionScanner::apply(std::uint64_t key, const Examined& examined, ScanStatistics& statistics) {
  switch (examined.outcome) {
    case Examined::Outcome::gone:
      // Deleted, or replaced by something that is not a regular file, since
      // it was listed: not a session any more.
      ++statistics.skipped;
      forget(key);
      return;
    case Examined::Outcome::unchanged:
      if (const auto found = entries_.find(key); found != entries_.end()) {
        ++statistics.files_seen;
        found->second.epoch = epoch_ & kEpochMask;
        return;
      }
      break;  // forgotten since it was queued: enter it again
    case Examined::Outcome::fresh:
      break;
  }
  ++statistics.files_seen;
  statistics.files_read += examined.read ? 1 : 0;
  statistics.files_deferred += examined.deferred ? 1 : 0;
  statistics.unreadable += examined.unreadable ? 1 : 0;
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& entry = it->second;
  if (!inserted) account(entry, -1);
  entry.inode_low = examined.inode_low;
  entry.size = examined.size & kSizeLimit;
  entry.mtime_ns = examined.mtime_ns;
  entry.epoch = epoch_ & kEpochMask;
  entry.slot = examined.slot & 7U;
  account(entry, +1);
}

SessionClass SessionScanner::read_and_classify(int directory_fd, const char* name, std::vector<char>& buffer,
                                               bool* vanished, Examined* out) const {
  UniqueFd fd(::openat(directory_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd && (errno == ENOENT || errno == ELOOP || errno == ENXIO)) {
    *vanished = true;  // deleted, or now a symbolic link or a socket
    return SessionClass::unknown;
  }
  struct stat info {};
  if (fd && ::fstat(fd.get(), &info) == 0 && !S_ISREG(info.st_mode)) {
    *vanished = true;  // now a FIFO, a device or a directory
    return SessionClass::unknown;
  }
  if (!fd || !S_ISREG(info.st_mode)) {
    out->unreadable = true;
    return SessionClass::unknown;
  }
  out->read = true;
  FileReader reader(fd.get());
  SessionStream stream;
  stream.window = std::span<char>(buffer.data(), buffer.size());
  stream.size = static_cast<std::uint64_t>(info.st_size);
  stream.limit = options_.max_read_bytes;
  stream.reader = &reader;
  const auto first = static_cast<std::size_t>(
      std::min<std::uint64_t>(buffer.size(), std::min<std::uint64_t>(stream.size, stream.limit)));
  stream.filled = reader.read_at(0, buffer.data(), first);
  if (stream.filled < first) stream.size = stream.filled;  // shrunk since fstat, or a read error
  const SessionClass result =
      stream.filled == 0 && !reader.failed() ? SessionClass::empty : classify_session(stream, options_.rule);
  if (reader.failed()) {
    out->unreadable = true;
    return SessionClass::unknown;
  }
  return result;
}

void SessionScanner::account(const Entry& entry, int direction) {
  const std::size_t index = entry.slot;
  const std::int64_t second = floor_seconds(entry.mtime_ns);
  if (direction > 0) {
    ++totals_[index];
    ++by_mtime_second_[second][index];
    return;
  }
  --totals_[index];
  auto bucket = by_mtime_second_.find(second);
  if (bucket == by_mtime_second_.end()) return;
  --bucket->second[index];
  bool all_zero = true;
  for (const auto count : bucket->second) all_zero = all_zero && count == 0;
  if (all_zero) by_mtime_second_.erase(bucket);
}

void SessionScanner::forget(std::uint64_t key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  account(it->second, -1);
  entries_.erase(it);
}

UniqueFd SessionScanner::open_relative_directory(std::string_view directory) const {
  UniqueFd current(::open(options_.session_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  while (current && !directory.empty()) {
    const auto slash = directory.find('/');
    const std::string component(directory.substr(0, slash));
    directory.remove_prefix(slash == std::string_view::npos ? directory.size() : slash + 1);
    // Only names a directory listing gives: never back up out of session_dir.
    if (component.empty() || component == "." || component == "..") return UniqueFd();
    current.reset(::openat(current.get(), component.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  }
  return current;
}

void SessionScanner::file_changed(std::string_view directory, std::string_view name) {
  if (!is_session_name(name) || name.find('/') != std::string_view::npos) return;
  const std::uint64_t key = extend_path_hash(directory_hash(directory), name);
  UniqueFd directory_fd = open_relative_directory(directory);
  if (!directory_fd) {
    forget(key);
    return;
  }
  ScanStatistics ignored;
  const std::string name_text(name);
  // The incremental path keeps the entry's epoch current so the next full
  // scan does not drop it before seeing it.
  Examined examined;
  examine(directory_fd.get(), name_text.c_str(), known(key), unread_before_s(), read_buffer_, examined);
  apply(key, examined, ignored);
}

void SessionScanner::file_removed(std::string_view directory, std::string_view name) {
  if (!is_session_name(name)) return;
  forget(extend_path_hash(directory_hash(directory), name));
}

SessionCounts SessionScanner::counts(std::int64_t now_wall_s) const {
  SessionCounts result;
  const std::int64_t cutoff = now_wall_s - static_cast<std::int64_t>(options_.active_minutes) * 60;
  for (auto it = by_mtime_second_.lower_bound(cutoff); it != by_mtime_second_.end(); ++it) {
    for (std::size_t i = 0; i < kSessionClassCount; ++i) result.active[i] += it->second[i];
  }
  for (std::size_t i = 0; i < kSessionClassCount; ++i) {
    result.inactive[i] = totals_[i] - result.active[i];
    result.files_seen += totals_[i];
  }
  result.inactive_unread = totals_[kUnreadSlot];
  result.files_seen += totals_[kUnreadSlot];
  return result;
}

}  // namespace coupecircuit
