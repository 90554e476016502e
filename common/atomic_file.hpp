// Writing a file so that readers see either the old or the new contents, and
// the directories such files live in.
//
// AtomicFile creates a temporary file beside the target with
// O_CREAT|O_EXCL|O_NOFOLLOW (never an existing file, never through a link),
// and removes it unless commit() succeeded: fsync, rename over the target,
// fsync of the directory so that the rename survives a crash.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "result.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {

// The directory part of a path: "." for a bare name, "/" for "/name".
[[nodiscard]] std::string parent_directory(std::string_view path);

// Creates the directory with exactly `mode` (whatever the umask) when it is
// missing; an existing directory is left as it is.
[[nodiscard]] Result<void> ensure_directory(const std::string& directory, mode_t mode);

// A directory in which only its owner can create, rename or remove files:
// a directory, owned by root or by this process's user, not writable by
// others (nor by its group, unless that group is root's).
[[nodiscard]] Result<void> check_private_directory(const std::string& directory);

// Replaces the file at `path` with `contents` (mode `mode`) atomically, in
// its directory made if missing (0755) and refused unless private: another
// user able to write there could swap the file or plant a link where the
// temporary goes.
[[nodiscard]] Result<void> replace_private_file(const std::string& path, std::string_view contents, mode_t mode);

class AtomicFile {
 public:
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  ~AtomicFile();  // removes the temporary file unless committed

  // The temporary is opened read-write with exactly `mode`.
  [[nodiscard]] static Result<AtomicFile> create(const std::string& path, mode_t mode);

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  [[nodiscard]] const std::string& temporary_path() const noexcept { return temporary_; }
  [[nodiscard]] Result<void> write_all(std::string_view data);
  // fsync, rename over the target, fsync of its directory. The descriptor
  // stays open (take_fd()) and now refers to the target.
  [[nodiscard]] Result<void> commit();
  [[nodiscard]] UniqueFd take_fd() noexcept { return std::move(fd_); }

 private:
  AtomicFile() = default;
  void discard() noexcept;

  std::string path_;
  std::string temporary_;
  UniqueFd fd_;
  bool committed_ = false;
};

}  // namespace coupecircuit
