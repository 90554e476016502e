// Parsing a program's command line with CLI11 and the exit statuses every
// program of the project uses.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>

namespace coupecircuit {

// Empty: go on. Else the status to exit with: 0 after --help or --version,
// 2 on bad use (CLI11 printed the error and the usage).
[[nodiscard]] inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int status = app.exit(error);
    return status == 0 ? 0 : 2;
  }
  return std::nullopt;
}

}  // namespace coupecircuit
