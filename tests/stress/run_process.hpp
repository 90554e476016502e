// Runs a program with arguments, captures its standard output and error and
// waits for it with a deadline (killing it when the deadline passes). Used by
// the tests that drive the real coupecircuitd and coupecircuitctl binaries.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace coupecircuit::test {

struct ProcessResult {
  int exit_code = -1;   // -1 when killed by a signal or not run
  int signal = 0;       // the signal that ended it, 0 if none
  bool timed_out = false;
  std::string out;
  std::string err;
  [[nodiscard]] std::string describe() const {
    return "exit " + std::to_string(exit_code) + (signal != 0 ? " signal " + std::to_string(signal) : "") +
           (timed_out ? " (timed out)" : "") + "\n--- stdout\n" + out + "--- stderr\n" + err;
  }
};

// The child's environment: this process's, without JOURNAL_STREAM (so logs
// use the plain "program: CCnnnn: text" form) and NOTIFY_SOCKET.
inline std::vector<std::string> child_environment() {
  std::vector<std::string> result;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (text.rfind("JOURNAL_STREAM=", 0) == 0 || text.rfind("NOTIFY_SOCKET=", 0) == 0) continue;
    result.emplace_back(text);
  }
  return result;
}

inline ProcessResult run_process(const std::vector<std::string>& arguments,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  ProcessResult result;
  int out_pipe[2];
  int err_pipe[2];
  if (arguments.empty() || ::pipe2(out_pipe, O_CLOEXEC) != 0) return result;
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }
  std::vector<char*> argv;
  for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  const std::vector<std::string> environment = child_environment();
  std::vector<char*> envp;
  for (const auto& entry : environment) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return result;
  }

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_pipes = 2;
  while (open_pipes > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    const int ready = ::poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t got = ::read(fds[i].fd, buffer, sizeof buffer);
      if (got > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }

  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(pid, &status, WNOHANG)) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      done = ::waitpid(pid, &status, 0);
      break;
    }
    ::poll(nullptr, 0, 5);  // both pipes closed: the exit is imminent; bounded by the deadline
  }
  if (done == pid) {
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace coupecircuit::test
