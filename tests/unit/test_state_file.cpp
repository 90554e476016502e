// Unit tests of common/state_file.cpp: the control state's JSON parser and
// serializer, validation errors, file loading and atomic saving, and its
// projection into a snapshot payload.
#include "state_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "decimal.hpp"
#include "snapshot.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit {
namespace {

using test::TempDir;

constexpr std::string_view kExample = R"({"version":1,
  "cut":{"active":true,"reason":"DB maintenance","since":1700000000},
  "thresholds":{"global":{"sessions":500,"load":"8.00"},
                "vhosts":{"www.example.org":{"sessions":200}}}})";

ControlState sample_state() {
  ControlState state;
  state.cut_active = true;
  state.cut_reason =
      "Maintenance base de donn\xc3\xa9"
      "es";
  state.cut_since = 1'700'000'123;
  state.global.sessions = 500;
  state.global.load_centi = 800;
  state.vhosts["www.example.org"].sessions = 200;
  state.vhosts["api.example.org"].load_centi = 450;
  state.vhosts["[::1]:8080"].sessions = 1;
  state.vhosts["[::1]:8080"].load_centi = 5;
  return state;
}

// Expects parse_state(text) to fail with a message containing `fragment`.
void expect_rejected(std::string_view text, std::string_view fragment) {
  const auto parsed = parse_state(text);
  ASSERT_FALSE(parsed.has_value()) << "accepted: " << text;
  EXPECT_NE(parsed.error().message.find(std::string(fragment)), std::string::npos)
      << "message \"" << parsed.error().message << "\" lacks \"" << fragment << "\" for " << text;
}

std::string with_version(std::string_view body) {
  return std::string(R"({"version":1)") + (body.empty() ? "" : ",") + std::string(body) + "}";
}

// ---- parse / serialize

TEST(ParseState, ReadsTheDocumentedExample) {
  const auto state = parse_state(kExample);
  ASSERT_TRUE(state.has_value()) << state.error().message;
  EXPECT_TRUE(state->cut_active);
  EXPECT_EQ(state->cut_reason, "DB maintenance");
  EXPECT_EQ(state->cut_since, 1'700'000'000);
  EXPECT_EQ(state->global.sessions, 500U);
  EXPECT_EQ(state->global.load_centi, 800U);
  ASSERT_EQ(state->vhosts.size(), 1U);
  EXPECT_EQ(state->vhosts.at("www.example.org").sessions, 200U);
  EXPECT_FALSE(state->vhosts.at("www.example.org").load_centi.has_value());
}

TEST(ParseState, VersionAloneIsTheDefaultState) {
  const auto state = parse_state(R"({"version":1})");
  ASSERT_TRUE(state.has_value()) << state.error().message;
  EXPECT_EQ(*state, ControlState{});
}

TEST(ParseState, RoundTripsThroughSerialize) {
  const ControlState state = sample_state();
  const std::string text = serialize_state(state);
  const auto parsed = parse_state(text);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message << "\n" << text;
  EXPECT_EQ(*parsed, state);
  EXPECT_EQ(serialize_state(*parsed), text) << "serialization is stable";

  const auto empty = parse_state(serialize_state(ControlState{}));
  ASSERT_TRUE(empty.has_value()) << empty.error().message;
  EXPECT_EQ(*empty, ControlState{});
}

TEST(SerializeState, WritesVersionAndLoadAsText) {
  const std::string text = serialize_state(sample_state());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json.at("version"), 1);
  EXPECT_EQ(json.at("thresholds").at("global").at("load"), "8.00");
  EXPECT_EQ(json.at("thresholds").at("vhosts").at("api.example.org").at("load"), "4.50");
  EXPECT_EQ(json.at("thresholds").at("vhosts").at("www.example.org").at("sessions"), 200);
  EXPECT_FALSE(json.at("thresholds").at("vhosts").at("www.example.org").contains("load"));
}

