// coupecircuitd: counts active authenticated PHP sessions, reads load signals
// and publishes them with the manual cut and threshold overrides in the
// snapshot read by mod_coupecircuit and coupecircuitctl.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "command_line.hpp"
#include "daemon.hpp"
#include "daemon_start.hpp"
#include "daemon_config.hpp"
#include "log.hpp"

namespace {

struct CommandLine {
  std::string config_path = coupecircuit::kDefaultConfigPath;
  bool config_given = false;
  std::optional<std::string> session_dir, snapshot_path, state_path, save_handler, save_path;
  std::optional<std::uint32_t> active_minutes, interval;
  bool foreground = false;
  bool once = false;
  bool check = false;
};

coupecircuit::Result<coupecircuit::DaemonConfig> load_effective_config(const CommandLine& line) {
  auto config = coupecircuit::load_daemon_config(line.config_path, line.config_given);
  if (!config) return config;
  if (line.snapshot_path) config->snapshot_path = *line.snapshot_path;
  if (line.state_path) config->state_path = *line.state_path;
  if (line.active_minutes) config->scan.active_minutes = *line.active_minutes;
  if (line.interval) {
    config->rescan_interval_s = *line.interval;
    config->rescan_interval_set = true;
  }
  std::string where = line.config_path;
  if (line.save_handler) {
    auto handler = coupecircuit::parse_save_handler(*line.save_handler);
    if (!handler) return coupecircuit::make_error("--save-handler: " + handler.error().message);
    config->save_handler = *handler;
    where = "--save-handler";
  }
  if (line.save_path) {
    config->save_path_text = *line.save_path;
    where = "--save-path";
  }
  auto resolved = coupecircuit::resolve_session_store(*config, where);
  if (!resolved) return resolved.error();
  if (auto password = coupecircuit::read_cluster_password(config->cluster); !password) return password.error();
  if (line.session_dir) config->scan.session_dir = *line.session_dir;
  // The command line is visible to every user (ps, /proc): no password there.
  if (line.save_path && coupecircuit::save_path_has_password(config->store)) {
    return coupecircuit::make_error("--save-path: auth= is refused on the command line (visible to every user): "
                                    "put the password in a root-only file named by [sessions] auth_file");
  }
  return config;
}

void make_paths_absolute(CommandLine& line) {
  coupecircuit::make_absolute(line.config_path);
  for (auto* path : {&line.session_dir, &line.snapshot_path, &line.state_path}) {
    if (*path) coupecircuit::make_absolute(**path);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CommandLine line;
  CLI::App app{"coupecircuitd: counts active authenticated PHP sessions and publishes server load for mod_coupecircuit",
               "coupecircuitd"};
  app.set_version_flag("--version", COUPECIRCUIT_VERSION);
  auto* config_option = app.add_option("-c,--config", line.config_path, "Configuration file")
                            ->capture_default_str();
  app.add_option("--session-dir", line.session_dir, "PHP session directory (overrides [sessions] dir)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--save-handler", line.save_handler,
                 "files, redis or rediscluster, as session.save_handler (overrides [sessions] save_handler)");
  app.add_option("--save-path", line.save_path,
                 "session.save_path of that handler, without a password (overrides [sessions] save_path)");
  app.add_option("--snapshot", line.snapshot_path, "Snapshot file (overrides [snapshot] path)");
  app.add_option("--state", line.state_path, "Control state file (overrides [state] path)");
  app.add_option("--active-minutes", line.active_minutes,
                 "A session is active when modified within this many minutes (default 24)")
      ->check(CLI::Range(1U, 10080U));
  app.add_option("--interval", line.interval, "Seconds between full rescans (default 60, 10 for Redis)")->check(CLI::Range(1U, 86400U));
  app.add_flag("--foreground", line.foreground, "Do not detach (systemd, tests)");
  app.add_flag("--once", line.once, "Scan once, publish the snapshot, exit");
  app.add_flag("--check", line.check,
               "Check the configuration (and the password files it names) and exit: 0 valid, 2 not (the error names "
               "the line)");
  if (const auto status = coupecircuit::parse_command_line(app, argc, argv)) return *status;
  line.config_given = config_option->count() > 0;
  make_paths_absolute(line);
  // A write to a closed pipe (stderr read by a process that went away) must
  // fail with EPIPE, not kill the helper.
  ::signal(SIGPIPE, SIG_IGN);

  if (line.check) {
    auto config = load_effective_config(line);
    if (!config) {
      std::fprintf(stderr, "coupecircuitd: %s\n", config.error().message.c_str());
      return 2;
    }
    std::printf("%s: configuration valid%s\n", line.config_path.c_str(),
                config->cluster.enabled() ? (" (cluster " + config->cluster.name + ", node " + config->cluster.node + ")").c_str()
                                          : "");
    return 0;
  }

  coupecircuit::DaemonRunOptions options;
  options.once = line.once;
  options.load_config = [&line] { return load_effective_config(line); };
  if (!line.once && !line.foreground && std::getenv("NOTIFY_SOCKET") == nullptr) {
    options.detach = coupecircuit::detach_from_terminal;
  }
  return coupecircuit::run_daemon(options);
}
