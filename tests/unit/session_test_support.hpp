// What the unit tests about session directories share: Zend Framework
// sessions as a Voozanoo application writes them, and SessionCounts built
// and shown per class.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "session_scanner.hpp"

namespace coupecircuit::test {

inline constexpr std::string_view kAuthenticated =
    R"(Default|a:1:{s:11:"initialized";b:1;}vzn_abc|a:1:{s:7:"storage";s:11:"compte_reel";})";
inline constexpr std::string_view kAnonymous = R"(Default|a:1:{s:11:"initialized";b:1;})";
inline constexpr std::string_view kUnknown =
    R"(Default|a:1:{s:11:"initialized";b:1;}__ZF|a:1:{s:3:"vzn";a:1:{s:3:"ENT";i:1585145718;}})";

// Counts from {empty, anonymous, unknown, authenticated} per activity, and
// the non-empty files inactive when first seen (never read).
inline SessionCounts make_counts(std::array<std::uint64_t, 4> active, std::array<std::uint64_t, 4> inactive,
                                 std::uint64_t unread = 0) {
  SessionCounts counts;
  counts.active = active;
  counts.inactive = inactive;
  counts.inactive_unread = unread;
  counts.files_seen = unread;
  for (std::size_t i = 0; i < 4; ++i) counts.files_seen += active[i] + inactive[i];
  return counts;
}

inline SessionCounts active_counts(std::array<std::uint64_t, 4> active) { return make_counts(active, {}); }

inline std::string describe(const SessionCounts& counts) {
  std::string text = "active{";
  for (const auto value : counts.active) text += std::to_string(value) + " ";
  text += "} inactive{";
  for (const auto value : counts.inactive) text += std::to_string(value) + " ";
  return text + "} unread " + std::to_string(counts.inactive_unread) + " files_seen " +
         std::to_string(counts.files_seen);
}

}  // namespace coupecircuit::test