TEST(SerializeState, DropsEmptyVhostOverrides) {
  ControlState state;
  state.vhosts["empty.example.org"] = ThresholdOverride{};
  state.vhosts["full.example.org"].sessions = 3;
  const auto json = nlohmann::json::parse(serialize_state(state));
  EXPECT_FALSE(json.at("thresholds").at("vhosts").contains("empty.example.org"));
  EXPECT_TRUE(json.at("thresholds").at("vhosts").contains("full.example.org"));
}

TEST(ParseState, NormalisesVhostNamesToLowercase) {
  const auto state = parse_state(with_version(R"("thresholds":{"vhosts":{"WWW.Example.ORG":{"sessions":7}}})"));
  ASSERT_TRUE(state.has_value()) << state.error().message;
  ASSERT_EQ(state->vhosts.size(), 1U);
  EXPECT_EQ(state->vhosts.begin()->first, "www.example.org");
  EXPECT_EQ(state->vhosts.begin()->second.sessions, 7U);
}

TEST(ParseState, EmptyVhostOverrideIsDropped) {
  const auto state = parse_state(with_version(R"("thresholds":{"vhosts":{"a.example.org":{}}})"));
  ASSERT_TRUE(state.has_value()) << state.error().message;
  EXPECT_TRUE(state->vhosts.empty());
}

TEST(ParseState, AcceptsTheLimits) {
  const auto state =
      parse_state(with_version(R"("thresholds":{"global":{"sessions":1000000000000,"load":"1000000"}})"));
  ASSERT_TRUE(state.has_value()) << state.error().message;
  EXPECT_EQ(state->global.sessions, kMaxSessionsValue);
  EXPECT_EQ(state->global.load_centi, kMaxLoadCenti);

  std::string vhosts;
  for (std::size_t i = 0; i < snapshot::kMaxVhostOverrides; ++i) {
    vhosts.append(i == 0 ? "" : ",").append("\"v").append(std::to_string(i)).append(".example.org\":{\"sessions\":1}");
  }
  const auto many = parse_state(with_version(R"("thresholds":{"vhosts":{)" + vhosts + "}}"));
  ASSERT_TRUE(many.has_value()) << many.error().message;
  EXPECT_EQ(many->vhosts.size(), snapshot::kMaxVhostOverrides);

  const std::string longest(snapshot::kVhostNameCapacity - 1, 'a');
  const auto long_name = parse_state(with_version(R"("thresholds":{"vhosts":{")" + longest + R"(":{"sessions":1}}})"));
  ASSERT_TRUE(long_name.has_value()) << long_name.error().message;

  const std::string reason(snapshot::kCutReasonCapacity - 1, 'r');
  const auto long_reason = parse_state(with_version(R"("cut":{"active":true,"reason":")" + reason + "\"}"));
  ASSERT_TRUE(long_reason.has_value()) << long_reason.error().message;
  EXPECT_EQ(long_reason->cut_reason, reason);

  const auto negative_since = parse_state(with_version(R"("cut":{"since":-5})"));
  ASSERT_TRUE(negative_since.has_value()) << negative_since.error().message;
  EXPECT_EQ(negative_since->cut_since, -5);
}

TEST(ParseStateErrors, SyntaxAndTopLevel) {
  expect_rejected("", "invalid JSON");
  expect_rejected("{", "invalid JSON");
  expect_rejected(R"({"version":1,})", "invalid JSON");
  expect_rejected(R"({"version":1} trailing)", "invalid JSON");
  expect_rejected("[1]", "expected a JSON object");
  expect_rejected("1", "expected a JSON object");
  expect_rejected("null", "expected a JSON object");
  expect_rejected(with_version(R"("extra":true)"), "unknown key \"extra\"");
}

