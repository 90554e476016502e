#include "text.hpp"

namespace coupecircuit {

// Built by appending: GCC 12 reports a false -Wrestrict (-O2 and above) on
// "\"" + std::string(text) + "\"".
std::string quoted(std::string_view text) {
  std::string result;
  result.reserve(text.size() + 2);
  result += '"';
  result += text;
  result += '"';
  return result;
}

}  // namespace coupecircuit
