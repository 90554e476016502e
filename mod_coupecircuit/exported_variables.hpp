// The variables mod_coupecircuit exports to the request environment
// ($_SERVER in PHP), in one table: adding a variable is adding a row.
//
// The order of the rows is the order in which every path sets them, so that
// two variables exported under one name (CoupeCircuitEnvName) end the same
// way everywhere: the last one wins.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "snapshot_layout.hpp"
#include "thresholds.hpp"

namespace coupecircuit::module {

// Where a variable's text comes from.
enum class TextSource : std::uint8_t {
  payload_text,        // a number the helper rendered in the snapshot (ExportedVariable::payload_text)
  sessions_text,       // the session count, only while the helper could count the sessions
  cut_flag,            // "1" while the manual cut is on, else "0"
  sessions_threshold,  // the sessions threshold in force, when there is one
  load_threshold,      // the load threshold in force, when there is one
  verdict,             // ok, surcharge, coupure or inconnu: every request
  age,                 // seconds since the helper's heartbeat: every request
  probes_down,         // the probes down, comma-separated: only while probe results are fresh
};

// The payload's pre-rendered texts, for TextSource::payload_text.
using PayloadText = const char (snapshot::Payload::*)[snapshot::kTextCapacity];

struct ExportedVariable {
  std::string_view logical;      // CoupeCircuitEnvName's first argument
  const char* default_env_name;  // the name without CoupeCircuitEnvName
  TextSource source;
  PayloadText payload_text = nullptr;
};

enum class Variable : std::uint8_t {
  load_avg,
  sessions_actives,
  coupure,
  seuil_sessions,
  seuil_load,
  etat,
  age,
  indisponible
};

inline constexpr ExportedVariable kExportedVariables[] = {
    {"load_avg", "LOAD_AVG", TextSource::payload_text, &snapshot::Payload::load1_text},
    {"sessions_actives", "SESSIONS_ACTIVES", TextSource::sessions_text},
    {"coupure", "COUPURE_CHARGE_SERVEUR", TextSource::cut_flag},
    {"seuil_sessions", "SEUIL_SESSIONS_ACTIVES", TextSource::sessions_threshold},
    {"seuil_load", "SEUIL_LOAD_AVG", TextSource::load_threshold},
    {"etat", "COUPECIRCUIT_ETAT", TextSource::verdict},
    {"age", "COUPECIRCUIT_AGE", TextSource::age},
    {"indisponible", "COUPECIRCUIT_INDISPONIBLE", TextSource::probes_down},
};
inline constexpr std::size_t kVariableCount = std::size(kExportedVariables);
static_assert(kVariableCount <= 16, "presence masks are 16 bits");

[[nodiscard]] constexpr const ExportedVariable& exported(Variable variable) noexcept {
  return kExportedVariables[static_cast<std::size_t>(variable)];
}
[[nodiscard]] constexpr std::uint16_t bit_of(std::size_t index) noexcept {
  return static_cast<std::uint16_t>(1U << index);
}

// A text that changes with every request rather than with the snapshot.
[[nodiscard]] constexpr bool varies_per_request(TextSource source) noexcept {
  return source == TextSource::verdict || source == TextSource::age;
}
// A text that may be absent while the snapshot is fresh.
[[nodiscard]] constexpr bool may_be_absent_when_fresh(TextSource source) noexcept {
  return source == TextSource::sessions_text || source == TextSource::sessions_threshold ||
         source == TextSource::load_threshold || source == TextSource::probes_down;
}

// The rows that may be absent while fresh, as a mask of row indexes.
[[nodiscard]] constexpr std::uint16_t optional_rows() noexcept {
  std::uint16_t mask = 0;
  for (std::size_t i = 0; i < kVariableCount; ++i) {
    if (may_be_absent_when_fresh(kExportedVariables[i].source)) mask = static_cast<std::uint16_t>(mask | bit_of(i));
  }
  return mask;
}
inline constexpr std::uint16_t kOptionalRows = optional_rows();
inline constexpr std::size_t kOptionalRowCount = static_cast<std::size_t>(__builtin_popcount(kOptionalRows));
// How many combinations of the optional rows there are.
inline constexpr std::size_t kPresencePatterns = std::size_t{1} << kOptionalRowCount;

// A presence mask's combination of optional rows, from 0 to kPresencePatterns - 1.
[[nodiscard]] constexpr std::size_t presence_pattern(std::uint16_t present) noexcept {
  std::size_t pattern = 0;
  std::size_t bit = 0;
  for (std::size_t i = 0; i < kVariableCount; ++i) {
    if ((kOptionalRows & bit_of(i)) == 0) continue;
    if ((present & bit_of(i)) != 0) pattern |= std::size_t{1} << bit;
    ++bit;
  }
  return pattern;
}
// Its inverse: the rows present in a pattern while fresh.
[[nodiscard]] constexpr std::uint16_t rows_of_pattern(std::size_t pattern) noexcept {
  constexpr unsigned kAllRows = (1U << kVariableCount) - 1U;
  auto present = static_cast<std::uint16_t>(kAllRows & ~static_cast<unsigned>(kOptionalRows));
  std::size_t bit = 0;
  for (std::size_t i = 0; i < kVariableCount; ++i) {
    if ((kOptionalRows & bit_of(i)) == 0) continue;
    if ((pattern & (std::size_t{1} << bit)) != 0) present = static_cast<std::uint16_t>(present | bit_of(i));
    ++bit;
  }
  return present;
}

// What the texts of one vhost's variables are made from.
struct ExportInputs {
  const snapshot::Payload* payload = nullptr;  // a fresh copy; null: nothing from the snapshot
  EffectiveThresholds thresholds;              // in force (the directive's alone without a payload)
  const snapshot::ThresholdSet* directive = nullptr;  // the vhost's own: its texts outlive requests
  Verdict verdict = Verdict::inconnu;
  const char* age = nullptr;  // null: no heartbeat to count from
};

struct ExportText {
  const char* text = nullptr;  // null: not exported
  bool lasting = false;        // lives as long as the configuration (static, or the settings')
};

// One variable's text.
[[nodiscard]] ExportText text_of(const ExportedVariable& variable, const ExportInputs& inputs) noexcept;

// SATURATION_<NAME> of each probe whose saturation is measured: the tail of
// variables after the table's, worked out once per snapshot sequence. Names
// and values live as long as the process (intern_text, static numbers).
struct ProbeTail {
  std::uint8_t count = 0;
  const char* name[snapshot::kMaxProbes] = {};
  const char* value[snapshot::kMaxProbes] = {};
};
// Empty unless the payload's probe results are fresh; a variable whose text
// cannot be kept (intern table full, a number beyond 9999) is left out.
void fill_probe_tail(const snapshot::Payload& payload, ProbeTail& tail) noexcept;

// A copy of the text that lives as long as the process, shared by every
// thread: the same text gives the same pointer. Bounded (kMaxInternedTexts);
// null when full or out of memory (the variable is then not exported).
inline constexpr std::size_t kMaxInternedTexts = 1024;
[[nodiscard]] const char* intern_text(std::string_view text) noexcept;

// ok, surcharge, coupure or inconnu, in static storage.
[[nodiscard]] const char* verdict_text(Verdict verdict) noexcept;

// The text in static storage of the number rendered as `rendered` ("0" to
// "9999", "0.00" to "99.99"), if it is one of those; else null.
[[nodiscard]] const char* static_number_text(const char* rendered) noexcept;
// The static text of 0 to 9999; null beyond.
[[nodiscard]] const char* static_unsigned_text(std::uint64_t value) noexcept;

}  // namespace coupecircuit::module