TEST(ParseStateErrors, Version) {
  expect_rejected("{}", "missing \"version\"");
  expect_rejected(R"({"cut":{"active":false}})", "missing \"version\"");
  expect_rejected(R"({"version":2})", "unsupported state version");
  expect_rejected(R"({"version":0})", "unsupported state version");
  expect_rejected(R"({"version":-1})", "unsupported state version");
  expect_rejected(R"({"version":"1"})", "unsupported state version");
  expect_rejected(R"({"version":1.0})", "unsupported state version");
  expect_rejected(R"({"version":true})", "unsupported state version");
  expect_rejected(R"({"version":null})", "unsupported state version");
  // Values that only equal 1 after truncation to a narrower integer.
  expect_rejected(R"({"version":4294967297})", "unsupported state version");
  expect_rejected(R"({"version":18446744073709551617})", "version");
}

TEST(ParseStateErrors, Cut) {
  expect_rejected(with_version(R"("cut":true)"), "cut: expected an object");
  expect_rejected(with_version(R"("cut":{"active":"yes"})"), "cut.active");
  expect_rejected(with_version(R"("cut":{"active":1})"), "cut.active");
  expect_rejected(with_version(R"("cut":{"reason":5})"), "cut.reason");
  expect_rejected(with_version(R"("cut":{"since":"1700000000"})"), "cut.since");
  expect_rejected(with_version(R"("cut":{"since":1.5})"), "cut.since");
  expect_rejected(with_version(R"("cut":{"since":18446744073709551615})"), "cut.since");
  expect_rejected(with_version(R"("cut":{"until":1})"), "cut: unknown key \"until\"");
}

TEST(ParseStateErrors, CutReason) {
  const std::string too_long(snapshot::kCutReasonCapacity, 'r');
  expect_rejected(with_version(R"("cut":{"reason":")" + too_long + "\"}"), "longer than");
  expect_rejected(with_version(R"("cut":{"reason":"line\nbreak"})"), "control character");
  expect_rejected(with_version(R"("cut":{"reason":"tab\there"})"), "control character");
  expect_rejected(with_version(R"("cut":{"reason":"esc\u001b[31m"})"), "control character");
  expect_rejected(with_version(R"("cut":{"reason":"del\u007f"})"), "control character");
  expect_rejected(with_version(R"("cut":{"reason":"nul\u0000"})"), "control character");

  EXPECT_TRUE(validate_cut_reason("").has_value());
  EXPECT_TRUE(validate_cut_reason("Op\xc3\xa9ration pr\xc3\xa9vue").has_value()) << "UTF-8 is allowed";
  EXPECT_FALSE(validate_cut_reason("a\rb").has_value());
}

TEST(ParseStateErrors, Thresholds) {
  expect_rejected(with_version(R"("thresholds":[])"), "thresholds: expected an object");
  expect_rejected(with_version(R"("thresholds":{"local":{}})"), "thresholds: unknown key \"local\"");
  expect_rejected(with_version(R"("thresholds":{"global":5})"), "thresholds.global: expected an object");
  expect_rejected(with_version(R"("thresholds":{"global":{"sessions":-1}})"), "thresholds.global.sessions");
  expect_rejected(with_version(R"("thresholds":{"global":{"sessions":"5"}})"), "thresholds.global.sessions");
  expect_rejected(with_version(R"("thresholds":{"global":{"sessions":1.5}})"), "thresholds.global.sessions");
  expect_rejected(with_version(R"("thresholds":{"global":{"sessions":1000000000001}})"), "thresholds.global.sessions");
  expect_rejected(with_version(R"("thresholds":{"global":{"load":4.5}})"), "thresholds.global.load");
  expect_rejected(with_version(R"("thresholds":{"global":{"load":"4.505"}})"), "thresholds.global.load");
  expect_rejected(with_version(R"("thresholds":{"global":{"load":"-1"}})"), "thresholds.global.load");
  expect_rejected(with_version(R"("thresholds":{"global":{"load":"high"}})"), "thresholds.global.load");
  expect_rejected(with_version(R"("thresholds":{"global":{"load":"1000000.01"}})"), "thresholds.global.load");
  expect_rejected(with_version(R"("thresholds":{"global":{"load":""}})"), "thresholds.global.load");
  expect_rejected(with_version(R"("thresholds":{"global":{"cpu":1}})"), "thresholds.global: unknown key \"cpu\"");
}

