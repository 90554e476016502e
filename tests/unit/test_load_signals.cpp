// Unit tests of common/load_signals.cpp: parsers of /proc/loadavg,
// /proc/pressure/* and /proc/meminfo, and read_load_signals against a fake
// proc root and the real /proc.
#include "load_signals.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "unit_test_support.hpp"

namespace coupecircuit {
namespace {

using test::TempDir;
using test::write_file;

constexpr std::string_view kLoadavg = "0.52 1.58 12.59 3/389 123456\n";

constexpr std::string_view kPsiCpu =
    "some avg10=1.23 avg60=0.50 avg300=0.10 total=123456789\n"
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
constexpr std::string_view kPsiMemory =
    "some avg10=45.67 avg60=10.00 avg300=2.00 total=1000\n"
    "full avg10=40.00 avg60=9.00 avg300=1.00 total=900\n";
constexpr std::string_view kPsiIo =
    "some avg10=100.00 avg60=99.00 avg300=98.00 total=99999999\n"
    "full avg10=90.00 avg60=80.00 avg300=70.00 total=8888888\n";

constexpr std::string_view kMeminfo =
    "MemTotal:       16000000 kB\n"
    "MemFree:         1000000 kB\n"
    "MemAvailable:    4000000 kB\n"
    "Buffers:          200000 kB\n"
    "Cached:          2500000 kB\n"
    "SwapCached:        10000 kB\n"
    "Active:          5000000 kB\n"
    "SwapTotal:       2000000 kB\n"
    "SwapFree:        1500000 kB\n"
    "Dirty:               100 kB\n"
    "HugePages_Total:       0\n"
    "Hugepagesize:       2048 kB\n"
    "DirectMap1G:    12582912 kB\n";

// ---- parse_loadavg

TEST(ParseLoadavg, ReadsTheThreeAverages) {
  const auto parsed = parse_loadavg(kLoadavg);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(*parsed, (std::array<std::uint32_t, 3>{52, 158, 1259}));
}

TEST(ParseLoadavg, AcceptsExtraWhitespaceBetweenFields) {
  const auto parsed = parse_loadavg("  0.00\t1.5  2 1/1 1");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(*parsed, (std::array<std::uint32_t, 3>{0, 150, 200}));
}

TEST(ParseLoadavg, RejectsMalformedText) {
  for (const std::string_view text : {"", "\n", "0.52 0.58", "0.52 0.58\n", "abc 0.1 0.2", "-1.00 0.00 0.00",
                                      "0.521 0.00 0.00", "0.52,0.58,0.59", "0.52 0.58 x"}) {
    const auto parsed = parse_loadavg(text);
    EXPECT_FALSE(parsed.has_value()) << "accepted \"" << text << "\"";
    if (!parsed) {
      EXPECT_NE(parsed.error().message.find("loadavg"), std::string::npos) << parsed.error().message;
    }
  }
}

// ---- parse_psi_some_avg10

TEST(ParsePsi, ReadsSomeAvg10) {
  EXPECT_EQ(parse_psi_some_avg10(kPsiCpu).value(), 123U);
  EXPECT_EQ(parse_psi_some_avg10(kPsiMemory).value(), 4567U);
  EXPECT_EQ(parse_psi_some_avg10(kPsiIo).value(), 10000U);
  // Older kernels print only the "some" line for cpu.
  EXPECT_EQ(parse_psi_some_avg10("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").value(), 0U);
  EXPECT_EQ(parse_psi_some_avg10("some avg10=7.5").value(), 750U);
}

TEST(ParsePsi, RejectsMalformedText) {
  for (const std::string_view text :
       {"", "\n", "full avg10=1.00 avg60=0.00 avg300=0.00 total=0\nsome avg10=2.00 avg60=0 avg300=0 total=0\n",
        "some avg60=1.00 avg10=2.00 total=0\n", "some avg10=abc avg60=0.00\n", "some avg10= avg60=0.00\n",
        "some avg10=1.234 avg60=0.00\n", "some avg10=-1.00\n", "some\n", "somex avg10=1.00\n",
        "\nsome avg10=1.00 avg60=0.00 avg300=0.00 total=0\n"}) {
    EXPECT_FALSE(parse_psi_some_avg10(text).has_value()) << "accepted \"" << text << "\"";
  }
}

// ---- parse_meminfo

TEST(ParseMeminfo, ComputesAvailableAndSwapUsedPercentages) {
  const auto parsed = parse_meminfo(kMeminfo);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->available_centi_pct, 2500U);  // 4000000 / 16000000
  EXPECT_EQ(parsed->swap_used_centi_pct, 2500U);  // (2000000 - 1500000) / 2000000
}

TEST(ParseMeminfo, NoSwapIsZeroPercentUsed) {
  const auto parsed = parse_meminfo("MemTotal: 1000 kB\nMemAvailable: 333 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->available_centi_pct, 3330U);
  EXPECT_EQ(parsed->swap_used_centi_pct, 0U);

  const auto no_swap_lines = parse_meminfo("MemTotal: 1000 kB\nMemAvailable: 1000 kB\n");
  ASSERT_TRUE(no_swap_lines.has_value()) << no_swap_lines.error().message;
  EXPECT_EQ(no_swap_lines->available_centi_pct, 10000U);
  EXPECT_EQ(no_swap_lines->swap_used_centi_pct, 0U);
}

TEST(ParseMeminfo, InconsistentSwapIsIgnored) {
  const auto parsed = parse_meminfo("MemTotal: 1000 kB\nMemAvailable: 500 kB\nSwapTotal: 100 kB\nSwapFree: 200 kB\n");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->swap_used_centi_pct, 0U);
}

TEST(ParseMeminfo, WithoutTrailingNewline) {
  const auto parsed = parse_meminfo("MemTotal: 200 kB\nMemAvailable: 50 kB");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->available_centi_pct, 2500U);
}

