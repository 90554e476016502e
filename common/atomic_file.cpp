#include "atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

namespace coupecircuit {
namespace {

Error errno_error(const std::string& what, const std::string& path) {
  const int saved = errno;
  return make_error(what + " " + path + ": " + std::strerror(saved), saved);
}

std::string random_suffix() {
  static thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string suffix(12, '0');
  std::uint64_t bits = generator();
  for (char& c : suffix) {
    c = kDigits[bits & 15U];
    bits >>= 4U;
  }
  return suffix;
}

}  // namespace

std::string parent_directory(std::string_view path) {
  const auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  return slash == 0 ? std::string("/") : std::string(path.substr(0, slash));
}

Result<void> ensure_directory(const std::string& directory, mode_t mode) {
  if (::mkdir(directory.c_str(), mode) == 0) {
    // mkdir's mode is filtered by the umask: readers (the web server's user)
    // must be able to reach the files whatever the umask.
    if (::chmod(directory.c_str(), mode) != 0) return errno_error("cannot chmod", directory);
    return {};
  }
  if (errno != EEXIST) return errno_error("cannot create", directory);
  return {};
}

Result<void> check_private_directory(const std::string& directory) {
  struct stat info {};
  if (::stat(directory.c_str(), &info) != 0) return errno_error("cannot stat", directory);
  if (!S_ISDIR(info.st_mode)) return make_error(directory + " is not a directory");
  if (info.st_uid != 0 && info.st_uid != ::geteuid()) {
    return make_error("directory " + directory + " belongs to user " + std::to_string(info.st_uid) +
                      ", neither root nor this process's user: refused");
  }
  if ((info.st_mode & S_IWOTH) != 0 || ((info.st_mode & S_IWGRP) != 0 && info.st_gid != 0)) {
    return make_error("directory " + directory +
                      " is writable by other users (who could replace the files in it): refused; chmod go-w it");
  }
  return {};
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)),
      temporary_(std::move(other.temporary_)),
      fd_(std::move(other.fd_)),
      committed_(std::exchange(other.committed_, true)) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    discard();
    path_ = std::move(other.path_);
    temporary_ = std::move(other.temporary_);
    fd_ = std::move(other.fd_);
    committed_ = std::exchange(other.committed_, true);
  }
  return *this;
}

AtomicFile::~AtomicFile() {
  discard();
}

void AtomicFile::discard() noexcept {
  if (!committed_ && !temporary_.empty()) ::unlink(temporary_.c_str());
  committed_ = true;
}

Result<AtomicFile> AtomicFile::create(const std::string& path, mode_t mode) {
  AtomicFile file;
  file.path_ = path;
  for (int attempt = 0; attempt < 16 && !file.fd_; ++attempt) {
    file.temporary_ = path + ".tmp." + std::to_string(::getpid()) + "." + random_suffix();
    file.fd_.reset(::open(file.temporary_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!file.fd_ && errno != EEXIST) return errno_error("cannot create", file.temporary_);
  }
  if (!file.fd_) return errno_error("cannot create", file.temporary_);
  // From here on the temporary is ours: the destructor removes it on failure.
  // The mode given to open() is filtered by the umask: set it explicitly.
  if (::fchmod(file.fd_.get(), mode) != 0) return errno_error("cannot chmod", file.temporary_);
  return file;
}

Result<void> AtomicFile::write_all(std::string_view data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t wrote = ::write(fd_.get(), data.data() + done, data.size() - done);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return errno_error("cannot write", temporary_);
    done += static_cast<std::size_t>(wrote);
  }
  return {};
}

Result<void> AtomicFile::commit() {
  if (::fsync(fd_.get()) != 0) return errno_error("cannot fsync", temporary_);
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) return errno_error("cannot rename over", path_);
  committed_ = true;
  const std::string directory = parent_directory(path_);
  UniqueFd directory_fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (directory_fd) ::fsync(directory_fd.get());  // make the rename durable across a crash
  return {};
}

Result<void> replace_private_file(const std::string& path, std::string_view contents, mode_t mode) {
  const std::string directory = parent_directory(path);
  if (auto made = ensure_directory(directory, 0755); !made) return made;
  if (auto safe = check_private_directory(directory); !safe) return safe;
  auto file = AtomicFile::create(path, mode);
  if (!file) return file.error();
  if (auto wrote = file->write_all(contents); !wrote) return wrote;
  return file->commit();
}

}  // namespace coupecircuit
