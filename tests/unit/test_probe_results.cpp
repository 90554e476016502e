// Unit tests of common/probe_results.cpp: the results file handed from
// coupecircuit-probes to coupecircuitd. The parser is the boundary between an
// unprivileged program and a root one: every rule is tested for rejection.
#include "probe_results.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <string_view>

#include "unit_test_support.hpp"

namespace coupecircuit::probes {
namespace {

using test::TempDir;

ProbeResults sample_results() {
  ProbeResults results;
  results.written_wall_ms = 1'700'000'000'123;
  results.pid = 4242;
  results.stale_after_ms = 15'000;
  ProbeResult pg;
  pg.name = "main-db";
  pg.type = ProbeType::postgresql;
  pg.critical = true;
  pg.status = ProbeStatus::up;
  pg.since_wall_s = 1'700'000'000;
  pg.latency_us = 1830;
  pg.saturation_pct = 57;
  ProbeResult elastic;
  elastic.name = "elastic_1";
  elastic.type = ProbeType::http;
  elastic.status = ProbeStatus::down;
  elastic.since_wall_s = 1'699'999'990;
  elastic.latency_us = 2'000'000;
  elastic.error = "timeout after 2000 ms";
  results.probes = {pg, elastic};
  return results;
}

std::string probe_json(std::string_view fields) {
  return R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"pid":2,"stale_after_ms":15000,"probes":[{)" +
         std::string(fields) + "}]}";
}

constexpr std::string_view kMinimalProbe = R"("name":"pg","type":"postgresql","status":"up")";

TEST(ProbeResults, RenderThenParseGivesTheSameResults) {
  const auto results = sample_results();
  const auto text = render_probe_results(results);
  auto parsed = parse_probe_results(text);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed, results);
  EXPECT_NE(text.find(R"("format":"coupecircuit-probes/1")"), std::string::npos);
  EXPECT_NE(text.find(R"("saturation_pct":57)"), std::string::npos);
  // saturation only when measured
  EXPECT_EQ(text.find("saturation_pct", text.find("elastic_1")), std::string::npos);
}

TEST(ProbeResults, TheBriefsExampleParses) {
  auto parsed = parse_probe_results(
      R"({"format":"coupecircuit-probes/1","written_wall_ms":1700000000000,"pid":7,"stale_after_ms":15000,
          "probes":[{"name":"pg","type":"postgresql","critical":true,"status":"down","since_wall_s":1700000000,
                     "latency_us":0,"error":"connection refused"}]})");
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->probes.size(), 1U);
  EXPECT_EQ(parsed->probes[0].status, ProbeStatus::down);
  EXPECT_TRUE(parsed->probes[0].critical);
  EXPECT_FALSE(parsed->probes[0].saturation_pct.has_value());
  EXPECT_EQ(parsed->probes[0].error, "connection refused");
}

TEST(ProbeResults, RenderTrimsTheErrorText) {
  auto results = sample_results();
  results.probes[1].error = "could not connect:\n\tFATAL:  too many\x01 clients \xc3\xa9" + std::string(200, 'x');
  const auto text = render_probe_results(results);
  auto parsed = parse_probe_results(text);
  ASSERT_TRUE(parsed) << parsed.error().message;
  const auto& error = parsed->probes[1].error;
  EXPECT_EQ(error.size(), kMaxErrorBytes);
  EXPECT_EQ(error.rfind("could not connect: FATAL: too many? clients ??xxx", 0), 0U) << error;
}

TEST(ProbeResults, TrimProbeError) {
  EXPECT_EQ(trim_probe_error(""), "");
  EXPECT_EQ(trim_probe_error("  \n "), "");
  EXPECT_EQ(trim_probe_error(" a\r\nb  "), "a b");
  EXPECT_EQ(trim_probe_error(std::string(79, 'e') + " more"), std::string(79, 'e'));
  EXPECT_EQ(trim_probe_error("\x1b[31mred"), "?[31mred");
}

TEST(ProbeResults, GarbageIsRejected) {
  for (const std::string_view text : {"", "garbage", "{", "[]", "null", "42", R"("text")", "{}{}",
                                      R"({"format":"coupecircuit-probes/1")", "\xff\xfe{}"}) {
    EXPECT_FALSE(parse_probe_results(text)) << text;
  }
}

TEST(ProbeResults, FormatAndRequiredKeys) {
  EXPECT_FALSE(
      parse_probe_results(R"({"format":"coupecircuit-probes/2","written_wall_ms":1,"stale_after_ms":1,"probes":[]})"));
  EXPECT_FALSE(parse_probe_results(R"({"written_wall_ms":1,"stale_after_ms":1,"probes":[]})"));
  EXPECT_FALSE(parse_probe_results(R"({"format":"coupecircuit-probes/1","stale_after_ms":1,"probes":[]})"));
  EXPECT_FALSE(parse_probe_results(R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"probes":[]})"));
  EXPECT_FALSE(parse_probe_results(R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"stale_after_ms":1})"));
  auto empty =
      parse_probe_results(R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"stale_after_ms":1,"probes":[]})");
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(empty->probes.empty());
  auto unknown = parse_probe_results(
      R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"stale_after_ms":1,"probes":[],"extra":1})");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("extra"), std::string::npos);
}

