// Log lines of coupecircuitd and coupecircuitctl: one line per event on
// stderr, "<priority>CCnnnn: text" when journald reads stderr (JOURNAL_STREAM
// set, so the journal keeps the priority), "coupecircuitd: CCnnnn: text"
// otherwise. Every line carries one of the message IDs below.
#pragma once

#include <string_view>

namespace coupecircuit::log {

enum class Priority : int { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// Message IDs. Never reuse a number for another meaning.
namespace id {
inline constexpr std::string_view kStarted = "CC0001";
inline constexpr std::string_view kStopping = "CC0002";
inline constexpr std::string_view kReloaded = "CC0003";
inline constexpr std::string_view kReloadFailed = "CC0004";
inline constexpr std::string_view kConfigError = "CC0005";
inline constexpr std::string_view kScanSummary = "CC0010";
inline constexpr std::string_view kScanDirError = "CC0011";
inline constexpr std::string_view kInotifyOverflow = "CC0012";
inline constexpr std::string_view kInotifyUnavailable = "CC0013";
inline constexpr std::string_view kSnapshotError = "CC0020";
inline constexpr std::string_view kSnapshotReopened = "CC0021";
inline constexpr std::string_view kStateLoaded = "CC0030";
inline constexpr std::string_view kStateInvalid = "CC0031";
inline constexpr std::string_view kCutChanged = "CC0032";
inline constexpr std::string_view kLoadSignalError = "CC0040";
inline constexpr std::string_view kAgentListening = "CC0050";
inline constexpr std::string_view kAgentError = "CC0051";
inline constexpr std::string_view kHistoryError = "CC0060";
inline constexpr std::string_view kRedisUnavailable = "CC0070";
inline constexpr std::string_view kRedisAvailable = "CC0071";
inline constexpr std::string_view kRedisNotifications = "CC0072";
inline constexpr std::string_view kRedisTopology = "CC0073";
inline constexpr std::string_view kCtlStateError = "CC0100";
}  // namespace id

void set_program_name(std::string_view name) noexcept;
void set_min_priority(Priority priority) noexcept;
void write(Priority priority, std::string_view message_id, std::string_view text) noexcept;

inline void error(std::string_view message_id, std::string_view text) noexcept { write(Priority::error, message_id, text); }
inline void warning(std::string_view message_id, std::string_view text) noexcept { write(Priority::warning, message_id, text); }
inline void notice(std::string_view message_id, std::string_view text) noexcept { write(Priority::notice, message_id, text); }
inline void info(std::string_view message_id, std::string_view text) noexcept { write(Priority::info, message_id, text); }
inline void debug(std::string_view message_id, std::string_view text) noexcept { write(Priority::debug, message_id, text); }

}  // namespace coupecircuit::log
