// What parsing alone cannot check, done when coupecircuit-probes loads its
// configuration (at start and on SIGHUP): the body patterns compile with
// PCRE2, the secret files (auth_file, conninfo_file) are readable,
// root-only (not readable by group or others) and their contents valid.
// Errors name the file and line of the setting, never a secret.
#pragma once

#include <string>

#include "probe_config.hpp"
#include "result.hpp"

namespace coupecircuit::probes {

[[nodiscard]] Result<void> check_body_pattern(const std::string& pattern);

// Fills each spec's `secret`.
[[nodiscard]] Result<void> prepare_probes(ProbesConfig& config, const std::string& source_name);

}  // namespace coupecircuit::probes
