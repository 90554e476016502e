#include "agent.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "snapshot.hpp"
#include "thresholds.hpp"

namespace coupecircuit {

namespace {

// The [agent] settings in the place of a vhost's directive: the global runtime
// overrides take precedence over them exactly as over CoupeCircuitThreshold.
snapshot::ThresholdSet settings_as_directive(const AgentSettings& settings) noexcept {
  snapshot::ThresholdSet directive{};
  if (settings.sessions_trip) {
    directive.has_sessions = 1;
    directive.sessions = *settings.sessions_trip;
  }
  if (settings.load_trip_centi) {
    directive.has_load = 1;
    directive.load_centi = *settings.load_trip_centi;
  }
  return directive;
}

// How close a value is to its TRIP, in per-mille (integers only), 1000 when reached.
std::uint64_t per_mille_of(std::uint64_t value, std::uint64_t trip) noexcept {
  if (trip == 0 || value >= trip) return 1000;
  return value * 1000 / trip;
}

}  // namespace

std::string agent_answer(const snapshot::Payload& payload, const AgentSettings& settings) {
  if ((payload.flags & snapshot::kFlagCutActive) != 0) return settings.maint_on_cut ? "maint\n" : "drain\n";
  const snapshot::ThresholdSet directive = settings_as_directive(settings);
  const EffectiveThresholds thresholds = resolve_thresholds(payload, nullptr, directive);
  const bool sessions_known = snapshot::sessions_known(payload);
  std::uint64_t ratio = 0;
  if (thresholds.sessions_from != nullptr && sessions_known) {
    ratio = std::max(ratio, per_mille_of(payload.sessions_active, thresholds.sessions_from->sessions));
  }
  if (thresholds.load_from != nullptr) {
    ratio = std::max(ratio, per_mille_of(payload.load_centi[0], thresholds.load_from->load_centi));
  }
  if (ratio >= 1000) return "drain\n";
  std::uint64_t weight = ratio <= 500 ? 100 : (1000 - ratio) * 100 / 500;
  // Blind to its sessions, the node cannot say it is idle: at most half its
  // weight, visible on HAProxy's stats page, without draining it.
  if (!sessions_known) weight = std::min<std::uint64_t>(weight, kWeightWhenSessionsUnknown);
  if (weight < 1) weight = 1;
  return "up ready " + std::to_string(weight) + "%\n";
}

Result<AgentListener> AgentListener::open(const AgentSettings& settings) {
  const bool v6 = settings.bind.find(':') != std::string::npos;
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return make_error(std::string("agent socket: ") + std::strerror(errno), errno);
  const int yes = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  // One sockaddr of the family the address is written in.
  sockaddr_storage address{};
  socklen_t length = 0;
  void* ip = nullptr;
  if (v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);  // NOLINT
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(settings.port);
    ip = &in6->sin6_addr;
    length = sizeof *in6;
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&address);  // NOLINT
    in4->sin_family = AF_INET;
    in4->sin_port = htons(settings.port);
    ip = &in4->sin_addr;
    length = sizeof *in4;
  }
  if (::inet_pton(v6 ? AF_INET6 : AF_INET, settings.bind.c_str(), ip) != 1) {
    return make_error("agent bind address \"" + settings.bind + "\" is not an IP address");
  }
  const int status = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length);  // NOLINT
  if (status != 0 || ::listen(fd.get(), 64) != 0) {
    return make_error(
        "agent cannot listen on " + settings.bind + ":" + std::to_string(settings.port) + ": " + std::strerror(errno),
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
