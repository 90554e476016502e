#include "agent.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace coupecircuit {

std::string agent_answer(const snapshot::Payload& payload, const AgentSettings& settings) {
  if ((payload.flags & snapshot::kFlagCutActive) != 0) return settings.maint_on_cut ? "maint\n" : "drain\n";
  const auto& global = payload.global_override;
  const std::optional<std::uint64_t> sessions_trip =
      global.has_sessions != 0 ? std::optional<std::uint64_t>(global.sessions) : settings.sessions_trip;
  const std::optional<std::uint64_t> load_trip =
      global.has_load != 0 ? std::optional<std::uint64_t>(global.load_centi) : settings.load_trip_centi;
  // Ratios in per-mille to stay in integers.
  std::uint64_t ratio = 0;
  if (sessions_trip && *sessions_trip > 0) {
    const std::uint64_t r = payload.sessions_active >= *sessions_trip ? 1000 : payload.sessions_active * 1000 / *sessions_trip;
    ratio = r > ratio ? r : ratio;
  }
  if (load_trip && *load_trip > 0) {
    const std::uint64_t r = payload.load_centi[0] >= *load_trip ? 1000 : payload.load_centi[0] * 1000ULL / *load_trip;
    ratio = r > ratio ? r : ratio;
  }
  if (ratio >= 1000) return "drain\n";
  std::uint64_t weight = ratio <= 500 ? 100 : (1000 - ratio) * 100 / 500;
  if (weight < 1) weight = 1;
  return "up ready " + std::to_string(weight) + "%\n";
}

Result<AgentListener> AgentListener::open(const AgentSettings& settings) {
  const bool v6 = settings.bind.find(':') != std::string::npos;
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return make_error(std::string("agent socket: ") + std::strerror(errno), errno);
  const int yes = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  int status = -1;
  if (v6) {
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_port = htons(settings.port);
    if (::inet_pton(AF_INET6, settings.bind.c_str(), &address.sin6_addr) != 1) {
      return make_error("agent bind address \"" + settings.bind + "\" is not an IP address");
    }
    status = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);  // NOLINT
  } else {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(settings.port);
    if (::inet_pton(AF_INET, settings.bind.c_str(), &address.sin_addr) != 1) {
      return make_error("agent bind address \"" + settings.bind + "\" is not an IP address");
    }
    status = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);  // NOLINT
  }
  if (status != 0 || ::listen(fd.get(), 64) != 0) {
    return make_error("agent cannot listen on " + settings.bind + ":" + std::to_string(settings.port) + ": " +
                          std::strerror(errno),
                      errno);
  }
  AgentListener listener;
  listener.listener_ = std::move(fd);
  return listener;
}

void AgentListener::serve(const std::string& answer) noexcept {
  for (;;) {
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client) return;  // EAGAIN: no more pending connections
    // One short line fits the socket buffer: a non-blocking send never stalls the loop.
    (void)::send(client.get(), answer.data(), answer.size(), MSG_NOSIGNAL);
  }
}

}  // namespace coupecircuit
