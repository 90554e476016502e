// What the tests of coupecircuitd.conf's sections share.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>

#include "daemon_config.hpp"

namespace coupecircuit::test {

// Expects the text to be rejected with a message starting "test.conf:<line>: "
// and containing each fragment.
inline void expect_config_error(std::string_view text, int line, std::initializer_list<std::string_view> fragments) {
  const auto parsed = parse_daemon_config_text(text, "test.conf");
  ASSERT_FALSE(parsed.has_value()) << "accepted:\n" << text;
  const std::string& message = parsed.error().message;
  const std::string prefix = "test.conf:" + std::to_string(line) + ": ";
  EXPECT_EQ(message.substr(0, prefix.size()), prefix) << message;
  for (const auto fragment : fragments) {
    EXPECT_NE(message.find(std::string(fragment)), std::string::npos)
        << "message \"" << message << "\" lacks \"" << fragment << "\"";
  }
}

}  // namespace coupecircuit::test
