#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace coupecircuit {

// The text between double quotes, as error messages show a rejected value.
std::string quoted(std::string_view text);

// ASCII case-insensitive equality, as directive and config keywords compare
// ("On", "LOAD"); locale-independent, so the same everywhere.
bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept;

// The name of an enumerator from a table of names in the enumeration's
// order (a NUL-terminated literal); `fallback` for a value beyond the table.
template <typename Enum, std::size_t N>
[[nodiscard]] constexpr const char* enum_name(Enum value, const char* const (&names)[N],
                                              const char* fallback) noexcept {
  const auto index = static_cast<std::size_t>(value);
  return index < N ? names[index] : fallback;
}

}  // namespace coupecircuit
