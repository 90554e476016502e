// Classifier throughput per session format, on the same sessions: the seed
// corpus of tests/fuzz/corpus/session_classifier holds the same $_SESSION
// contents written by PHP with each serialize_handler (<case>.<handler>).
// For each handler, classifies every file of that handler repeatedly with
// the format fixed and with automatic detection, and prints MB/s,
// sessions/s and the cost per byte relative to the php format.
//
// Usage: classifier_bench CORPUS_DIR [SECONDS_PER_ROW]
//        classifier_bench CORPUS_DIR --passes HANDLER PASSES
// The second form classifies the files of one handler (format fixed)
// exactly PASSES times and prints the bytes and sessions classified: run it
// under callgrind (--toggle-collect=*classify_pass*) for instruction counts
// per byte that the machine's load does not disturb (bench/classifier.sh).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "session_classifier.hpp"

namespace {

using coupecircuit::ClassifierRule;
using coupecircuit::SessionFormat;

struct Row {
  std::string handler;
  std::string mode;
  double mb_per_s = 0;
  double sessions_per_s = 0;
  double ns_per_byte = 0;
  double ns_per_session = 0;
};

std::vector<std::string> load(const std::filesystem::path& dir, const std::string& handler) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != "." + handler) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    out.push_back(text.str());
  }
  return out;
}

Row measure(const std::vector<std::string>& files, const ClassifierRule& rule, double seconds) {
  std::size_t bytes_per_pass = 0;
  for (const auto& f : files) bytes_per_pass += f.size();
  const auto start = std::chrono::steady_clock::now();
  std::size_t passes = 0;
  unsigned sink = 0;
  double elapsed = 0;
  do {
    for (int repeat = 0; repeat < 20; ++repeat) {
      for (const auto& f : files) sink += static_cast<unsigned>(coupecircuit::classify_session(f, false, rule));
    }
    passes += 20;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  if (sink == 0xffffffffU) std::puts("");  // keeps the calls
  Row row;
  const double bytes = static_cast<double>(bytes_per_pass) * static_cast<double>(passes);
  const double sessions = static_cast<double>(files.size()) * static_cast<double>(passes);
  row.mb_per_s = bytes / elapsed / 1e6;
  row.sessions_per_s = sessions / elapsed;
  row.ns_per_byte = elapsed * 1e9 / bytes;
  row.ns_per_session = elapsed * 1e9 / sessions;
  return row;
}

// One pass over the files; its own function for callgrind's --toggle-collect.
__attribute__((noinline)) unsigned classify_pass(const std::vector<std::string>& files, const ClassifierRule& rule) {
  unsigned sink = 0;
  for (const auto& f : files) sink += static_cast<unsigned>(coupecircuit::classify_session(f, false, rule));
  return sink;
}

int count_passes(const std::filesystem::path& dir, const std::string& handler, unsigned long passes) {
  const auto files = load(dir, handler);
  ClassifierRule rule;
  rule.format = coupecircuit::parse_session_format(handler).value();
  std::size_t bytes = 0;
  for (const auto& f : files) bytes += f.size();
  unsigned sink = 0;
  for (unsigned long i = 0; i < passes; ++i) sink += classify_pass(files, rule);
  std::printf("%s files %zu bytes %zu passes %lu sink %u\n", handler.c_str(), files.size(), bytes, passes, sink);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[2]) == "--passes") {
    return count_passes(argv[1], argv[3], std::strtoul(argv[4], nullptr, 10));
  }
  if (argc < 2) {
    std::fputs("usage: classifier_bench CORPUS_DIR [SECONDS_PER_ROW]\n", stderr);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const double seconds = argc > 2 ? std::strtod(argv[2], nullptr) : 2.0;
  std::vector<Row> rows;
  for (const std::string handler : {"php", "php_serialize", "php_binary", "igbinary"}) {
    const auto files = load(dir, handler);
    if (files.empty()) {
      std::fprintf(stderr, "no *.%s file in %s\n", handler.c_str(), dir.c_str());
      return 1;
    }
    ClassifierRule fixed;
    fixed.format = coupecircuit::parse_session_format(handler).value();
    for (const bool automatic : {false, true}) {
      ClassifierRule rule = fixed;
      if (automatic) rule.format = SessionFormat::automatic;
      Row row = measure(files, rule, seconds);
      row.handler = handler;
      row.mode = automatic ? "auto" : "fixed";
      rows.push_back(row);
    }
  }
  const double php_fixed = rows[0].ns_per_byte;
  const double php_session = rows[0].ns_per_session;
  std::printf("| handler | format | MB/s | sessions/s | ns/byte | ns/byte vs php | ns/session vs php |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    std::printf("| %s | %s | %.0f | %.0f | %.2f | %.2f× | %.2f× |\n", r.handler.c_str(), r.mode.c_str(), r.mb_per_s,
                r.sessions_per_s, r.ns_per_byte, r.ns_per_byte / php_fixed, r.ns_per_session / php_session);
  }
  return 0;
}
