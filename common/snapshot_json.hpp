// The snapshot's payload as JSON: the one schema shared by
// `coupecircuitctl status --json` and the status page's `?json`
// (docs/STATUS_JSON.md). Keys are nested by subject (helper.pid,
// sessions.known, load["1"]); decimal values are strings such as "1.52".
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "snapshot_layout.hpp"

namespace coupecircuit {

[[nodiscard]] nlohmann::json payload_to_json(const snapshot::Payload& payload);

// "files", "redis" or "rediscluster": the name of a payload's store_kind.
[[nodiscard]] const char* store_kind_name(std::uint32_t kind) noexcept;

}  // namespace coupecircuit