TEST(ParseStateErrors, Vhosts) {
  expect_rejected(with_version(R"("thresholds":{"vhosts":[]})"), "thresholds.vhosts: expected an object");
  std::string vhosts;
  for (std::size_t i = 0; i <= snapshot::kMaxVhostOverrides; ++i) {
    vhosts.append(i == 0 ? "" : ",").append("\"v").append(std::to_string(i)).append(".example.org\":{\"sessions\":1}");
  }
  expect_rejected(with_version(R"("thresholds":{"vhosts":{)" + vhosts + "}}"), "more than 64 vhosts");

  for (const std::string& name : {std::string(""), std::string("bad name"), std::string("a/b"), std::string("a*b"),
                                  std::string("caf\xc3\xa9.example.org"), std::string("tab\\there"),
                                  std::string(snapshot::kVhostNameCapacity, 'a')}) {
    expect_rejected(with_version(R"("thresholds":{"vhosts":{")" + name + R"(":{"sessions":1}}})"),
                    "thresholds.vhosts: vhost name");
  }
  expect_rejected(with_version(R"("thresholds":{"vhosts":{"a.org":{"sessions":"x"}}})"),
                  "thresholds.vhosts.a.org.sessions");
  expect_rejected(with_version(R"("thresholds":{"vhosts":{"a.org":{"max":1}}})"),
                  "thresholds.vhosts.a.org: unknown key \"max\"");
  expect_rejected(with_version(R"("thresholds":{"vhosts":{"a.org":1}})"),
                  "thresholds.vhosts.a.org: expected an object");
}

TEST(ValidateVhostName, AllowedCharacters) {
  for (const std::string_view name :
       {"www.example.org", "WWW.EXAMPLE.ORG", "a", "host-1_2", "example.org:8443", "[2001:db8::1]:443", "127.0.0.1"}) {
    EXPECT_TRUE(validate_vhost_name(name).has_value()) << name;
  }
  for (const std::string_view name : {"", " ", "a b", "a\tb", "a\nb", "a/b", "a@b", "a%b", "a\\b", "a\"b"}) {
    EXPECT_FALSE(validate_vhost_name(name).has_value()) << name;
  }
  EXPECT_EQ(normalize_vhost_name("WwW.ExAmPlE.oRg:8080"), "www.example.org:8080");
  EXPECT_EQ(normalize_vhost_name("[2001:DB8::1]"), "[2001:db8::1]");
}

// ---- load_state_file

TEST(LoadStateFile, MissingFileIsTheDefaultState) {
  TempDir dir;
  const auto state = load_state_file(dir / "state");
  ASSERT_TRUE(state.has_value()) << state.error().message;
  EXPECT_EQ(*state, ControlState{});
}

TEST(LoadStateFile, ReadsAValidFile) {
  TempDir dir;
  test::write_file(dir / "state", kExample);
  const auto state = load_state_file(dir / "state");
  ASSERT_TRUE(state.has_value()) << state.error().message;
  EXPECT_TRUE(state->cut_active);
  EXPECT_EQ(state->global.load_centi, 800U);
}

TEST(LoadStateFile, RefusesASymlink) {
  TempDir dir;
  test::write_file(dir / "real", kExample);
  ASSERT_EQ(::symlink((dir / "real").c_str(), (dir / "state").c_str()), 0);
  const auto state = load_state_file(dir / "state");
  ASSERT_FALSE(state.has_value()) << "a symlink must not be followed";
  EXPECT_NE(state.error().message.find(dir / "state"), std::string::npos) << state.error().message;
  EXPECT_EQ(state.error().code, ELOOP);
}