TEST(ParseMeminfo, RejectsMissingOrMalformedFields) {
  for (const std::string_view text :
       {"", "MemTotal: 1000 kB\n", "MemAvailable: 1000 kB\n", "MemTotal: 0 kB\nMemAvailable: 0 kB\n",
        "MemTotal: abc kB\nMemAvailable: 10 kB\n", "MemTotal: 1000 kB\nMemAvailable: -1 kB\n",
        "MemTotal: 1000 kB\nMemAvailable: 10 kB\nSwapTotal: x kB\n",
        "MemTotal: 99999999999999999999 kB\nMemAvailable: 10 kB\n", "MemTotal 1000 kB\nMemAvailable 10 kB\n"}) {
    EXPECT_FALSE(parse_meminfo(text).has_value()) << "accepted \"" << text << "\"";
  }
  const auto bad = parse_meminfo("MemTotal: abc kB\nMemAvailable: 10 kB\n");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("MemTotal"), std::string::npos) << bad.error().message;
}

// ---- read_load_signals

void make_fake_proc(const TempDir& root, bool with_pressure) {
  write_file(root / "loadavg", kLoadavg);
  write_file(root / "meminfo", kMeminfo);
  if (with_pressure) {
    test::make_directory(root / "pressure");
    write_file(root / "pressure/cpu", kPsiCpu);
    write_file(root / "pressure/memory", kPsiMemory);
    write_file(root / "pressure/io", kPsiIo);
  }
}

TEST(ReadLoadSignals, ReadsEverySignalFromAFakeProcRoot) {
  TempDir root;
  ASSERT_NO_FATAL_FAILURE(make_fake_proc(root, true));
  const auto signals = read_load_signals(root.path());
  ASSERT_TRUE(signals.has_value()) << signals.error().message;
  EXPECT_EQ(signals->load_centi, (std::array<std::uint32_t, 3>{52, 158, 1259}));
  EXPECT_TRUE(signals->psi_available);
  EXPECT_EQ(signals->psi_some_avg10_centi, (std::array<std::uint32_t, 3>{123, 4567, 10000}));
  EXPECT_EQ(signals->mem_available_centi_pct, 2500U);
  EXPECT_EQ(signals->swap_used_centi_pct, 2500U);
}

