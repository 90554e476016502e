// What the starts of coupecircuitd and coupecircuit-probes share: paths from
// the command line made absolute, and the classic detach for init systems
// without supervision (systemd runs both with --foreground, Type=notify).
#pragma once

#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <string>

namespace coupecircuit {

// Paths typed on the command line are relative to the directory the program
// was started from; it moves to "/" when it detaches and reads its
// configuration again on SIGHUP: make them absolute first.
void make_absolute(std::string& path);

// fork (the parent exits 0), setsid, chdir("/"), stdin from /dev/null.
// Called once the configuration was accepted, so that the parent exits 0
// only then. False (errno set) when a step failed.
bool detach_from_terminal();

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (threads started
// later inherit the mask: the signals reach the signalfd only) and returns
// a non-blocking signalfd for them (-1, errno set, on failure).
[[nodiscard]] int open_stop_signals() noexcept;

// Reads what is pending on the signalfd `fd`: each SIGHUP calls
// on_hangup() (reload); any other signal ends the reading and is returned
// (the program stops). 0 when nothing but hang-ups was pending.
template <typename OnHangup>
[[nodiscard]] std::uint32_t read_signals(int fd, OnHangup on_hangup) {
  signalfd_siginfo info{};
  while (::read(fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    if (info.ssi_signo != SIGHUP) return info.ssi_signo;
    on_hangup();
  }
  return 0;
}

}  // namespace coupecircuit