TEST(ProbeResults, OversizedIsRejected) {
  std::string text = probe_json(std::string(kMinimalProbe) + R"(,"error":")");
  text.insert(text.size() - 3, std::string(kMaxResultsBytes, 'x'));
  auto parsed = parse_probe_results(text);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("65536"), std::string::npos) << parsed.error().message;
  // Padding with white space counts too: the limit is on bytes, not content.
  std::string padded = probe_json(kMinimalProbe) + std::string(kMaxResultsBytes, ' ');
  EXPECT_FALSE(parse_probe_results(padded));
}

TEST(ProbeResults, AtMostSixteenProbes) {
  auto make = [](int count) {
    std::string text = R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"stale_after_ms":1,"probes":[)";
    for (int i = 0; i < count; ++i) {
      if (i > 0) text += ",";
      text += R"({"name":"p)" + std::to_string(i) + R"(","type":"tcp","status":"up"})";
    }
    return text + "]}";
  };
  auto sixteen = parse_probe_results(make(16));
  ASSERT_TRUE(sixteen) << sixteen.error().message;
  EXPECT_EQ(sixteen->probes.size(), 16U);
  auto seventeen = parse_probe_results(make(17));
  ASSERT_FALSE(seventeen);
  EXPECT_NE(seventeen.error().message.find("more than 16"), std::string::npos);
}

TEST(ProbeResults, NamesOutsideTheAlphabetAreRejected) {
  for (const std::string_view name : {"", "a b", "pg\\n", "pg\\u0001", "pg\\u001b[31m", "caf\\u00e9", "a.b", "a/b",
                                      "abcdefghijklmnopqrstuvwxyz012345", "x\\u0000y"}) {
    auto parsed =
        parse_probe_results(probe_json(R"("name":")" + std::string(name) + R"(","type":"tcp","status":"up")"));
    EXPECT_FALSE(parsed) << name;
  }
  for (const std::string_view name : {"a", "PG-main_2", "abcdefghijklmnopqrstuvwxyz01234"}) {
    auto parsed =
        parse_probe_results(probe_json(R"("name":")" + std::string(name) + R"(","type":"tcp","status":"up")"));
    EXPECT_TRUE(parsed) << name << ": " << parsed.error().message;
  }
}

TEST(ProbeResults, ErrorMessagesDoNotEchoControlCharacters) {
  auto parsed = parse_probe_results(probe_json(R"("name":"pg\u001b[2J","type":"tcp","status":"up")"));
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().message.find('\x1b'), std::string::npos) << parsed.error().message;
}

TEST(ProbeResults, BadTypesAndStatusAreRejected) {
  const std::string_view bad[] = {
      R"("name":"pg","type":"mongodb","status":"up")",
      R"("name":"pg","type":"tcp","status":"green")",
      R"("name":"pg","type":"tcp","status":"UP")",
      R"("name":"pg","type":"tcp","status":1)",
      R"("name":"pg","type":"tcp")",
      R"("name":"pg","status":"up")",
      R"("type":"tcp","status":"up")",
      R"("name":7,"type":"tcp","status":"up")",
      R"("name":"pg","type":"tcp","status":"up","critical":"yes")",
      R"("name":"pg","type":"tcp","status":"up","latency_us":-1)",
      R"("name":"pg","type":"tcp","status":"up","latency_us":1.5)",
      R"("name":"pg","type":"tcp","status":"up","latency_us":4294967296)",
      R"("name":"pg","type":"tcp","status":"up","saturation_pct":1001)",
      R"("name":"pg","type":"tcp","status":"up","saturation_pct":"57")",
      R"("name":"pg","type":"tcp","status":"up","since_wall_s":-5)",
      R"("name":"pg","type":"tcp","status":"up","bogus":1)",
  };
  for (const auto fields : bad) EXPECT_FALSE(parse_probe_results(probe_json(fields))) << fields;
  EXPECT_FALSE(
      parse_probe_results(R"({"format":"coupecircuit-probes/1","written_wall_ms":-1,"stale_after_ms":1,"probes":[]})"));
  EXPECT_FALSE(parse_probe_results(
      R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"stale_after_ms":"1","probes":[]})"));
  EXPECT_FALSE(
      parse_probe_results(R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"stale_after_ms":1,"probes":{}})"));
  EXPECT_FALSE(
      parse_probe_results(R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"stale_after_ms":1,"probes":[1]})"));
}