TEST(LoadStateFile, RefusesADanglingSymlink) {
  TempDir dir;
  ASSERT_EQ(::symlink((dir / "nowhere").c_str(), (dir / "state").c_str()), 0);
  EXPECT_FALSE(load_state_file(dir / "state").has_value()) << "not silently the default state";
}

TEST(LoadStateFile, RefusesNonRegularFiles) {
  TempDir dir;
  test::make_directory(dir / "state");
  const auto directory = load_state_file(dir / "state");
  ASSERT_FALSE(directory.has_value());
  EXPECT_NE(directory.error().message.find("not a regular file"), std::string::npos) << directory.error().message;

  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  const auto started = std::chrono::steady_clock::now();
  const auto fifo = load_state_file(dir / "fifo");
  ASSERT_FALSE(fifo.has_value());
  EXPECT_NE(fifo.error().message.find("not a regular file"), std::string::npos) << fifo.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2)) << "a FIFO must not block";
}

TEST(LoadStateFile, RefusesAFileLargerThanOneMebibyte) {
  TempDir dir;
  test::write_file(dir / "state", kExample);
  ASSERT_EQ(::truncate((dir / "state").c_str(), (1 << 20) + 1), 0);
  const auto state = load_state_file(dir / "state");
  ASSERT_FALSE(state.has_value());
  EXPECT_NE(state.error().message.find("larger than 1 MiB"), std::string::npos) << state.error().message;
  EXPECT_NE(state.error().message.find(dir / "state"), std::string::npos) << state.error().message;
}

TEST(LoadStateFile, InvalidJsonNamesTheFile) {
  TempDir dir;
  test::write_file(dir / "state", "{\"version\":1,\n\"cut\":{\"active\":tru}}\n");
  const auto state = load_state_file(dir / "state");
  ASSERT_FALSE(state.has_value());
  EXPECT_NE(state.error().message.find(dir / "state"), std::string::npos) << state.error().message;
  EXPECT_NE(state.error().message.find("invalid JSON"), std::string::npos) << state.error().message;

  test::write_file(dir / "state", R"({"version":1,"cut":{"active":"yes"}})");
  const auto invalid = load_state_file(dir / "state");
  ASSERT_FALSE(invalid.has_value());
  EXPECT_NE(invalid.error().message.find(dir / "state"), std::string::npos) << invalid.error().message;
  EXPECT_NE(invalid.error().message.find("cut.active"), std::string::npos) << invalid.error().message;

  test::write_file(dir / "state", "");
  EXPECT_FALSE(load_state_file(dir / "state").has_value()) << "an empty file is not a valid state";
}

// ---- save_state_file

TEST(SaveStateFile, WritesAFileThatLoadsBack) {
  TempDir dir;
  const std::string path = dir / "state";
  const ControlState state = sample_state();
  const auto saved = save_state_file(path, state);
  ASSERT_TRUE(saved.has_value()) << saved.error().message;
  const auto loaded = load_state_file(path);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  EXPECT_EQ(*loaded, state);
  EXPECT_EQ(test::read_file(path), serialize_state(state));
  EXPECT_EQ(test::list_directory(dir.path()), std::vector<std::string>{"state"}) << "no temporary file left";
}

TEST(SaveStateFile, ModeIs0644WhateverTheUmask) {
  TempDir dir;
  const test::ScopedUmask umask(077);
  const std::string path = dir / "state";
  ASSERT_TRUE(save_state_file(path, sample_state()).has_value());
  EXPECT_EQ(test::stat_of(path).st_mode & 07777, 0644U);
}

