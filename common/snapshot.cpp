#include "snapshot.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>
#include <utility>

#include "atomic_file.hpp"
#include "unique_fd.hpp"

namespace coupecircuit::snapshot {
namespace {

constexpr std::size_t kPayloadWords = sizeof(Payload) / sizeof(std::uint64_t);

// Readers map the file PROT_READ: atomic_ref's load() compiles to a plain load
// and never writes, so casting away const is sound here.
template <typename T>
T load_relaxed(const T& object) noexcept {
  return std::atomic_ref<T>(const_cast<T&>(object)).load(std::memory_order_relaxed);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

void write_fresh_header(SnapshotFile& file) noexcept {
  file.header.magic = kMagic;
  file.header.layout_version = kLayoutVersion;
  file.header.header_size = static_cast<std::uint16_t>(kHeaderSize);
  file.header.total_size = static_cast<std::uint32_t>(kTotalSize);
}

Error errno_error(const std::string& what, const std::string& path) {
  const int saved = errno;
  return make_error(what + " " + path + ": " + std::strerror(saved), saved);
}

}  // namespace

std::uint64_t new_writer_generation() {
  std::random_device device;
  const std::uint64_t high = device();
  return (high << 32U) ^ device() ^ static_cast<std::uint64_t>(realtime_now_ns());
}

std::string_view to_string(ReadError error) noexcept {
  switch (error) {
    case ReadError::missing: return "missing";
    case ReadError::not_regular: return "not a regular file";
    case ReadError::bad_magic: return "bad magic";
    case ReadError::bad_version: return "unsupported layout version";
    case ReadError::bad_size: return "unexpected size";
    case ReadError::torn: return "torn (writer stuck mid-update)";
    case ReadError::stale: return "stale";
    case ReadError::untrusted: return "writable by others than its owner";
  }
  return "unknown";
}

std::uint64_t monotonic_now_ns() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

std::int64_t realtime_now_ns() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000LL + now.tv_nsec;
}

bool header_is_valid(const SnapshotFile& file, std::size_t mapped_size, ReadError* why) noexcept {
  ReadError error{};
  if (load_relaxed(file.header.magic) != kMagic) {
    error = ReadError::bad_magic;
  } else if (load_relaxed(file.header.layout_version) != kLayoutVersion) {
    error = ReadError::bad_version;
  } else if (load_relaxed(file.header.header_size) != kHeaderSize ||
             load_relaxed(file.header.total_size) != kTotalSize || mapped_size < kTotalSize) {
    error = ReadError::bad_size;
  } else {
    return true;
  }
  if (why != nullptr) *why = error;
  return false;
}

std::uint64_t load_sequence(const SnapshotFile& file) noexcept {
  return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(file.sync.sequence))  // NOLINT
      .load(std::memory_order_acquire);
}

std::uint64_t load_heartbeat_ns(const SnapshotFile& file) noexcept { return load_relaxed(file.sync.heartbeat_ns); }

bool try_copy_payload(const SnapshotFile& file, Payload& out, std::uint64_t* sequence_out, unsigned max_attempts,
                      CopyExtent extent) noexcept {
  static_assert(offsetof(Payload, vhost_overrides) % sizeof(std::uint64_t) == 0);
  static_assert(sizeof(VhostOverride) % sizeof(std::uint64_t) == 0);
  constexpr std::size_t kFixedWords = offsetof(Payload, vhost_overrides) / sizeof(std::uint64_t);
  constexpr std::size_t kOverrideWords = sizeof(VhostOverride) / sizeof(std::uint64_t);
  const auto* source = reinterpret_cast<const std::uint64_t*>(&file.payload);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  auto* destination = reinterpret_cast<unsigned char*>(&out);                  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  const auto copy_words = [&](std::size_t from, std::size_t count) {
    for (std::size_t i = from; i < from + count; ++i) {
      const std::uint64_t word = load_relaxed(source[i]);
      std::memcpy(destination + i * sizeof word, &word, sizeof word);
    }
  };
  for (unsigned attempt = 0; attempt < max_attempts; ++attempt) {
    const std::uint64_t before = load_sequence(file);
    if ((before & 1U) != 0) {
      cpu_relax();
      continue;
    }
    copy_words(0, kFixedWords);
    const std::size_t overrides = extent == CopyExtent::whole                  ? kMaxVhostOverrides
                                  : out.vhost_override_count < kMaxVhostOverrides ? out.vhost_override_count
                                                                               : kMaxVhostOverrides;
    copy_words(kFixedWords, overrides * kOverrideWords);
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint64_t after = load_relaxed(file.sync.sequence);
    if (before == after) {
      if (sequence_out != nullptr) *sequence_out = before;
      return true;
    }
    cpu_relax();
  }
  return false;
}

// ---- ReadOnlyMapping

