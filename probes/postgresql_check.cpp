// The postgresql check, with libpq: a non-blocking connect
// (PQconnectStartParams + PQconnectPoll, each wait a poll() bounded by the
// probe's deadline) and one query, sent non-blocking too, with the server's
// statement_timeout set to the time left. It measures the connect time and
// the connection saturation: client backends other than its own
// (pg_stat_activity, backend_type 'client backend') divided by the
// connections open to ordinary roles (max_connections -
// superuser_reserved_connections), in percent.
//
// A server that refuses the connection because every slot is taken
// (SQLSTATE 53300, "too many clients") is up and saturated at 100 %: it
// answers, and what the application meets there is the saturation. Any other
// failure to connect is down. Errors are categories chosen here, never
// libpq's text: that names the host, the user or the database.
#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <memory>
#include <string>

#include "checks.hpp"

namespace coupecircuit::probes {
namespace {

constexpr const char* kSaturationQuery =
    "SELECT (SELECT count(*) FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()),"
    " current_setting('max_connections')::int,"
    " current_setting('superuser_reserved_connections')::int";

struct ConnectionDeleter {
  void operator()(PGconn* connection) const noexcept { PQfinish(connection); }
};
struct ResultDeleter {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using Connection = std::unique_ptr<PGconn, ConnectionDeleter>;

enum class Wait { ready, timeout, stopped, failed };

// Waits until the connection's socket is readable or writable, the deadline
// passes or `stop` is set (checked every 100 ms).
Wait wait_socket(PGconn* connection, bool for_write, std::int64_t deadline, const std::atomic<bool>& stop) {
  for (;;) {
    if (stop.load(std::memory_order_relaxed)) return Wait::stopped;
    const std::int64_t left_us = deadline - monotonic_us();
    if (left_us <= 0) return Wait::timeout;
    pollfd fd{PQsocket(connection), static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    if (fd.fd < 0) return Wait::failed;
    const int ready = ::poll(&fd, 1, static_cast<int>(std::min<std::int64_t>(left_us / 1000 + 1, 100)));
    if (ready > 0) return Wait::ready;
    if (ready < 0 && errno != EINTR) return Wait::failed;
  }
}

// The SQLSTATE of a failed connection: libpq puts it in the message when
// verbosity is VERBOSE ("FATAL:  53300: sorry, too many clients already").
std::string connect_sqlstate(const PGconn* connection) {
  const std::string message = PQerrorMessage(connection);
  const auto fatal = message.find("FATAL:  ");
  if (fatal == std::string::npos || message.size() < fatal + 8 + 6) return {};
  std::string code = message.substr(fatal + 8, 5);
  if (message[fatal + 13] != ':') return {};
  for (const char c : code) {
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'))) return {};
  }
  return code;
}

std::string refused_error(const std::string& sqlstate) {
  if (sqlstate == "28P01" || sqlstate == "28000") return "connection refused: authentication failed";
  if (sqlstate == "3D000") return "connection refused: the database does not exist";
  if (sqlstate == "57P03") return "connection refused: the server is starting up or shutting down";
  if (!sqlstate.empty()) return "connection refused by the server (SQLSTATE " + sqlstate + ")";
  return "cannot connect";
}

class PostgresqlCheck final : public Check {
 public:
  explicit PostgresqlCheck(ProbeSpec spec) : spec_(std::move(spec)) {}

  CheckOutcome run(const std::atomic<bool>& stop) override {
    CheckOutcome outcome;
    const std::int64_t started = monotonic_us();
    const std::int64_t deadline = started + std::int64_t{spec_.timeout_ms} * 1000;
    const std::string options = "-c statement_timeout=" + std::to_string(spec_.timeout_ms);
    // The file's connection string first (expand_dbname), then what the
    // probe sets over it.
    const char* keywords[] = {"dbname", "options", "application_name", nullptr};
    const char* values[] = {spec_.secret.c_str(), options.c_str(), "coupecircuit-probes", nullptr};
    Connection connection(PQconnectStartParams(keywords, values, 1));
    if (!connection) {
      outcome.error = "out of memory";
      return outcome;
    }
    PQsetErrorVerbosity(connection.get(), PQERRORS_VERBOSE);
    const std::string connect_failure = connect(connection.get(), deadline, stop);
    outcome.latency_us = static_cast<std::uint32_t>(std::min<std::int64_t>(monotonic_us() - started, UINT32_MAX));
    if (!connect_failure.empty()) {
      if (connect_failure == "53300") {
        outcome.up = true;
        outcome.saturation_pct = 100;
        outcome.error = "too many connections: every slot is taken";
      } else {
        outcome.error = connect_failure;
      }
      return outcome;
    }
    outcome.up = true;
    outcome.error = measure(connection.get(), deadline, stop, outcome.saturation_pct);
    return outcome;
  }

 private:
  [[nodiscard]] std::string timeout_error() const { return "timeout after " + std::to_string(spec_.timeout_ms) + " ms"; }

  // Empty when connected; "53300" when every slot is taken; else the error.
  std::string connect(PGconn* connection, std::int64_t deadline, const std::atomic<bool>& stop) const {
    if (PQstatus(connection) == CONNECTION_BAD) return refused_error(connect_sqlstate(connection));
    PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
    for (;;) {
      if (polling == PGRES_POLLING_OK) return {};
      if (polling == PGRES_POLLING_FAILED) {
        const std::string sqlstate = connect_sqlstate(connection);
        return sqlstate == "53300" ? sqlstate : refused_error(sqlstate);
      }
      const Wait waited = wait_socket(connection, polling == PGRES_POLLING_WRITING, deadline, stop);
      if (waited == Wait::timeout) return timeout_error();
      if (waited == Wait::stopped) return "stopped";
      if (waited == Wait::failed) return "cannot connect";
      polling = PQconnectPoll(connection);
    }
  }

  // The first result of the query sent (the others are read and dropped);
  // empty when read, else why not.
  std::string read_result(PGconn* connection, std::int64_t deadline, const std::atomic<bool>& stop,
                          std::unique_ptr<PGresult, ResultDeleter>& result) const {
    for (;;) {
      if (PQconsumeInput(connection) == 0) return "connection lost during the saturation query";
      if (PQisBusy(connection) != 0) {
        if (wait_socket(connection, false, deadline, stop) != Wait::ready) return timeout_error();
        continue;
      }
      PGresult* next = PQgetResult(connection);
      if (next == nullptr) return {};
      if (!result) {
        result.reset(next);
      } else {
        PQclear(next);
      }
    }
  }

  // Empty when measured; else why not (the server is up all the same).
  std::string measure(PGconn* connection, std::int64_t deadline, const std::atomic<bool>& stop,
                      std::optional<std::uint32_t>& saturation) const {
    if (PQsetnonblocking(connection, 1) != 0 || PQsendQuery(connection, kSaturationQuery) == 0) {
      return "cannot send the saturation query";
    }
    while (PQflush(connection) == 1) {
      if (wait_socket(connection, true, deadline, stop) != Wait::ready) return timeout_error();
    }
    std::unique_ptr<PGresult, ResultDeleter> result;
    if (std::string failed = read_result(connection, deadline, stop, result); !failed.empty()) return failed;
    if (!result || PQresultStatus(result.get()) != PGRES_TUPLES_OK || PQntuples(result.get()) != 1 ||
        PQnfields(result.get()) != 3) {
      const char* sqlstate = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
      return std::string("saturation query failed") + (sqlstate != nullptr ? " (SQLSTATE " + std::string(sqlstate, 5) + ")" : "");
    }
    const long clients = std::strtol(PQgetvalue(result.get(), 0, 0), nullptr, 10);
    const long max_connections = std::strtol(PQgetvalue(result.get(), 0, 1), nullptr, 10);
    const long reserved = std::strtol(PQgetvalue(result.get(), 0, 2), nullptr, 10);
    const long usable = max_connections - reserved;
    if (usable <= 0 || clients < 0) return "max_connections leaves no connection to ordinary roles";
    saturation = static_cast<std::uint32_t>(std::min<long>((clients * 100 + usable / 2) / usable, kMaxSaturationPct));
    return {};
  }

  ProbeSpec spec_;
};

}  // namespace

std::unique_ptr<Check> make_postgresql_check(const ProbeSpec& spec) { return std::make_unique<PostgresqlCheck>(spec); }

}  // namespace coupecircuit::probes
