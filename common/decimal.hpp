// Strict parsing and rendering of the numbers operators type: session counts
// (unsigned integers) and load averages with at most two decimals, stored as
// "centi" integers (value x 100) so that comparisons need no floating point.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "result.hpp"

namespace coupecircuit {

inline constexpr std::uint64_t kMaxSessionsValue = 1'000'000'000'000ULL;
inline constexpr std::uint64_t kMaxLoadCenti = 100'000'000ULL;  // load 1,000,000.00

// Digits only: no sign, no spaces, no leading '+', not empty; at most max.
[[nodiscard]] Result<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t max);
// "4", "4.5", "4.50" -> 450. At most two decimals; at most max.
[[nodiscard]] Result<std::uint64_t> parse_centi(std::string_view text, std::uint64_t max = kMaxLoadCenti);

// Render into a buffer, always NUL-terminated; return the length written.
std::size_t render_unsigned(char* buffer, std::size_t capacity, std::uint64_t value) noexcept;
std::size_t render_centi(char* buffer, std::size_t capacity, std::uint64_t centi) noexcept;
[[nodiscard]] std::string centi_to_string(std::uint64_t centi);

}  // namespace coupecircuit
