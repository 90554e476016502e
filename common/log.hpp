// Log lines of coupecircuitd and coupecircuitctl: one line per event on
// stderr, "<priority>CCnnnn: text" when journald reads stderr (JOURNAL_STREAM
// set, so the journal keeps the priority), "coupecircuitd: CCnnnn: text"
// otherwise. Every line carries one of the message IDs below.
#pragma once

#include <string_view>

#include "message_ids.hpp"

namespace coupecircuit::log {

enum class Priority : int { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// Message IDs: the registry in message_ids.hpp.

void set_program_name(std::string_view name) noexcept;
void set_min_priority(Priority priority) noexcept;
// [log] level: error, warning, notice, info (also for anything else), debug.
[[nodiscard]] Priority priority_from_name(std::string_view name) noexcept;
void write(Priority priority, std::string_view message_id, std::string_view text) noexcept;

inline void error(std::string_view message_id, std::string_view text) noexcept { write(Priority::error, message_id, text); }
inline void warning(std::string_view message_id, std::string_view text) noexcept { write(Priority::warning, message_id, text); }
inline void notice(std::string_view message_id, std::string_view text) noexcept { write(Priority::notice, message_id, text); }
inline void info(std::string_view message_id, std::string_view text) noexcept { write(Priority::info, message_id, text); }
inline void debug(std::string_view message_id, std::string_view text) noexcept { write(Priority::debug, message_id, text); }

}  // namespace coupecircuit::log
