// coupecircuit-probes: checks the dependencies declared in the [probe NAME]
// sections of coupecircuitd.conf (HTTP, TCP, Redis, PostgreSQL), without
// privilege, and hands their status to coupecircuitd in the results file.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>

#include "command_line.hpp"
#include "config_text.hpp"
#include "daemon_start.hpp"
#include "prepare.hpp"
#include "program.hpp"

namespace {

struct CommandLine {
  std::string config_path = coupecircuit::kDefaultConfigPath;
  bool config_given = false;
  std::optional<std::string> results_path;
  bool foreground = false;
  bool once = false;
};

coupecircuit::Result<coupecircuit::probes::ProbesConfig> load_effective_config(const CommandLine& line) {
  auto config = coupecircuit::probes::load_probes_config(line.config_path, line.config_given);
  if (!config) return config;
  if (line.results_path) config->results_path = *line.results_path;
  if (auto prepared = coupecircuit::probes::prepare_probes(*config, line.config_path); !prepared) return prepared.error();
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  CommandLine line;
  CLI::App app{"coupecircuit-probes: checks the dependencies named in [probe NAME] sections and writes their status "
               "for coupecircuitd",
               "coupecircuit-probes"};
  app.set_version_flag("--version", COUPECIRCUIT_VERSION);
  auto* config_option = app.add_option("-c,--config", line.config_path, "Configuration file")->capture_default_str();
  app.add_option("--results", line.results_path, "Results file (overrides [probes] results)");
  app.add_flag("--foreground", line.foreground, "Do not detach (systemd, tests)");
  app.add_flag("--once", line.once, "Check every probe once, write the results, exit");
  if (const auto status = coupecircuit::parse_command_line(app, argc, argv)) return *status;
  line.config_given = config_option->count() > 0;
  coupecircuit::make_absolute(line.config_path);
  if (line.results_path) coupecircuit::make_absolute(*line.results_path);
  ::signal(SIGPIPE, SIG_IGN);

  coupecircuit::probes::ProgramOptions options;
  options.once = line.once;
  options.load_config = [&line] { return load_effective_config(line); };
  if (!line.once && !line.foreground && std::getenv("NOTIFY_SOCKET") == nullptr) {
    options.detach = coupecircuit::detach_from_terminal;
  }
  return coupecircuit::probes::run_probes_program(options);
}