TEST(ProbeResults, ErrorTextMustBePrintableAndShort) {
  EXPECT_TRUE(
      parse_probe_results(probe_json(std::string(kMinimalProbe) + R"(,"error":")" + std::string(79, 'e') + "\"")));
  EXPECT_FALSE(
      parse_probe_results(probe_json(std::string(kMinimalProbe) + R"(,"error":")" + std::string(80, 'e') + "\"")));
  EXPECT_FALSE(parse_probe_results(probe_json(std::string(kMinimalProbe) + R"(,"error":"a\nb")")));
  EXPECT_FALSE(parse_probe_results(probe_json(std::string(kMinimalProbe) + R"(,"error":"\u001b[2J")")));
  EXPECT_FALSE(parse_probe_results(probe_json(std::string(kMinimalProbe) + R"(,"error":"caf\u00e9")")));
  EXPECT_FALSE(parse_probe_results(probe_json(std::string(kMinimalProbe) + R"(,"error":null)")));
}

TEST(ProbeResults, DuplicatesAreRejected) {
  auto names = parse_probe_results(
      R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"stale_after_ms":1,"probes":[
          {"name":"pg","type":"tcp","status":"up"},{"name":"pg","type":"tcp","status":"down"}]})");
  ASSERT_FALSE(names);
  EXPECT_NE(names.error().message.find("duplicate"), std::string::npos);
  // The same key twice: nlohmann would keep the last value silently.
  EXPECT_FALSE(parse_probe_results(probe_json(R"("name":"pg","type":"tcp","status":"down","status":"up")")));
  EXPECT_FALSE(parse_probe_results(
      R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"written_wall_ms":2,"stale_after_ms":1,"probes":[]})"));
  // The same key in two different objects is fine.
  EXPECT_TRUE(parse_probe_results(
      R"({"format":"coupecircuit-probes/1","written_wall_ms":1,"stale_after_ms":1,"probes":[
          {"name":"a","type":"tcp","status":"up"},{"name":"b","type":"tcp","status":"up"}]})"));
}

TEST(ProbeResults, SaturationVariableName) {
  EXPECT_EQ(saturation_variable_name("pg"), "SATURATION_PG");
  EXPECT_EQ(saturation_variable_name("main-db_2"), "SATURATION_MAIN_DB_2");
  EXPECT_EQ(saturation_variable_name("MiXeD"), "SATURATION_MIXED");
}

TEST(ProbeResults, Staleness) {
  ProbeResults results;
  results.written_wall_ms = 1'000'000;
  results.stale_after_ms = 15'000;
  EXPECT_FALSE(results_are_stale(results, 1'000'000));
  EXPECT_FALSE(results_are_stale(results, 1'015'000));
  EXPECT_TRUE(results_are_stale(results, 1'015'001));
  EXPECT_TRUE(results_are_stale(results, 900'000));  // from the future
  results.stale_after_ms = 0;                        // clamped to 1 s
  EXPECT_FALSE(results_are_stale(results, 1'000'999));
  EXPECT_TRUE(results_are_stale(results, 1'001'001));
  results.stale_after_ms = 86'400'000;  // clamped to 10 min
  EXPECT_TRUE(results_are_stale(results, 1'000'000 + 600'001));
  EXPECT_EQ(clamp_stale_after_ms(-5), kMinStaleAfterMs);
  EXPECT_EQ(clamp_stale_after_ms(5000), 5000);
}

TEST(ProbeResults, ReadFileChecksTheFile) {
  TempDir dir;
  const auto path = dir / "probes.json";
  auto missing = read_probe_results_file(path);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ENOENT);

  test::write_file(path, render_probe_results(sample_results()));
  auto good = read_probe_results_file(path);
  ASSERT_TRUE(good) << good.error().message;
  EXPECT_EQ(*good, sample_results());

  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  auto writable = read_probe_results_file(path);
  ASSERT_FALSE(writable);
  EXPECT_NE(writable.error().message.find("world-writable"), std::string::npos);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);

  const auto link = dir / "link.json";
  ASSERT_EQ(::symlink(path.c_str(), link.c_str()), 0);
  EXPECT_FALSE(read_probe_results_file(link));

  EXPECT_FALSE(read_probe_results_file(dir.path()));

  const auto fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  auto from_fifo = read_probe_results_file(fifo);  // never blocks
  ASSERT_FALSE(from_fifo);
  EXPECT_NE(from_fifo.error().message.find("regular"), std::string::npos);

  test::write_file(path, std::string(kMaxResultsBytes + 1, ' '));
  auto big = read_probe_results_file(path);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("larger"), std::string::npos);

  test::write_file(path, "garbage");
  auto garbage = read_probe_results_file(path);
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message.find(path), std::string::npos);
}

}  // namespace
}  // namespace coupecircuit::probes
