#include "decimal.hpp"
#include "text.hpp"

namespace coupecircuit {
namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

}  // namespace

Result<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t max) {
  if (text.empty()) return make_error("expected a non-negative integer, got an empty value");
  std::uint64_t value = 0;
  for (const char c : text) {
    if (!is_digit(c)) return make_error("expected a non-negative integer, got " + quoted(text));
    const auto digit = static_cast<std::uint64_t>(c - '0');
    // value * 10 + digit <= max, written so that nothing wraps around.
    if (digit > max || value > (max - digit) / 10) {
      return make_error(quoted(text) + " is too large (maximum " + std::to_string(max) + ")");
    }
    value = value * 10 + digit;
  }
  return value;
}

Result<std::uint64_t> parse_centi(std::string_view text, std::uint64_t max) {
  const auto dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  if (whole.empty() || (dot != std::string_view::npos && fraction.empty())) {
    return make_error("expected a number such as 4 or 4.50, got " + quoted(text));
  }
  if (fraction.size() > 2) return make_error(quoted(text) + " has more than two decimals");
  auto integer = parse_unsigned(whole, max / 100);
  if (!integer) return make_error("expected a number such as 4 or 4.50, got " + quoted(text));
  std::uint64_t hundredths = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    hundredths *= 10;
    if (i < fraction.size()) {
      if (!is_digit(fraction[i])) return make_error("expected a number such as 4 or 4.50, got " + quoted(text));
      hundredths += static_cast<std::uint64_t>(fraction[i] - '0');
    }
  }
  // *integer <= max / 100, so *integer * 100 <= max; compare before adding
  // the hundredths so that a max near 2^64 cannot wrap the sum around.
  const std::uint64_t whole_centi = *integer * 100;
  if (hundredths > max - whole_centi) return make_error(quoted(text) + " is too large");
  return whole_centi + hundredths;
}

std::size_t render_unsigned(char* buffer, std::size_t capacity, std::uint64_t value) noexcept {
  if (capacity == 0) return 0;
  char digits[24];
  std::size_t count = 0;
  do {
    digits[count++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  std::size_t length = 0;
  while (count > 0 && length + 1 < capacity) buffer[length++] = digits[--count];
  buffer[length] = '\0';
  return length;
}

std::size_t render_centi(char* buffer, std::size_t capacity, std::uint64_t centi) noexcept {
  std::size_t length = render_unsigned(buffer, capacity, centi / 100);
  if (length + 4 > capacity) return length;
  buffer[length++] = '.';
  buffer[length++] = static_cast<char>('0' + (centi / 10) % 10);
  buffer[length++] = static_cast<char>('0' + centi % 10);
  buffer[length] = '\0';
  return length;
}

std::string centi_to_string(std::uint64_t centi) {
  char buffer[32];
  const std::size_t length = render_centi(buffer, sizeof buffer, centi);
  return {buffer, length};
}

}  // namespace coupecircuit