ReadOnlyMapping::ReadOnlyMapping(ReadOnlyMapping&& other) noexcept
    : file_(std::exchange(other.file_, nullptr)),
      device_(other.device_),
      inode_(other.inode_),
      mode_(other.mode_),
      owner_(other.owner_) {}

ReadOnlyMapping& ReadOnlyMapping::operator=(ReadOnlyMapping&& other) noexcept {
  if (this != &other) {
    if (file_ != nullptr) ::munmap(const_cast<SnapshotFile*>(file_), kTotalSize);  // NOLINT
    file_ = std::exchange(other.file_, nullptr);
    device_ = other.device_;
    inode_ = other.inode_;
    mode_ = other.mode_;
    owner_ = other.owner_;
  }
  return *this;
}

ReadOnlyMapping::~ReadOnlyMapping() {
  if (file_ != nullptr) ::munmap(const_cast<SnapshotFile*>(file_), kTotalSize);  // NOLINT
}

const SnapshotFile* ReadOnlyMapping::release() noexcept { return std::exchange(file_, nullptr); }

Result<ReadOnlyMapping, ReadError> ReadOnlyMapping::open(const char* path) noexcept {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return errno == ELOOP ? ReadError::not_regular : ReadError::missing;
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return ReadError::missing;
  if (!S_ISREG(info.st_mode)) return ReadError::not_regular;
  if (static_cast<std::size_t>(info.st_size) != kTotalSize) return ReadError::bad_size;
  void* address = ::mmap(nullptr, kTotalSize, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (address == MAP_FAILED) return ReadError::missing;
  ReadOnlyMapping mapping;
  mapping.file_ = static_cast<const SnapshotFile*>(address);
  mapping.device_ = info.st_dev;
  mapping.inode_ = info.st_ino;
  mapping.mode_ = info.st_mode;
  mapping.owner_ = info.st_uid;
  ReadError why{};
  if (!header_is_valid(*mapping.file_, kTotalSize, &why)) return why;
  return mapping;
}

// ---- High-level reads

Result<SnapshotCopy, ReadError> read_snapshot_allow_stale(const char* path, const ReadOptions& options,
                                                          bool* stale) {
  auto mapping = ReadOnlyMapping::open(path);
  if (!mapping) return mapping.error();
  SnapshotCopy copy;
  if (!try_copy_payload(*mapping->file(), copy.payload, &copy.sequence, options.max_attempts)) {
    return ReadError::torn;
  }
  copy.heartbeat_ns = load_heartbeat_ns(*mapping->file());
  const std::uint64_t now = monotonic_now_ns();
  copy.age_ns = now > copy.heartbeat_ns ? now - copy.heartbeat_ns : 0;
  if (stale != nullptr) *stale = copy.heartbeat_ns == 0 || copy.age_ns > options.max_age_ns;
  return copy;
}

Result<SnapshotCopy, ReadError> read_snapshot(const char* path, const ReadOptions& options) {
  bool stale = false;
  auto copy = read_snapshot_allow_stale(path, options, &stale);
  if (copy && stale) return ReadError::stale;
  return copy;
}

// ---- SnapshotWriter

SnapshotWriter::SnapshotWriter(SnapshotWriter&& other) noexcept
    : file_(std::exchange(other.file_, nullptr)),
      path_(std::move(other.path_)),
      device_(other.device_),
      inode_(other.inode_),
      fd_(std::move(other.fd_)),
      replaced_because_(std::move(other.replaced_because_)) {}

SnapshotWriter& SnapshotWriter::operator=(SnapshotWriter&& other) noexcept {
  if (this != &other) {
    if (file_ != nullptr) ::munmap(file_, kTotalSize);
    file_ = std::exchange(other.file_, nullptr);
    path_ = std::move(other.path_);
    device_ = other.device_;
    inode_ = other.inode_;
    fd_ = std::move(other.fd_);
    replaced_because_ = std::move(other.replaced_because_);
  }
  return *this;
}

SnapshotWriter::~SnapshotWriter() {
  if (file_ != nullptr) ::munmap(file_, kTotalSize);
}

namespace {

// Why an existing file at the snapshot path cannot be reused in place; empty
// when it can. A file of another user, or one that others could open for
// writing (they may hold such a descriptor still), is replaced, never trusted.
std::string reason_not_to_reuse(int fd, const struct stat& info) {
  if (!S_ISREG(info.st_mode)) return "not a regular file";
  if (info.st_uid != ::geteuid()) return "owned by user " + std::to_string(info.st_uid) + ", not by this process's";
  if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0) return "writable by other users";
  if (static_cast<std::size_t>(info.st_size) != kTotalSize) return "another size (another layout)";
  void* address = ::mmap(nullptr, kTotalSize, PROT_READ, MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) return "cannot be mapped";
  const bool valid = header_is_valid(*static_cast<const SnapshotFile*>(address), kTotalSize);
  ::munmap(address, kTotalSize);
  return valid ? std::string() : "another layout or a damaged header";
}

// A new file renamed over the path: readers mapping the old inode keep a
// valid (now stale) mapping and re-open; nobody sees a half-made file.
Result<UniqueFd> create_snapshot_file(const std::string& path) {
  auto file = AtomicFile::create(path, 0644);
  if (!file) return file.error();
  if (::ftruncate(file->fd(), static_cast<off_t>(kTotalSize)) != 0) return errno_error("cannot size", file->temporary_path());
  void* address = ::mmap(nullptr, kTotalSize, PROT_READ | PROT_WRITE, MAP_SHARED, file->fd(), 0);
  if (address == MAP_FAILED) return errno_error("cannot map", file->temporary_path());
  write_fresh_header(*static_cast<SnapshotFile*>(address));
  ::munmap(address, kTotalSize);
  if (auto committed = file->commit(); !committed) return committed.error();
  return file->take_fd();
}

}  // namespace

