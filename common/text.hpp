#pragma once

#include <string>
#include <string_view>

namespace coupecircuit {

// The text between double quotes, as error messages show a rejected value.
std::string quoted(std::string_view text);

}  // namespace coupecircuit
