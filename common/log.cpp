#include "log.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace coupecircuit::log {
namespace {

std::string g_program = "coupecircuit";
Priority g_min_priority = Priority::info;

bool stderr_is_journal() noexcept {
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  return journal;
}

}  // namespace

void set_program_name(std::string_view name) noexcept {
  try {
    g_program.assign(name);
  } catch (...) {  // keep the previous name
  }
}

void set_min_priority(Priority priority) noexcept { g_min_priority = priority; }

Priority priority_from_name(std::string_view name) noexcept {
  if (name == "error") return Priority::error;
  if (name == "warning") return Priority::warning;
  if (name == "notice") return Priority::notice;
  if (name == "debug") return Priority::debug;
  return Priority::info;
}

void write(Priority priority, std::string_view message_id, std::string_view text) noexcept {
  if (static_cast<int>(priority) > static_cast<int>(g_min_priority)) return;
  try {
    std::string line;
    line.reserve(text.size() + 48);
    if (stderr_is_journal()) {
      line += '<';
      line += static_cast<char>('0' + static_cast<int>(priority));
      line += '>';
    } else {
      line += g_program;
      line += ": ";
    }
    line += message_id;
    line += ": ";
    for (const char c : text) line += (c == '\n' || c == '\r') ? ' ' : c;  // one event, one line
    line += '\n';
    // One write(2) per line so concurrent writers never interleave within it.
    std::size_t offset = 0;
    while (offset < line.size()) {
      const ssize_t written = ::write(STDERR_FILENO, line.data() + offset, line.size() - offset);
      if (written <= 0) break;
      offset += static_cast<std::size_t>(written);
    }
  } catch (...) {  // logging never throws
  }
}

}  // namespace coupecircuit::log