Result<SnapshotWriter> SnapshotWriter::open(const std::string& path) {
  if (auto made = ensure_directory(parent_directory(path), 0755); !made) return made.error();

  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  std::string replaced_because;
  struct stat info {};
  if (fd) {
    if (::fstat(fd.get(), &info) != 0) return errno_error("cannot stat", path);
    replaced_because = reason_not_to_reuse(fd.get(), info);
  } else if (errno == ELOOP) {
    replaced_because = "a symbolic link";
  } else if (errno != ENOENT) {
    return errno_error("cannot open", path);
  }

  if (!fd || !replaced_because.empty()) {
    auto fresh = create_snapshot_file(path);
    if (!fresh) return fresh.error();
    fd = std::move(*fresh);
    if (::fstat(fd.get(), &info) != 0) return errno_error("cannot stat", path);
  }
  if (::fchmod(fd.get(), 0644) != 0) return errno_error("cannot chmod", path);

  void* address = ::mmap(nullptr, kTotalSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (address == MAP_FAILED) return errno_error("cannot map", path);
  SnapshotWriter writer;
  writer.file_ = static_cast<SnapshotFile*>(address);
  writer.path_ = path;
  writer.device_ = info.st_dev;
  writer.inode_ = info.st_ino;
  writer.fd_ = std::move(fd);
  // Only worth a line in the log when a file was there and was not reused
  // for a reason other than a layout change after an upgrade.
  writer.replaced_because_ = std::move(replaced_because);

  // A previous writer killed mid-update leaves the sequence odd: close it so
  // the sequence stays monotonic and readers' cached sequences never match.
  std::atomic_ref<std::uint64_t> sequence(writer.file_->sync.sequence);
  const std::uint64_t current = sequence.load(std::memory_order_relaxed);
  if ((current & 1U) != 0) sequence.store(current + 1, std::memory_order_release);
  return writer;
}

bool SnapshotWriter::mapping_is_backed() const noexcept {
  struct stat info {};
  return file_ != nullptr && ::fstat(fd_.get(), &info) == 0 && static_cast<std::size_t>(info.st_size) >= kTotalSize;
}

void SnapshotWriter::publish(const Payload& payload) noexcept {
  if (!mapping_is_backed()) return;
  std::atomic_ref<std::uint64_t> sequence(file_->sync.sequence);
  const std::uint64_t before = sequence.load(std::memory_order_relaxed);
  sequence.store(before + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  const auto* source = reinterpret_cast<const unsigned char*>(&payload);       // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  auto* destination = reinterpret_cast<std::uint64_t*>(&file_->payload);       // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  for (std::size_t i = 0; i < kPayloadWords; ++i) {
    std::uint64_t word = 0;
    std::memcpy(&word, source + i * sizeof word, sizeof word);
    std::atomic_ref<std::uint64_t>(destination[i]).store(word, std::memory_order_relaxed);
  }
  sequence.store(before + 2, std::memory_order_release);
  heartbeat();
}

void SnapshotWriter::heartbeat() noexcept {
  if (!mapping_is_backed()) return;
  std::atomic_ref<std::uint64_t>(file_->sync.heartbeat_ns).store(monotonic_now_ns(), std::memory_order_release);
}

void SnapshotWriter::mark_superseded() noexcept {
  if (!mapping_is_backed()) return;
  std::atomic_ref<std::uint64_t>(file_->sync.heartbeat_ns).store(0, std::memory_order_release);
}

bool SnapshotWriter::needs_reopen() const noexcept {
  if (file_ == nullptr) return true;
  struct stat info {};
  if (::lstat(path_.c_str(), &info) != 0) return true;
  if (!S_ISREG(info.st_mode) || info.st_dev != device_ || info.st_ino != inode_) return true;
  if (static_cast<std::size_t>(info.st_size) != kTotalSize) return true;
  return !header_is_valid(*file_, kTotalSize);
}

}  // namespace coupecircuit::snapshot
