#include "read_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace coupecircuit {
namespace {

// "1 MiB", "64 KiB", "1000 bytes".
std::string size_text(std::size_t bytes) {
  if (bytes % (1U << 20) == 0) return std::to_string(bytes >> 20U) + " MiB";
  if (bytes % (1U << 10) == 0) return std::to_string(bytes >> 10U) + " KiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

Result<std::string> read_regular_file(int fd, std::string_view what, const std::string& path, std::size_t max_bytes) {
  const std::string name = std::string(what) + " " + path;
  const auto failure = [&name](const char* action) {
    const int saved = errno;
    return make_error(std::string(action) + " " + name + ": " + std::strerror(saved), saved);
  };
  struct stat info {};
  if (::fstat(fd, &info) != 0) return failure("cannot stat");
  if (!S_ISREG(info.st_mode)) return make_error(name + " is not a regular file");
  if (static_cast<std::size_t>(info.st_size) > max_bytes) {
    return make_error(name + " is larger than " + size_text(max_bytes));
  }
  std::string text(static_cast<std::size_t>(info.st_size), '\0');
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t got = ::read(fd, text.data() + done, text.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return failure("cannot read");
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  text.resize(done);
  return text;
}

}  // namespace coupecircuit
