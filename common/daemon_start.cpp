#include "daemon_start.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace coupecircuit {

void make_absolute(std::string& path) {
  std::error_code ignored;
  const auto absolute = std::filesystem::absolute(path, ignored);
  if (!absolute.empty()) path = absolute.lexically_normal().string();
}

bool detach_from_terminal() {
  const pid_t child = ::fork();
  if (child < 0) return false;
  if (child > 0) std::_Exit(0);
  if (::setsid() < 0) return false;
  if (::chdir("/") != 0) return false;
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0) {
    ::dup2(null_fd, STDIN_FILENO);
    ::close(null_fd);
  }
  return true;
}

int open_stop_signals() noexcept {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  return ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

}  // namespace coupecircuit
