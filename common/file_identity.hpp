// What is known of a file when it was last read: a change of any of these
// (existence, device, inode, size, mtime) means it must be read again.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

namespace coupecircuit {

struct FileIdentity {
  bool exists = false;
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

// The identity of `path` itself (lstat: a link is not followed); a file
// that cannot be stat'ed does not exist.
[[nodiscard]] inline FileIdentity identity_of(const std::string& path) noexcept {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return {};
  return {true, info.st_dev, info.st_ino, info.st_size,
          static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000LL + info.st_mtim.tv_nsec};
}

}  // namespace coupecircuit