TEST(ReadLoadSignals, WithoutPressureDirectoryPsiIsUnavailableNotAnError) {
  TempDir root;
  ASSERT_NO_FATAL_FAILURE(make_fake_proc(root, false));
  const auto signals = read_load_signals(root.path());
  ASSERT_TRUE(signals.has_value()) << signals.error().message;
  EXPECT_FALSE(signals->psi_available);
  EXPECT_EQ(signals->psi_some_avg10_centi, (std::array<std::uint32_t, 3>{0, 0, 0}));
  EXPECT_EQ(signals->load_centi[0], 52U);
  EXPECT_EQ(signals->mem_available_centi_pct, 2500U);
}

TEST(ReadLoadSignals, OneBadPressureFileMakesPsiUnavailableAndClearsValues) {
  TempDir root;
  ASSERT_NO_FATAL_FAILURE(make_fake_proc(root, true));
  // cpu parses, then io is malformed: no partial PSI values are kept.
  write_file(root / "pressure/io", "garbage\n");
  const auto signals = read_load_signals(root.path());
  ASSERT_TRUE(signals.has_value()) << signals.error().message;
  EXPECT_FALSE(signals->psi_available);
  EXPECT_EQ(signals->psi_some_avg10_centi, (std::array<std::uint32_t, 3>{0, 0, 0}));

  ASSERT_EQ(::unlink((root / "pressure/io").c_str()), 0);
  const auto missing_io = read_load_signals(root.path());
  ASSERT_TRUE(missing_io.has_value()) << missing_io.error().message;
  EXPECT_FALSE(missing_io->psi_available);
}

// A file of a fake /proc root missing (an error naming it, ENOENT), then
// holding `bad` (an error).
void expect_missing_or_bad_is_an_error(const char* name, bool with_psi, const char* bad) {
  TempDir root;
  ASSERT_NO_FATAL_FAILURE(make_fake_proc(root, with_psi));
  ASSERT_EQ(::unlink((root / name).c_str()), 0);
  const auto missing = read_load_signals(root.path());
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find(root / name), std::string::npos) << missing.error().message;
  EXPECT_EQ(missing.error().code, ENOENT);

  write_file(root / name, bad);
  EXPECT_FALSE(read_load_signals(root.path()).has_value());
}

TEST(ReadLoadSignals, MissingOrBadLoadavgIsAnErrorNamingTheFile) {
  expect_missing_or_bad_is_an_error("loadavg", true, "not a load average\n");
}

TEST(ReadLoadSignals, MissingOrBadMeminfoIsAnErrorNamingTheFile) {
  expect_missing_or_bad_is_an_error("meminfo", false, "MemFree: 10 kB\n");
}

TEST(ReadLoadSignals, MissingProcRootIsAnError) {
  TempDir root;
  EXPECT_FALSE(read_load_signals(root / "does-not-exist").has_value());
}

TEST(ReadLoadSignals, ReadsTheRealProc) {
  const auto signals = read_load_signals();
  ASSERT_TRUE(signals.has_value()) << signals.error().message;
  EXPECT_LE(signals->mem_available_centi_pct, 10000U);
  EXPECT_GT(signals->mem_available_centi_pct, 0U);
  EXPECT_LE(signals->swap_used_centi_pct, 10000U);

  // PSI is reported available exactly when all three pressure files parse.
  bool psi_readable = true;
  for (const char* resource : {"cpu", "memory", "io"}) {
    const std::string path = std::string("/proc/pressure/") + resource;
    if (::access(path.c_str(), R_OK) != 0) {
      psi_readable = false;
      break;
    }
    const std::string text = test::read_file(path);
    psi_readable = psi_readable && parse_psi_some_avg10(text).has_value();
  }
  EXPECT_EQ(signals->psi_available, psi_readable);
  if (!signals->psi_available) {
    EXPECT_EQ(signals->psi_some_avg10_centi, (std::array<std::uint32_t, 3>{0, 0, 0}));
  }
  for (const auto value : signals->psi_some_avg10_centi) EXPECT_LE(value, 10000U);

  // The load average agrees with a direct parse of /proc/loadavg to within
  // what can change between two reads.
  const auto direct = parse_loadavg(test::read_file("/proc/loadavg"));
  ASSERT_TRUE(direct.has_value()) << direct.error().message;
  EXPECT_NEAR(static_cast<double>(signals->load_centi[2]), static_cast<double>((*direct)[2]), 100.0);
}

}  // namespace
}  // namespace coupecircuit
