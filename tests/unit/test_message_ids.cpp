// The message-ID registry (common/message_ids.hpp) against the sources and
// the man pages: every ID written in the code is registered exactly once,
// every registered ID is documented exactly once (a ".B CCnnnn" entry in
// docs/man), and no two names share a number.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "message_ids.hpp"

namespace coupecircuit {
namespace {

namespace fs = std::filesystem;

const fs::path kSourceRoot = fs::path(__FILE__).parent_path().parent_path().parent_path();

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// ID -> first file using it, over the program sources (not the registry).
std::map<std::string, std::string> ids_in_sources() {
  std::map<std::string, std::string> found;
  const std::regex pattern("CC[0-9]{4}");
  for (const char* directory : {"common", "scanner", "probes", "ctl", "mod_coupecircuit"}) {
    for (const auto& entry : fs::recursive_directory_iterator(kSourceRoot / directory)) {
      const auto extension = entry.path().extension();
      if (!entry.is_regular_file() || (extension != ".cpp" && extension != ".hpp")) continue;
      if (entry.path().filename() == "message_ids.hpp") continue;
      const std::string text = read_text(entry.path());
      for (std::sregex_iterator it(text.begin(), text.end(), pattern), end; it != end; ++it) {
        found.emplace(it->str(), entry.path().string());
      }
    }
  }
  return found;
}

TEST(MessageIds, EachRegisteredOnceWithOneMeaning) {
  std::set<std::string_view> seen;
  for (const auto& entry : log::kMessageIds) {
    EXPECT_TRUE(seen.insert(entry.id).second) << entry.id << " is registered twice";
    EXPECT_FALSE(entry.meaning.empty()) << entry.id;
  }
}

TEST(MessageIds, EveryIdInTheCodeIsRegistered) {
  const auto used = ids_in_sources();
  ASSERT_TRUE(fs::exists(kSourceRoot / "mod_coupecircuit" / "mod_coupecircuit.cpp"))
      << "the sources were not found under " << kSourceRoot;
  for (const auto& [id, file] : used) {
    EXPECT_TRUE(log::is_registered(id)) << id << " used in " << file << " is not in common/message_ids.hpp";
  }
}

TEST(MessageIds, EveryRegisteredIdIsDocumentedOnceInTheManPages) {
  std::string pages;
  for (const auto& entry : fs::directory_iterator(kSourceRoot / "docs/man")) pages += read_text(entry.path()) + "\n";
  for (const auto& entry : log::kMessageIds) {
    const std::string heading = "\n.B " + std::string(entry.id) + "\n";
    std::size_t count = 0;
    for (auto at = pages.find(heading); at != std::string::npos; at = pages.find(heading, at + 1)) ++count;
    EXPECT_EQ(count, 1U) << entry.id << " (" << entry.meaning << ") must have one entry in docs/man";
  }
}

}  // namespace
}  // namespace coupecircuit
