#pragma once

#include <string>
#include <string_view>

namespace coupecircuit {

// The text between double quotes, as error messages show a rejected value.
std::string quoted(std::string_view text);

// ASCII case-insensitive equality, as directive and config keywords compare
// ("On", "LOAD"); locale-independent, so the same everywhere.
bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept;

}  // namespace coupecircuit