TEST(SaveStateFile, ReplacesAnExistingFileAtomically) {
  TempDir dir;
  const std::string path = dir / "state";
  ASSERT_TRUE(save_state_file(path, sample_state()).has_value());
  const int old_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(old_fd, 0);
  const ino_t old_inode = test::stat_of(path).st_ino;

  ControlState next;
  next.global.sessions = 42;
  ASSERT_TRUE(save_state_file(path, next).has_value());
  EXPECT_NE(test::stat_of(path).st_ino, old_inode) << "a new file renamed over the old one";
  const auto loaded = load_state_file(path);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  EXPECT_EQ(*loaded, next);

  // A reader holding the old file still sees the complete old content.
  std::string old_text(4096, '\0');
  const ssize_t got = ::pread(old_fd, old_text.data(), old_text.size(), 0);
  ::close(old_fd);
  ASSERT_GT(got, 0);
  old_text.resize(static_cast<std::size_t>(got));
  EXPECT_EQ(old_text, serialize_state(sample_state()));
  EXPECT_EQ(test::list_directory(dir.path()), std::vector<std::string>{"state"});
}

TEST(SaveStateFile, CreatesTheParentDirectory) {
  TempDir dir;
  const std::string path = dir / "lib/state";
  ASSERT_TRUE(save_state_file(path, sample_state()).has_value());
  EXPECT_TRUE(S_ISDIR(test::stat_of(dir / "lib").st_mode));
  EXPECT_TRUE(load_state_file(path).has_value());
}

TEST(SaveStateFile, FailsWhenTheParentCannotBeCreated) {
  TempDir dir;
  const auto saved = save_state_file(dir / "a/b/state", sample_state());
  ASSERT_FALSE(saved.has_value());
  EXPECT_EQ(saved.error().code, ENOENT);
}

TEST(SaveStateFile, DoesNotFollowASymlinkedTemporaryFile) {
  TempDir dir;
  const std::string path = dir / "state";
  const std::string victim = dir / "victim";
  test::write_file(victim, "untouched");
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  ASSERT_EQ(::symlink(victim.c_str(), temporary.c_str()), 0);
  (void)save_state_file(path, sample_state());
  EXPECT_EQ(test::read_file(victim), "untouched");
}

// ---- apply_state_to_payload

TEST(ApplyStateToPayload, FillsCutAndThresholds) {
  auto state =
      parse_state(with_version(R"("cut":{"active":true,"reason":"DB maintenance","since":1700000000},)"
                               R"("thresholds":{"global":{"sessions":500,"load":"8"},)"
                               R"("vhosts":{"WWW.Example.org":{"load":"4.5"},"api.example.org":{"sessions":12}}})"));
  ASSERT_TRUE(state.has_value()) << state.error().message;

  snapshot::Payload payload{};
  payload.flags = snapshot::kFlagPsiAvailable;
  apply_state_to_payload(*state, payload);

  EXPECT_EQ(payload.flags, snapshot::kFlagPsiAvailable | snapshot::kFlagCutActive) << "other flags are kept";
  EXPECT_STREQ(payload.cut_reason, "DB maintenance");
  EXPECT_EQ(payload.cut_since_wall_s, 1'700'000'000);

  EXPECT_EQ(payload.global_override.has_sessions, 1U);
  EXPECT_EQ(payload.global_override.sessions, 500U);
  EXPECT_STREQ(payload.global_override.sessions_text, "500");
  EXPECT_EQ(payload.global_override.has_load, 1U);
  EXPECT_EQ(payload.global_override.load_centi, 800U);
  EXPECT_STREQ(payload.global_override.load_text, "8.00");

  ASSERT_EQ(payload.vhost_override_count, 2U);
  // Sorted by name: "api..." before "www...".
  const auto& api = payload.vhost_overrides[0];
  EXPECT_STREQ(api.name, "api.example.org");
  EXPECT_EQ(api.name_hash, snapshot::vhost_name_hash("api.example.org", 15));
  EXPECT_EQ(api.thresholds.has_sessions, 1U);
  EXPECT_EQ(api.thresholds.sessions, 12U);
  EXPECT_STREQ(api.thresholds.sessions_text, "12");
  EXPECT_EQ(api.thresholds.has_load, 0U);
  EXPECT_STREQ(api.thresholds.load_text, "");

  const auto& www = payload.vhost_overrides[1];
  EXPECT_STREQ(www.name, "www.example.org");
  EXPECT_EQ(www.name_hash, snapshot::vhost_name_hash("www.example.org", 15)) << "hash of the lowercase name";
  EXPECT_EQ(www.thresholds.has_load, 1U);
  EXPECT_EQ(www.thresholds.load_centi, 450U);
  EXPECT_STREQ(www.thresholds.load_text, "4.50");
  EXPECT_EQ(www.thresholds.has_sessions, 0U);
}

TEST(ApplyStateToPayload, ClearsCutAndStaleEntries) {
  snapshot::Payload payload{};
  // A previous state with a cut and many overrides, plus garbage beyond.
  ControlState previous = sample_state();
  for (int i = 0; i < 10; ++i) previous.vhosts["old" + std::to_string(i) + ".example.org"].sessions = 1;
  apply_state_to_payload(previous, payload);
  ASSERT_EQ(payload.vhost_override_count, 13U);
  std::memset(&payload.vhost_overrides[40], 0x5a, sizeof(snapshot::VhostOverride));
  payload.flags |= snapshot::kFlagScanFailed;

  ControlState next;
  next.vhosts["only.example.org"].load_centi = 100;
  apply_state_to_payload(next, payload);

  EXPECT_EQ(payload.flags, snapshot::kFlagScanFailed) << "cut flag cleared, other flags kept";
  EXPECT_EQ(payload.cut_since_wall_s, 0);
  EXPECT_STREQ(payload.cut_reason, "");
  for (const char c : payload.cut_reason) EXPECT_EQ(c, '\0');
  EXPECT_EQ(payload.global_override.has_sessions, 0U);
  EXPECT_EQ(payload.global_override.has_load, 0U);
  EXPECT_EQ(payload.global_override.sessions, 0U);
  EXPECT_STREQ(payload.global_override.sessions_text, "");

  ASSERT_EQ(payload.vhost_override_count, 1U);
  EXPECT_STREQ(payload.vhost_overrides[0].name, "only.example.org");
  EXPECT_STREQ(payload.vhost_overrides[0].thresholds.load_text, "1.00");
  const snapshot::VhostOverride zero{};
  for (std::size_t i = 1; i < snapshot::kMaxVhostOverrides; ++i) {
    EXPECT_EQ(std::memcmp(&payload.vhost_overrides[i], &zero, sizeof zero), 0) << "entry " << i << " not cleared";
  }
}

TEST(ApplyStateToPayload, InactiveCutPublishesNoReasonOrSince) {
  ControlState state;
  state.cut_active = false;
  state.cut_reason = "left over";
  state.cut_since = 123;
  snapshot::Payload payload{};
  apply_state_to_payload(state, payload);
  EXPECT_EQ(payload.flags & snapshot::kFlagCutActive, 0U);
  EXPECT_STREQ(payload.cut_reason, "");
  EXPECT_EQ(payload.cut_since_wall_s, 0);
}

TEST(ApplyStateToPayload, KeepsAtMostTheSnapshotCapacity) {
  ControlState state;
  for (std::size_t i = 0; i < snapshot::kMaxVhostOverrides + 5; ++i) {
    state.vhosts[std::string("v").append(std::to_string(1000 + i)).append(".example.org")].sessions = i;
  }
  snapshot::Payload payload{};
  apply_state_to_payload(state, payload);
  EXPECT_EQ(payload.vhost_override_count, snapshot::kMaxVhostOverrides);
  EXPECT_STREQ(payload.vhost_overrides[snapshot::kMaxVhostOverrides - 1].name, "v1063.example.org");
}

}  // namespace
}  // namespace coupecircuit
