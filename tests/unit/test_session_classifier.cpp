// Unit tests of the PHP session classifier (common/session_classifier.cpp).
//
// The kPhpSamples table holds session files written by PHP 8.2's CLI with
// each serialize_handler; tests/fuzz/make_session_corpus.sh regenerates the
// same files into tests/fuzz/corpus/session_classifier/.
#include "session_classifier.hpp"
#include "text.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace coupecircuit {
namespace {

using namespace std::literals;

constexpr std::size_t kCap = 64 * 1024;

ClassifierRule default_rule(SessionFormat format = SessionFormat::automatic) {
  ClassifierRule r;
  r.format = format;
  return r;
}

ClassifierRule symfony_rule(SessionFormat format = SessionFormat::automatic) {
  auto r = parse_authenticated_rule("_sf2_attributes contains _security_main", default_rule(format));
  EXPECT_TRUE(r.has_value());
  return r.has_value() ? r.value() : ClassifierRule{};
}

SessionClass classify(std::string_view data, bool truncated = false, const ClassifierRule& rule = ClassifierRule{}) {
  return classify_session(data, truncated, rule);
}

// Each untruncated file under the default rule gets the expected class.
void expect_class(SessionClass expected, std::initializer_list<std::string_view> files) {
  for (const auto& data : files) EXPECT_EQ(classify(data), expected) << data;
}

// PHP's serialize() of a string.
std::string ser(std::string_view s) { return "s:" + std::to_string(s.size()) + ":\"" + std::string(s) + "\";"; }

// One php_binary record.
std::string bin_record(std::string_view key, std::string_view value) {
  std::string out(1, static_cast<char>(key.size()));
  out += key;
  out += value;
  return out;
}

struct PhpSample {
  std::string_view name;
  SessionFormat format;
  SessionClass by_default;  // with the default (Voozanoo/Zend) rule
  SessionClass by_symfony;  // with "_sf2_attributes contains _security_main"
  std::string_view data;
};

// Written by PHP 8.2 (see tests/fuzz/make_session_corpus.sh for the
// $_SESSION contents of each case).
const std::array<PhpSample, 39> kPhpSamples{{
    {"zend_authenticated.php", SessionFormat::php, SessionClass::authenticated, SessionClass::unknown,
     "Default|a:1:{s:11:\"initialized\";b:1;}__ZF|a:1:{s:36:\"vzn_a15774ed86e9f3eaebc925162120cec2\";a:1:{s:3:\"ENT\";i:1585155117;}}vzn_a15774ed86e9f3eaebc925162120cec2|a:1:{s:7:\"storage\";s:11:\"compte_reel\";}"sv},
    {"zend_authenticated.php_serialize", SessionFormat::php_serialize, SessionClass::authenticated, SessionClass::unknown,
     "a:3:{s:7:\"Default\";a:1:{s:11:\"initialized\";b:1;}s:4:\"__ZF\";a:1:{s:36:\"vzn_a15774ed86e9f3eaebc925162120cec2\";a:1:{s:3:\"ENT\";i:1585155117;}}s:36:\"vzn_a15774ed86e9f3eaebc925162120cec2\";a:1:{s:7:\"storage\";s:11:\"compte_reel\";}}"sv},
    {"zend_authenticated.php_binary", SessionFormat::php_binary, SessionClass::authenticated, SessionClass::unknown,
     "\007Defaulta:1:{s:11:\"initialized\";b:1;}\004__ZFa:1:{s:36:\"vzn_a15774ed86e9f3eaebc925162120cec2\";a:1:{s:3:\"ENT\";i:1585155117;}}$vzn_a15774ed86e9f3eaebc925162120cec2a:1:{s:7:\"storage\";s:11:\"compte_reel\";}"sv},
    {"zend_unknown.php", SessionFormat::php, SessionClass::unknown, SessionClass::unknown,
     "Default|a:1:{s:11:\"initialized\";b:1;}__ZF|a:1:{s:36:\"vzn_a15774ed86e9f3eaebc925162120cec2\";a:1:{s:3:\"ENT\";i:1585145718;}}"sv},
    {"zend_unknown.php_serialize", SessionFormat::php_serialize, SessionClass::unknown, SessionClass::unknown,
     "a:2:{s:7:\"Default\";a:1:{s:11:\"initialized\";b:1;}s:4:\"__ZF\";a:1:{s:36:\"vzn_a15774ed86e9f3eaebc925162120cec2\";a:1:{s:3:\"ENT\";i:1585145718;}}}"sv},
    {"zend_unknown.php_binary", SessionFormat::php_binary, SessionClass::unknown, SessionClass::unknown,
     "\007Defaulta:1:{s:11:\"initialized\";b:1;}\004__ZFa:1:{s:36:\"vzn_a15774ed86e9f3eaebc925162120cec2\";a:1:{s:3:\"ENT\";i:1585145718;}}"sv},
    {"zend_anonymous.php", SessionFormat::php, SessionClass::anonymous, SessionClass::anonymous,
     "Default|a:1:{s:11:\"initialized\";b:1;}"sv},
    {"zend_anonymous.php_serialize", SessionFormat::php_serialize, SessionClass::anonymous, SessionClass::anonymous,
     "a:1:{s:7:\"Default\";a:1:{s:11:\"initialized\";b:1;}}"sv},
    {"zend_anonymous.php_binary", SessionFormat::php_binary, SessionClass::anonymous, SessionClass::anonymous,
     "\007Defaulta:1:{s:11:\"initialized\";b:1;}"sv},
    {"zend_marker_last.php", SessionFormat::php, SessionClass::authenticated, SessionClass::unknown,
     "Default|a:1:{s:11:\"initialized\";b:1;}__ZF|a:1:{s:5:\"vzn_x\";a:1:{s:3:\"ENT\";i:1585155117;}}vzn_x|a:3:{s:5:\"prefs\";a:2:{s:4:\"lang\";s:2:\"fr\";s:4:\"rows\";i:50;}s:4:\"menu\";N;s:7:\"storage\";a:2:{s:2:\"id\";i:42;s:4:\"name\";s:11:\"compte_reel\";}}"sv},
    {"zend_marker_last.php_serialize", SessionFormat::php_serialize, SessionClass::authenticated, SessionClass::unknown,
     "a:3:{s:7:\"Default\";a:1:{s:11:\"initialized\";b:1;}s:4:\"__ZF\";a:1:{s:5:\"vzn_x\";a:1:{s:3:\"ENT\";i:1585155117;}}s:5:\"vzn_x\";a:3:{s:5:\"prefs\";a:2:{s:4:\"lang\";s:2:\"fr\";s:4:\"rows\";i:50;}s:4:\"menu\";N;s:7:\"storage\";a:2:{s:2:\"id\";i:42;s:4:\"name\";s:11:\"compte_reel\";}}}"sv},
    {"zend_marker_last.php_binary", SessionFormat::php_binary, SessionClass::authenticated, SessionClass::unknown,
     "\007Defaulta:1:{s:11:\"initialized\";b:1;}\004__ZFa:1:{s:5:\"vzn_x\";a:1:{s:3:\"ENT\";i:1585155117;}}\005vzn_xa:3:{s:5:\"prefs\";a:2:{s:4:\"lang\";s:2:\"fr\";s:4:\"rows\";i:50;}s:4:\"menu\";N;s:7:\"storage\";a:2:{s:2:\"id\";i:42;s:4:\"name\";s:11:\"compte_reel\";}}"sv},
    {"symfony_authenticated.php", SessionFormat::php, SessionClass::anonymous, SessionClass::authenticated,
     "_sf2_attributes|a:2:{s:18:\"_csrf/authenticate\";s:27:\"p6q1hY0x7xvH0mJd6l0b0Uo5sQ0\";s:14:\"_security_main\";s:128:\"O:21:\"UsernamePasswordToken\":4:{i:0;s:7:\"jdupont\";i:1;s:4:\"main\";i:2;a:2:{i:0;s:9:\"ROLE_USER\";i:1;s:10:\"ROLE_ADMIN\";}i:3;a:0:{}}\";}_sf2_meta|a:3:{s:1:\"u\";i:1700000000;s:1:\"c\";i:1699990000;s:1:\"l\";i:0;}"sv},
    {"symfony_authenticated.php_serialize", SessionFormat::php_serialize, SessionClass::anonymous, SessionClass::authenticated,
     "a:2:{s:15:\"_sf2_attributes\";a:2:{s:18:\"_csrf/authenticate\";s:27:\"p6q1hY0x7xvH0mJd6l0b0Uo5sQ0\";s:14:\"_security_main\";s:128:\"O:21:\"UsernamePasswordToken\":4:{i:0;s:7:\"jdupont\";i:1;s:4:\"main\";i:2;a:2:{i:0;s:9:\"ROLE_USER\";i:1;s:10:\"ROLE_ADMIN\";}i:3;a:0:{}}\";}s:9:\"_sf2_meta\";a:3:{s:1:\"u\";i:1700000000;s:1:\"c\";i:1699990000;s:1:\"l\";i:0;}}"sv},
    {"symfony_authenticated.php_binary", SessionFormat::php_binary, SessionClass::anonymous, SessionClass::authenticated,
     "\017_sf2_attributesa:2:{s:18:\"_csrf/authenticate\";s:27:\"p6q1hY0x7xvH0mJd6l0b0Uo5sQ0\";s:14:\"_security_main\";s:128:\"O:21:\"UsernamePasswordToken\":4:{i:0;s:7:\"jdupont\";i:1;s:4:\"main\";i:2;a:2:{i:0;s:9:\"ROLE_USER\";i:1;s:10:\"ROLE_ADMIN\";}i:3;a:0:{}}\";}\011_sf2_metaa:3:{s:1:\"u\";i:1700000000;s:1:\"c\";i:1699990000;s:1:\"l\";i:0;}"sv},
    {"symfony_anonymous.php", SessionFormat::php, SessionClass::anonymous, SessionClass::anonymous,
     "_sf2_attributes|a:1:{s:18:\"_csrf/authenticate\";s:27:\"p6q1hY0x7xvH0mJd6l0b0Uo5sQ0\";}_sf2_meta|a:3:{s:1:\"u\";i:1700000000;s:1:\"c\";i:1699990000;s:1:\"l\";i:0;}"sv},
    {"symfony_anonymous.php_serialize", SessionFormat::php_serialize, SessionClass::anonymous, SessionClass::anonymous,
     "a:2:{s:15:\"_sf2_attributes\";a:1:{s:18:\"_csrf/authenticate\";s:27:\"p6q1hY0x7xvH0mJd6l0b0Uo5sQ0\";}s:9:\"_sf2_meta\";a:3:{s:1:\"u\";i:1700000000;s:1:\"c\";i:1699990000;s:1:\"l\";i:0;}}"sv},
    {"symfony_anonymous.php_binary", SessionFormat::php_binary, SessionClass::anonymous, SessionClass::anonymous,
     "\017_sf2_attributesa:1:{s:18:\"_csrf/authenticate\";s:27:\"p6q1hY0x7xvH0mJd6l0b0Uo5sQ0\";}\011_sf2_metaa:3:{s:1:\"u\";i:1700000000;s:1:\"c\";i:1699990000;s:1:\"l\";i:0;}"sv},
    {"objects.php", SessionFormat::php, SessionClass::authenticated, SessionClass::anonymous,
     "Default|a:1:{s:11:\"initialized\";b:1;}vzn_user|O:7:\"VznUser\":3:{s:5:\"login\";s:7:\"jdupont\";s:8:\"\000*\000roles\";a:1:{i:0;s:9:\"ROLE_USER\";}s:16:\"\000VznUser\000storage\";s:11:\"compte_reel\";}plain|O:5:\"Plain\":3:{s:1:\"a\";i:1;s:4:\"\000*\000b\";N;s:8:\"\000Plain\000c\";d:1.5;}std|O:8:\"stdClass\":2:{s:4:\"note\";s:7:\"storage\";s:1:\"0\";s:16:\"numeric property\";}spl|O:16:\"SplObjectStorage\":2:{i:0;a:0:{}i:1;a:0:{}}ao|O:11:\"ArrayObject\":4:{i:0;i:0;i:1;a:1:{s:1:\"x\";i:1;}i:2;a:0:{}i:3;N;}"sv},
    {"objects.php_serialize", SessionFormat::php_serialize, SessionClass::authenticated, SessionClass::anonymous,
     "a:6:{s:7:\"Default\";a:1:{s:11:\"initialized\";b:1;}s:8:\"vzn_user\";O:7:\"VznUser\":3:{s:5:\"login\";s:7:\"jdupont\";s:8:\"\000*\000roles\";a:1:{i:0;s:9:\"ROLE_USER\";}s:16:\"\000VznUser\000storage\";s:11:\"compte_reel\";}s:5:\"plain\";O:5:\"Plain\":3:{s:1:\"a\";i:1;s:4:\"\000*\000b\";N;s:8:\"\000Plain\000c\";d:1.5;}s:3:\"std\";O:8:\"stdClass\":2:{s:4:\"note\";s:7:\"storage\";s:1:\"0\";s:16:\"numeric property\";}s:3:\"spl\";O:16:\"SplObjectStorage\":2:{i:0;a:0:{}i:1;a:0:{}}s:2:\"ao\";O:11:\"ArrayObject\":4:{i:0;i:0;i:1;a:1:{s:1:\"x\";i:1;}i:2;a:0:{}i:3;N;}}"sv},
    {"objects.php_binary", SessionFormat::php_binary, SessionClass::authenticated, SessionClass::anonymous,
     "\007Defaulta:1:{s:11:\"initialized\";b:1;}\010vzn_userO:7:\"VznUser\":3:{s:5:\"login\";s:7:\"jdupont\";s:8:\"\000*\000roles\";a:1:{i:0;s:9:\"ROLE_USER\";}s:16:\"\000VznUser\000storage\";s:11:\"compte_reel\";}\005plainO:5:\"Plain\":3:{s:1:\"a\";i:1;s:4:\"\000*\000b\";N;s:8:\"\000Plain\000c\";d:1.5;}\003stdO:8:\"stdClass\":2:{s:4:\"note\";s:7:\"storage\";s:1:\"0\";s:16:\"numeric property\";}\003splO:16:\"SplObjectStorage\":2:{i:0;a:0:{}i:1;a:0:{}}\002aoO:11:\"ArrayObject\":4:{i:0;i:0;i:1;a:1:{s:1:\"x\";i:1;}i:2;a:0:{}i:3;N;}"sv},
    {"serializable_enum.php", SessionFormat::php, SessionClass::anonymous, SessionClass::anonymous,
     "Default|a:1:{s:11:\"initialized\";b:1;}legacy|C:9:\"LegacyBag\":55:{a:1:{s:7:\"storage\";s:27:\"inside an opaque C: payload\";}}suit|E:11:\"Suit:Hearts\";suits|a:2:{i:0;E:11:\"Suit:Spades\";i:1;r:6;}"sv},
    {"serializable_enum.php_serialize", SessionFormat::php_serialize, SessionClass::anonymous, SessionClass::anonymous,
     "a:4:{s:7:\"Default\";a:1:{s:11:\"initialized\";b:1;}s:6:\"legacy\";C:9:\"LegacyBag\":55:{a:1:{s:7:\"storage\";s:27:\"inside an opaque C: payload\";}}s:4:\"suit\";E:11:\"Suit:Hearts\";s:5:\"suits\";a:2:{i:0;E:11:\"Suit:Spades\";i:1;r:7;}}"sv},
    {"serializable_enum.php_binary", SessionFormat::php_binary, SessionClass::anonymous, SessionClass::anonymous,
     "\007Defaulta:1:{s:11:\"initialized\";b:1;}\006legacyC:9:\"LegacyBag\":55:{a:1:{s:7:\"storage\";s:27:\"inside an opaque C: payload\";}}\004suitE:11:\"Suit:Hearts\";\005suitsa:2:{i:0;E:11:\"Suit:Spades\";i:1;r:6;}"sv},
    {"references.php", SessionFormat::php, SessionClass::authenticated, SessionClass::anonymous,
     "first|a:1:{s:7:\"storage\";s:6:\"shared\";}second|R:1;o1|O:8:\"stdClass\":0:{}o2|r:3;"sv},
    {"references.php_serialize", SessionFormat::php_serialize, SessionClass::authenticated, SessionClass::anonymous,
     "a:4:{s:5:\"first\";a:1:{s:7:\"storage\";s:6:\"shared\";}s:6:\"second\";R:2;s:2:\"o1\";O:8:\"stdClass\":0:{}s:2:\"o2\";r:4;}"sv},
    {"references.php_binary", SessionFormat::php_binary, SessionClass::authenticated, SessionClass::anonymous,
     "\005firsta:1:{s:7:\"storage\";s:6:\"shared\";}\006secondR:1;\002o1O:8:\"stdClass\":0:{}\002o2r:3;"sv},
    {"nested_scalars.php", SessionFormat::php, SessionClass::anonymous, SessionClass::anonymous,
     "Default|a:1:{s:11:\"initialized\";b:1;}deep|a:2:{s:7:\"level19\";a:2:{s:7:\"level18\";a:2:{s:7:\"level17\";a:2:{s:7:\"level16\";a:2:{s:7:\"level15\";a:2:{s:7:\"level14\";a:2:{s:7:\"level13\";a:2:{s:7:\"level12\";a:2:{s:7:\"level11\";a:2:{s:7:\"level10\";a:2:{s:6:\"level9\";a:2:{s:6:\"level8\";a:2:{s:6:\"level7\";a:2:{s:6:\"level6\";a:2:{s:6:\"level5\";a:2:{s:6:\"level4\";a:2:{s:6:\"level3\";a:2:{s:6:\"level2\";a:2:{s:6:\"level1\";a:2:{s:6:\"level0\";a:1:{s:4:\"leaf\";s:6:\"bottom\";}i:0;i:0;}i:1;i:-1;}i:2;i:-2;}i:3;i:-3;}i:4;i:-4;}i:5;i:-5;}i:6;i:-6;}i:7;i:-7;}i:8;i:-8;}i:9;i:-9;}i:10;i:-10;}i:11;i:-11;}i:12;i:-12;}i:13;i:-13;}i:14;i:-14;}i:15;i:-15;}i:16;i:-16;}i:17;i:-17;}i:18;i:-18;}i:19;i:-19;}floats|a:10:{i:0;d:1.5;i:1;d:-0;i:2;d:0.1;i:3;d:1.0E+25;i:4;d:-1.5E-10;i:5;d:INF;i:6;d:-INF;i:7;d:NAN;i:8;d:1.7976931348623157E+308;i:9;d:2.220446049250313E-16;}ints|a:4:{i:0;i:0;i:1;i:-12;i:2;i:9223372036854775807;i:3;i:-9223372036854775808;}nulls|a:5:{i:0;N;i:1;b:0;i:2;b:1;i:3;s:0:\"\";i:4;a:0:{}}utf8|s:19:\"\303\251l\303\250ve \360\237\230\200 na\303\257ve\";"sv},
    {"nested_scalars.php_serialize", SessionFormat::php_serialize, SessionClass::anonymous, SessionClass::anonymous,
     "a:6:{s:7:\"Default\";a:1:{s:11:\"initialized\";b:1;}s:4:\"deep\";a:2:{s:7:\"level19\";a:2:{s:7:\"level18\";a:2:{s:7:\"level17\";a:2:{s:7:\"level16\";a:2:{s:7:\"level15\";a:2:{s:7:\"level14\";a:2:{s:7:\"level13\";a:2:{s:7:\"level12\";a:2:{s:7:\"level11\";a:2:{s:7:\"level10\";a:2:{s:6:\"level9\";a:2:{s:6:\"level8\";a:2:{s:6:\"level7\";a:2:{s:6:\"level6\";a:2:{s:6:\"level5\";a:2:{s:6:\"level4\";a:2:{s:6:\"level3\";a:2:{s:6:\"level2\";a:2:{s:6:\"level1\";a:2:{s:6:\"level0\";a:1:{s:4:\"leaf\";s:6:\"bottom\";}i:0;i:0;}i:1;i:-1;}i:2;i:-2;}i:3;i:-3;}i:4;i:-4;}i:5;i:-5;}i:6;i:-6;}i:7;i:-7;}i:8;i:-8;}i:9;i:-9;}i:10;i:-10;}i:11;i:-11;}i:12;i:-12;}i:13;i:-13;}i:14;i:-14;}i:15;i:-15;}i:16;i:-16;}i:17;i:-17;}i:18;i:-18;}i:19;i:-19;}s:6:\"floats\";a:10:{i:0;d:1.5;i:1;d:-0;i:2;d:0.1;i:3;d:1.0E+25;i:4;d:-1.5E-10;i:5;d:INF;i:6;d:-INF;i:7;d:NAN;i:8;d:1.7976931348623157E+308;i:9;d:2.220446049250313E-16;}s:4:\"ints\";a:4:{i:0;i:0;i:1;i:-12;i:2;i:9223372036854775807;i:3;i:-9223372036854775808;}s:5:\"nulls\";a:5:{i:0;N;i:1;b:0;i:2;b:1;i:3;s:0:\"\";i:4;a:0:{}}s:4:\"utf8\";s:19:\"\303\251l\303\250ve \360\237\230\200 na\303\257ve\";}"sv},
    {"nested_scalars.php_binary", SessionFormat::php_binary, SessionClass::anonymous, SessionClass::anonymous,
     "\007Defaulta:1:{s:11:\"initialized\";b:1;}\004deepa:2:{s:7:\"level19\";a:2:{s:7:\"level18\";a:2:{s:7:\"level17\";a:2:{s:7:\"level16\";a:2:{s:7:\"level15\";a:2:{s:7:\"level14\";a:2:{s:7:\"level13\";a:2:{s:7:\"level12\";a:2:{s:7:\"level11\";a:2:{s:7:\"level10\";a:2:{s:6:\"level9\";a:2:{s:6:\"level8\";a:2:{s:6:\"level7\";a:2:{s:6:\"level6\";a:2:{s:6:\"level5\";a:2:{s:6:\"level4\";a:2:{s:6:\"level3\";a:2:{s:6:\"level2\";a:2:{s:6:\"level1\";a:2:{s:6:\"level0\";a:1:{s:4:\"leaf\";s:6:\"bottom\";}i:0;i:0;}i:1;i:-1;}i:2;i:-2;}i:3;i:-3;}i:4;i:-4;}i:5;i:-5;}i:6;i:-6;}i:7;i:-7;}i:8;i:-8;}i:9;i:-9;}i:10;i:-10;}i:11;i:-11;}i:12;i:-12;}i:13;i:-13;}i:14;i:-14;}i:15;i:-15;}i:16;i:-16;}i:17;i:-17;}i:18;i:-18;}i:19;i:-19;}\006floatsa:10:{i:0;d:1.5;i:1;d:-0;i:2;d:0.1;i:3;d:1.0E+25;i:4;d:-1.5E-10;i:5;d:INF;i:6;d:-INF;i:7;d:NAN;i:8;d:1.7976931348623157E+308;i:9;d:2.220446049250313E-16;}\004intsa:4:{i:0;i:0;i:1;i:-12;i:2;i:9223372036854775807;i:3;i:-9223372036854775808;}\005nullsa:5:{i:0;N;i:1;b:0;i:2;b:1;i:3;s:0:\"\";i:4;a:0:{}}\004utf8s:19:\"\303\251l\303\250ve \360\237\230\200 na\303\257ve\";"sv},
    {"adversarial_strings.php", SessionFormat::php, SessionClass::anonymous, SessionClass::anonymous,
     "Default|a:1:{s:11:\"initialized\";b:1;}note|s:45:\"x|vzn|a:1:{s:7:\"storage\";s:11:\"compte_reel\";}\";vzn_x|a:2:{s:7:\"comment\";s:7:\"storage\";s:4:\"text\";s:30:\"s:7:\"storage\";b:1;} | storage|\";}pipes|a:2:{s:1:\"|\";s:2:\"||\";s:3:\"a|b\";s:3:\"\000|\012\";}"sv},
    {"adversarial_strings.php_serialize", SessionFormat::php_serialize, SessionClass::anonymous, SessionClass::anonymous,
     "a:4:{s:7:\"Default\";a:1:{s:11:\"initialized\";b:1;}s:4:\"note\";s:45:\"x|vzn|a:1:{s:7:\"storage\";s:11:\"compte_reel\";}\";s:5:\"vzn_x\";a:2:{s:7:\"comment\";s:7:\"storage\";s:4:\"text\";s:30:\"s:7:\"storage\";b:1;} | storage|\";}s:5:\"pipes\";a:2:{s:1:\"|\";s:2:\"||\";s:3:\"a|b\";s:3:\"\000|\012\";}}"sv},
    {"adversarial_strings.php_binary", SessionFormat::php_binary, SessionClass::anonymous, SessionClass::anonymous,
     "\007Defaulta:1:{s:11:\"initialized\";b:1;}\004notes:45:\"x|vzn|a:1:{s:7:\"storage\";s:11:\"compte_reel\";}\";\005vzn_xa:2:{s:7:\"comment\";s:7:\"storage\";s:4:\"text\";s:30:\"s:7:\"storage\";b:1;} | storage|\";}\005pipesa:2:{s:1:\"|\";s:2:\"||\";s:3:\"a|b\";s:3:\"\000|\012\";}"sv},
    {"adversarial_authenticated.php", SessionFormat::php, SessionClass::authenticated, SessionClass::anonymous,
     "note|s:22:\"a:1:{s:7:\"storage\";} |\";vzn_x|a:1:{s:7:\"storage\";s:15:\"s:7:\"storage\";|\";}"sv},
    {"adversarial_authenticated.php_serialize", SessionFormat::php_serialize, SessionClass::authenticated, SessionClass::anonymous,
     "a:2:{s:4:\"note\";s:22:\"a:1:{s:7:\"storage\";} |\";s:5:\"vzn_x\";a:1:{s:7:\"storage\";s:15:\"s:7:\"storage\";|\";}}"sv},
    {"adversarial_authenticated.php_binary", SessionFormat::php_binary, SessionClass::authenticated, SessionClass::anonymous,
     "\004notes:22:\"a:1:{s:7:\"storage\";} |\";\005vzn_xa:1:{s:7:\"storage\";s:15:\"s:7:\"storage\";|\";}"sv},
    {"empty.php", SessionFormat::php, SessionClass::empty, SessionClass::empty,
     ""sv},
    {"empty.php_serialize", SessionFormat::php_serialize, SessionClass::empty, SessionClass::empty,
     "a:0:{}"sv},
    {"empty.php_binary", SessionFormat::php_binary, SessionClass::empty, SessionClass::empty,
     ""sv},
}};

// The three sessions quoted in the issue (seed 000_*): a connected user, a
// session of unknown state, an anonymous visitor. They are anonymised, so
// their string lengths are not all consistent; the first one is still
// authenticated because the marker key is read before the first bad length.
constexpr std::string_view kSeedAuthenticated =
    "Default|a:1:{s:11:\"initialized\";b:1;}__ZF|a:1:{s:36:\"vzn_a15774ed86e9f3eaebc925162120cec2\";a:1:{s:3:"
    "\"ENT\";i:1585155117;}}vzn_xxxxxxxxxxxxxxx|a:1:{s:7:\"storage\";s:9:\"compte_reel\";}"sv;
constexpr std::string_view kSeedUnknown =
    "Default|a:1:{s:11:\"initialized\";b:1;}__ZF|a:1:{s:36:\"vzn_xxxxxxxxxxxxxxx\";a:1:{s:3:\"ENT\";i:"
    "1585145718;}}"sv;
constexpr std::string_view kSeedAnonymous = "Default|a:1:{s:11:\"initialized\";b:1;}"sv;

bool read_whole_file(const std::filesystem::path& path, std::string& out) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return false;
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(static_cast<std::size_t>(size), '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  return static_cast<std::size_t>(in.gcount()) == out.size();
}

const PhpSample& sample(std::string_view name) {
  for (const auto& s : kPhpSamples) {
    if (s.name == name) return s;
  }
  ADD_FAILURE() << "no sample " << name;
  return kPhpSamples[0];
}

// ---------------------------------------------------------------------------
// Real PHP output, all three handlers

TEST(SessionClassifierPhp, AutomaticDetectionClassifiesEveryRealSample) {
  const ClassifierRule zend = default_rule();
  const ClassifierRule symfony = symfony_rule();
  for (const auto& s : kPhpSamples) {
    EXPECT_EQ(classify(s.data, false, zend), s.by_default) << s.name;
    EXPECT_EQ(classify(s.data, false, symfony), s.by_symfony) << s.name;
  }
}

TEST(SessionClassifierPhp, FixedFormatClassifiesEveryRealSample) {
  for (const auto& s : kPhpSamples) {
    EXPECT_EQ(classify(s.data, false, default_rule(s.format)), s.by_default) << s.name;
    EXPECT_EQ(classify(s.data, false, symfony_rule(s.format)), s.by_symfony) << s.name;
  }
}

TEST(SessionClassifierPhp, WrongFixedFormatIsUnknown) {
  constexpr std::array kFormats{SessionFormat::php, SessionFormat::php_serialize, SessionFormat::php_binary};
  for (const auto& s : kPhpSamples) {
    if (s.data.empty()) continue;
    for (const SessionFormat f : kFormats) {
      if (f == s.format) continue;
      EXPECT_EQ(classify(s.data, false, default_rule(f)), SessionClass::unknown)
          << s.name << " read as " << to_string(f);
    }
  }
}

TEST(SessionClassifierPhp, SamplesCoverEveryHandlerAndClass) {
  std::map<SessionFormat, int> formats;
  std::map<SessionClass, int> classes;
  for (const auto& s : kPhpSamples) {
    ++formats[s.format];
    ++classes[s.by_default];
  }
  EXPECT_EQ(formats.size(), 3U);
  EXPECT_EQ(classes.size(), kSessionClassCount);
}

// The files the corpus script wrote must still classify as the embedded
// copies do (they are the same PHP output).
TEST(SessionClassifierPhp, CorpusFilesMatchEmbeddedSamples) {
  const std::filesystem::path dir =
      std::filesystem::path(__FILE__).parent_path().parent_path() / "fuzz" / "corpus" / "session_classifier";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << "no corpus at " << dir;
  int matched = 0;
  for (const auto& s : kPhpSamples) {
    std::string content;
    if (!read_whole_file(dir / std::string(s.name), content)) continue;
    EXPECT_EQ(content, s.data) << s.name;
    EXPECT_EQ(classify(content, false, default_rule()), s.by_default) << s.name;
    ++matched;
  }
  EXPECT_EQ(matched, static_cast<int>(kPhpSamples.size()));
}

// ---------------------------------------------------------------------------
// The three examples

std::vector<std::string> sessions_quoted_in_seed() {
  std::vector<std::string> out;
  const std::filesystem::path dir = COUPECIRCUIT_SEEDS_DIR;
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("000_", 0) != 0) continue;
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) {
      // Single-backtick spans on one line; ``` fences are skipped.
      std::size_t pos = 0;
      while ((pos = line.find('`', pos)) != std::string::npos) {
        if (line.compare(pos, 3, "```") == 0) break;
        const std::size_t end = line.find('`', pos + 1);
        if (end == std::string::npos) break;
        const std::string span = line.substr(pos + 1, end - pos - 1);
        if (span.find('|') != std::string::npos && span.find("a:") != std::string::npos) out.push_back(span);
        pos = end + 1;
      }
    }
  }
  return out;
}

TEST(SessionClassifierSeed, EmbeddedExamplesClassify) {
  EXPECT_EQ(classify(kSeedAuthenticated), SessionClass::authenticated);
  EXPECT_EQ(classify(kSeedUnknown), SessionClass::unknown);
  EXPECT_EQ(classify(kSeedAnonymous), SessionClass::anonymous);
  EXPECT_EQ(classify(kSeedAuthenticated, false, default_rule(SessionFormat::php)), SessionClass::authenticated);
  EXPECT_EQ(classify(kSeedUnknown, false, default_rule(SessionFormat::php)), SessionClass::unknown);
  EXPECT_EQ(classify(kSeedAnonymous, false, default_rule(SessionFormat::php)), SessionClass::anonymous);
}

TEST(SessionClassifierSeed, ExamplesReadFromSeedFileClassify) {
  const std::vector<std::string> quoted = sessions_quoted_in_seed();
  if (quoted.empty()) GTEST_SKIP() << "seed 000_* not found in " << COUPECIRCUIT_SEEDS_DIR;
  ASSERT_EQ(quoted.size(), 3U);
  EXPECT_EQ(quoted[0], kSeedAuthenticated);
  EXPECT_EQ(quoted[1], kSeedUnknown);
  EXPECT_EQ(quoted[2], kSeedAnonymous);
  EXPECT_EQ(classify(quoted[0]), SessionClass::authenticated);
  EXPECT_EQ(classify(quoted[1]), SessionClass::unknown);
  EXPECT_EQ(classify(quoted[2]), SessionClass::anonymous);
}

TEST(SessionClassifierSeed, UnknownNeedsTheUnknownKey) {
  ClassifierRule r = default_rule();
  r.unknown_key.clear();
  EXPECT_EQ(classify(sample("zend_unknown.php").data, false, r), SessionClass::anonymous);
  EXPECT_EQ(classify(sample("zend_unknown.php_serialize").data, false, r), SessionClass::anonymous);
  EXPECT_EQ(classify(sample("zend_unknown.php_binary").data, false, r), SessionClass::anonymous);
  EXPECT_EQ(classify(sample("zend_authenticated.php").data, false, r), SessionClass::authenticated);
  r.unknown_key = "Default";
  EXPECT_EQ(classify(kSeedAnonymous, false, r), SessionClass::unknown);
}

// ---------------------------------------------------------------------------
// Rules

TEST(SessionClassifierRule, SymfonyRule) {
  const ClassifierRule r = symfony_rule();
  ASSERT_EQ(r.authenticated.size(), 1U);
  EXPECT_EQ(to_string(r.authenticated[0]), "_sf2_attributes contains _security_main");
  const std::string token = ser("O:8:\"stdClass\":0:{}");
  EXPECT_EQ(classify("_sf2_attributes|a:1:{s:14:\"_security_main\";" + token + "}", false, r),
            SessionClass::authenticated);
  // Wrong container, marker below the container, marker as a value.
  EXPECT_EQ(classify("_sf2_meta|a:1:{s:14:\"_security_main\";" + token + "}", false, r), SessionClass::anonymous);
  EXPECT_EQ(classify("_sf2_attributes|a:1:{s:1:\"x\";a:1:{s:14:\"_security_main\";N;}}", false, r),
            SessionClass::anonymous);
  EXPECT_EQ(classify("_sf2_attributes|a:1:{i:0;s:14:\"_security_main\";}", false, r), SessionClass::anonymous);
  // The default "storage" marker means nothing to this rule.
  EXPECT_EQ(classify("_sf2_attributes|a:1:{s:7:\"storage\";N;}", false, r), SessionClass::anonymous);
  // php_serialize: the outer array's keys are the top-level keys.
  EXPECT_EQ(classify("a:1:{s:15:\"_sf2_attributes\";a:1:{s:14:\"_security_main\";N;}}", false, r),
            SessionClass::authenticated);
  EXPECT_EQ(classify("a:1:{s:14:\"_security_main\";N;}", false, r), SessionClass::anonymous);
}

TEST(SessionClassifierRule, ContainerIsTopLevelAndMarkerIsDirect) {
  expect_class(SessionClass::authenticated,
               {"vzn|a:1:{s:7:\"storage\";N;}", "a:1:{s:3:\"vzn\";a:1:{s:7:\"storage\";N;}}",
                bin_record("vzn", "a:1:{s:7:\"storage\";N;}")});
  expect_class(SessionClass::anonymous,
               {"storage|a:1:{s:1:\"x\";N;}", "storage|s:7:\"storage\";",
                "vzn|a:1:{s:1:\"x\";a:1:{s:7:\"storage\";N;}}", "vzn|a:1:{s:8:\"storages\";N;}",
                "vzn|a:1:{s:7:\"Storage\";N;}", "a:1:{s:7:\"storage\";a:0:{}}", bin_record("storage", "a:0:{}")});
}

TEST(SessionClassifierRule, ExactContainerKey) {
  ClassifierRule r = default_rule();
  r.authenticated[0].container = KeyPattern{"vzn_main", false};
  EXPECT_EQ(classify("vzn_main|a:1:{s:7:\"storage\";N;}", false, r), SessionClass::authenticated);
  EXPECT_EQ(classify("vzn_other|a:1:{s:7:\"storage\";N;}", false, r), SessionClass::anonymous);
  EXPECT_EQ(classify("vzn_mai|a:1:{s:7:\"storage\";N;}", false, r), SessionClass::anonymous);
  EXPECT_EQ(classify("a:2:{s:1:\"x\";a:1:{s:7:\"storage\";N;}s:8:\"vzn_main\";a:0:{}}", false, r),
            SessionClass::anonymous);
  EXPECT_EQ(classify("a:2:{s:1:\"x\";a:0:{}s:8:\"vzn_main\";a:1:{s:7:\"storage\";N;}}", false, r),
            SessionClass::authenticated);
}

TEST(SessionClassifierRule, ObjectsCountLikeArrays) {
  EXPECT_EQ(classify("u|O:8:\"stdClass\":1:{s:7:\"storage\";i:1;}"), SessionClass::authenticated);
  // Protected ("\0*\0storage") and private ("\0User\0storage") properties.
  expect_class(SessionClass::authenticated,
               {"u|O:4:\"User\":1:{s:10:\"\0*\0storage\";i:1;}"sv, "u|O:4:\"User\":1:{s:13:\"\0User\0storage\";i:1;}"sv,
                "u|O:4:\"User\":1:{s:17:\"\0App\\User\0storage\";i:1;}"sv});
  expect_class(SessionClass::anonymous,
               {"u|O:4:\"User\":1:{s:10:\"\0*\0storagx\";i:1;}"sv, "u|O:4:\"User\":1:{s:8:\"\0storage\";i:1;}"sv});
  // Serializable payloads (C:) are opaque.
  EXPECT_EQ(classify("u|C:3:\"Bag\":22:{a:1:{s:7:\"storage\";N;}}"), SessionClass::anonymous);
  // An object cannot stand for php_serialize's outer array.
  EXPECT_EQ(classify("O:8:\"stdClass\":1:{s:3:\"vzn\";a:1:{s:7:\"storage\";N;}}", false,
                     default_rule(SessionFormat::php_serialize)),
            SessionClass::unknown);
}

TEST(SessionClassifierRule, IntegerKeysCompareByTheirDigits) {
  ClassifierRule r = default_rule();
  r.authenticated[0].marker = KeyPattern{"42", false};
  EXPECT_EQ(classify("vzn|a:1:{i:42;b:1;}", false, r), SessionClass::authenticated);
  EXPECT_EQ(classify("vzn|a:1:{i:43;b:1;}", false, r), SessionClass::anonymous);
  r.authenticated[0].container = KeyPattern{"7", false};
  EXPECT_EQ(classify("a:1:{i:7;a:1:{i:42;N;}}", false, r), SessionClass::authenticated);
}

TEST(SessionClassifierRule, ParseAuthenticatedRuleAcceptsTheGrammar) {
  auto r = parse_authenticated_rule("* contains storage");
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->authenticated.size(), 1U);
  EXPECT_EQ(r->authenticated[0], AuthenticatedRule{});
  EXPECT_EQ(to_string(r->authenticated[0]), "* contains storage");
  EXPECT_EQ(r->unknown_key, "__ZF");
  EXPECT_EQ(r->format, SessionFormat::automatic);

  ClassifierRule base;
  base.unknown_key = "";
  base.format = SessionFormat::php_binary;
  r = parse_authenticated_rule(" \t_sf2_attributes   contains\t_security_main \n", base);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->authenticated.size(), 1U);
  EXPECT_EQ(r->authenticated[0].container, (KeyPattern{"_sf2_attributes", false}));
  EXPECT_EQ(r->authenticated[0].marker, (KeyPattern{"_security_main", false}));
  EXPECT_EQ(r->unknown_key, "");
  EXPECT_EQ(r->format, SessionFormat::php_binary);
}

TEST(SessionClassifierRule, ParseAuthenticatedRuleRejectsOtherText) {
  for (const std::string_view bad :
       {""sv, "   "sv, "contains"sv, "* contains"sv, "contains storage"sv, "* has storage"sv, "* CONTAINS storage"sv,
        "* contains storage extra"sv, "*contains storage"sv, "* containsstorage"sv, "storage"sv}) {
    const auto r = parse_authenticated_rule(bad);
    ASSERT_FALSE(r.has_value()) << "accepted \"" << bad << "\"";
    EXPECT_NE(r.error().message.find(coupecircuit::quoted(bad)), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("<container> contains <marker>"), std::string::npos) << r.error().message;
  }
}

TEST(SessionClassifierRule, ParseSessionFormat) {
  EXPECT_EQ(parse_session_format("automatic").value(), SessionFormat::automatic);
  EXPECT_EQ(parse_session_format("auto").value(), SessionFormat::automatic);
  EXPECT_EQ(parse_session_format("php").value(), SessionFormat::php);
  EXPECT_EQ(parse_session_format("php_serialize").value(), SessionFormat::php_serialize);
  EXPECT_EQ(parse_session_format("php_binary").value(), SessionFormat::php_binary);
  for (const std::string_view bad : {""sv, "PHP"sv, "binary"sv, "php "sv, "php_serialise"sv, "wddx"sv}) {
    const auto r = parse_session_format(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().message.find(coupecircuit::quoted(bad)), std::string::npos) << r.error().message;
  }
  for (const SessionFormat f :
       {SessionFormat::automatic, SessionFormat::php, SessionFormat::php_serialize, SessionFormat::php_binary}) {
    EXPECT_EQ(parse_session_format(to_string(f)).value(), f);
  }
}

TEST(SessionClassifierRule, ClassNames) {
  const std::string_view names[] = {"empty", "anonymous", "unknown", "authenticated"};
  for (const SessionClass c :
       {SessionClass::empty, SessionClass::anonymous, SessionClass::unknown, SessionClass::authenticated}) {
    EXPECT_EQ(to_string(c), names[static_cast<std::size_t>(c)]);
  }
  EXPECT_EQ(to_string(static_cast<SessionClass>(kSessionClassCount)), "unknown");
}

// ---------------------------------------------------------------------------
// Grammar

TEST(SessionClassifierGrammar, AcceptsEveryValueForm) {
  for (const std::string_view v :
       {"N;"sv, "b:0;"sv, "b:1;"sv, "i:0;"sv, "i:-12;"sv, "i:+5;"sv, "i:9223372036854775807;"sv, "d:1.5;"sv,
        "d:-0;"sv, "d:0.1;"sv, "d:.5;"sv, "d:5.;"sv, "d:1.0E+25;"sv, "d:-1.5E-10;"sv, "d:1e5;"sv, "d:INF;"sv,
        "d:-INF;"sv, "d:NAN;"sv, "s:0:\"\";"sv, "s:3:\"a\"b\";"sv, "s:1:\"\0\";"sv, "a:0:{}"sv,
        "a:2:{i:0;N;s:1:\"k\";a:1:{i:-1;d:2.5;}}"sv, "O:8:\"stdClass\":0:{}"sv,
        "O:8:\"stdClass\":2:{s:1:\"a\";N;i:0;b:1;}"sv, "O:12:\"App\\Model\\Ab\":0:{}"sv, "C:3:\"Bag\":4:{a|b;}"sv,
        "C:3:\"Bag\":0:{}"sv, "E:11:\"Suit:Hearts\";"sv, "a:2:{i:0;a:0:{}i:1;r:2;}"sv, "a:2:{i:0;N;i:1;R:2;}"sv}) {
    const std::string session = "k|" + std::string(v);
    EXPECT_EQ(classify(session), SessionClass::anonymous) << session;
    EXPECT_EQ(classify(session, false, default_rule(SessionFormat::php)), SessionClass::anonymous) << session;
    EXPECT_EQ(classify("a:1:{s:1:\"k\";" + std::string(v) + "}"), SessionClass::anonymous) << v;
    EXPECT_EQ(classify(bin_record("k", v), false, default_rule(SessionFormat::php_binary)), SessionClass::anonymous)
        << v;
  }
}

TEST(SessionClassifierGrammar, RejectsMalformedValues) {
  for (const std::string_view v : {
           ""sv,                          // no value
           "X;"sv,                        // unknown tag
           "S:1:\"a\";"sv,                // escaped strings are not written by PHP
           "n;"sv, "N"sv, "N:"sv,         // null
           "b:2;"sv, "b:;"sv, "b:1"sv, "b:11;"sv, "b1;"sv,
           "i:;"sv, "i:-;"sv, "i:1.5;"sv, "i:1"sv, "i:12a;"sv, "i 1;"sv,
           "d:;"sv, "d:.;"sv, "d:1e;"sv, "d:1e+;"sv, "d:+INF;"sv, "d:inf;"sv, "d:-NAN;"sv, "d:1.5.5;"sv,
           "d:0x10;"sv, "d:1.5"sv,
           "s:3:\"ab\";"sv, "s:1:\"ab\";"sv, "s:2:\"ab\""sv, "s:2:\"ab;"sv, "s:2:ab;"sv, "s:-1:\"\";"sv,
           "s:+2:\"ab\";"sv, "s::\"\";"sv, "s:2:\"ab\":"sv, "s:99999999999999999999:\"ab\";"sv,
           "a:1:{}"sv, "a:0:{i:0;N;}"sv, "a:2:{i:0;N;}"sv, "a:1:{i:0;N;"sv, "a:1:{N;N;}"sv, "a:1:{d:1;N;}"sv,
           "a:1:{i:0;}"sv, "a:1:{a:0:{}N;}"sv, "a:0:}"sv, "a:0{}"sv, "a:-1:{}"sv, "a:0:{};"sv,
           "a:1:{s:1:\"k\";N;;}"sv,
           "O:0:\"\":0:{}"sv, "O:3:\"a-b\":0:{}"sv, "O:3:\"abc\":0{}"sv, "O:3:\"abc\"0:{}"sv,
           "O:8:\"stdClass\":1:{N;N;}"sv, "O:8:\"stdClass\":0:{};"sv, "O:2:\"abc\":0:{}"sv,
           "C:3:\"Bag\":4:{abc}"sv, "C:3:\"Bag\":2:{abc}"sv, "C:3:\"Bag\":0:{};"sv, "C:3:\"B g\":0:{}"sv,
           "E:3:\"abc\";"sv, "E:4:\"abc:\";"sv, "E:4:\":abc\";"sv, "E:3:\"a:b\""sv,
           "r:0;"sv, "R:0;"sv, "r:;"sv, "r:-1;"sv, "r:1"sv,
       }) {
    const std::string session = "k|" + std::string(v);
    EXPECT_EQ(classify(session, false, default_rule(SessionFormat::php)), SessionClass::unknown) << session;
    EXPECT_EQ(classify(session), SessionClass::unknown) << session;
    EXPECT_EQ(classify("a:1:{s:1:\"k\";" + std::string(v) + "}"), SessionClass::unknown) << v;
    EXPECT_EQ(classify(bin_record("k", v), false, default_rule(SessionFormat::php_binary)), SessionClass::unknown)
        << v;
  }
}

TEST(SessionClassifierGrammar, MalformedSessions) {
  for (const std::string_view s : {
           "Default|a:1:{s:12:\"initialized\";b:1;}"sv,   // bad string length
           "Default|a:1:{s:10:\"initialized\";b:1;}"sv,
           "Default|a:1:{s:11:\"initialized\"b:1;}"sv,    // missing ';'
           "Default|a:1:{s:11:\"initialized\";b:1}"sv,
           "Default|a:2:{s:11:\"initialized\";b:1;}"sv,   // count too high
           "Default|a:0:{s:11:\"initialized\";b:1;}"sv,   // count too low
           "Default|a:1:{s:11:\"initialized\";b:1;"sv,    // unterminated array
           "Default|a:1:{s:11:\"initialized"sv,           // unterminated string
           "Default|a:1:{s:11:\"initialized\";b:1;}}"sv,  // extra '}'
           "Default|a:1:{s:11:\"initialized\";b:1;}x"sv,  // trailing key without '|'
           "Default|"sv,                                  // key without value
           "Default"sv,
           "a:1:{s:7:\"Default\";N;}x"sv,                 // php_serialize with trailing bytes
           "a:2:{s:7:\"Default\";N;}"sv,
           "a:1:{s:7:\"Default\";N;"sv,
           " "sv, "   \n"sv, "\n"sv, "\t\r\n "sv,        // whitespace only
           "\xff\xfe\xfd"sv, "\x01"sv, "\x05" "abc"sv, "\x7f"sv, "\x85"sv, "garbage"sv, "|"sv, "||"sv,
       }) {
    EXPECT_EQ(classify(s), SessionClass::unknown) << s;
    EXPECT_EQ(classify(s, true), SessionClass::unknown) << s;
  }
}

TEST(SessionClassifierGrammar, EmptyFile) {
  EXPECT_EQ(classify(""), SessionClass::empty);
  EXPECT_EQ(classify("", false, symfony_rule(SessionFormat::php_binary)), SessionClass::empty);
  // Nothing was read of a file that has bytes.
  EXPECT_EQ(classify("", true), SessionClass::unknown);
}

TEST(SessionClassifierGrammar, MarkerBeforeMalformedDataStillCounts) {
  expect_class(SessionClass::authenticated, {"vzn|a:1:{s:7:\"storage\";s:9:\"compte_reel\";}",
                                             "vzn|a:1:{s:7:\"storage\";N;}next|garbage", "vzn|a:1:{s:7:\"storage\";"});
  // Malformed before the marker: nothing after the error is trusted.
  expect_class(SessionClass::unknown, {"bad|s:2:\"x\";vzn|a:1:{s:7:\"storage\";N;}", "vzn|a:1:{s:7:\"storage\"N;}",
                                       "vzn|a:1:{s:7:\"storag\";N;}"});
}

TEST(SessionClassifierGrammar, TruncatedFlagMeansUnknownUnlessMarkerSeen) {
  for (const auto& s : kPhpSamples) {
    if (s.data.empty()) continue;
    const SessionClass expected =
        s.by_default == SessionClass::authenticated ? SessionClass::authenticated : SessionClass::unknown;
    EXPECT_EQ(classify(s.data, true), expected) << s.name;
    EXPECT_EQ(classify(s.data, true, default_rule(s.format)), expected) << s.name;
  }
}

// ---------------------------------------------------------------------------
// Truncation at every byte

// Cuts full at every length: from authenticated_from bytes on (the end of
// the marker key) the session is authenticated, before that unknown.
void check_every_prefix(std::string_view full, std::size_t authenticated_from, const ClassifierRule& rule,
                        const std::string& label) {
  ASSERT_LE(authenticated_from, full.size()) << label;
  for (std::size_t len = 0; len < full.size(); ++len) {
    const std::string_view prefix = full.substr(0, len);
    const SessionClass expected = len >= authenticated_from ? SessionClass::authenticated : SessionClass::unknown;
    EXPECT_EQ(classify_session(prefix, true, rule), expected) << label << " cut at " << len;
    // Without the flag, data that stops mid-value reads the same; a prefix
    // that ends on a record boundary is a complete (smaller) session.
    if (len > 0 && expected == SessionClass::authenticated) {
      EXPECT_EQ(classify_session(prefix, false, rule), expected) << label << " ends at " << len;
    } else if (len > 0) {
      EXPECT_NE(classify_session(prefix, false, rule), SessionClass::authenticated) << label << " ends at " << len;
    }
  }
  EXPECT_EQ(classify_session(full, false, rule), SessionClass::authenticated) << label;
  EXPECT_EQ(classify_session(full, true, rule), SessionClass::authenticated) << label;
}

TEST(SessionClassifierTruncation, EveryPrefixOfAuthenticatedZendSessions) {
  constexpr std::string_view kToken = "s:7:\"storage\";"sv;
  for (const std::string_view name : {"zend_authenticated"sv, "zend_marker_last"sv, "adversarial_authenticated"sv}) {
    for (const std::string_view handler : {"php"sv, "php_serialize"sv, "php_binary"sv}) {
      const std::string full_name = std::string(name) + "." + std::string(handler);
      const PhpSample& s = sample(full_name);
      // The marker is the key "storage" inside the vzn container; in the
      // adversarial sample the first s:7:"storage"; is inside a user string.
      std::size_t at = s.data.find(kToken);
      if (name == "adversarial_authenticated"sv) at = s.data.find(kToken, at + 1);
      ASSERT_NE(at, std::string_view::npos) << full_name;
      check_every_prefix(s.data, at + kToken.size(), default_rule(), full_name + " automatic");
      check_every_prefix(s.data, at + kToken.size(), default_rule(s.format), full_name + " fixed");
    }
  }
}

TEST(SessionClassifierTruncation, EveryPrefixOfSymfonySession) {
  for (const std::string_view handler : {"php"sv, "php_serialize"sv, "php_binary"sv}) {
    const std::string full_name = "symfony_authenticated." + std::string(handler);
    const PhpSample& s = sample(full_name);
    constexpr std::string_view kToken = "s:14:\"_security_main\";"sv;
    const std::size_t at = s.data.find(kToken);
    ASSERT_NE(at, std::string_view::npos) << full_name;
    check_every_prefix(s.data, at + kToken.size(), symfony_rule(), full_name);
    check_every_prefix(s.data, at + kToken.size(), symfony_rule(s.format), full_name + " fixed");
  }
}

TEST(SessionClassifierTruncation, EveryPrefixOfAnonymousSessionIsNeverAuthenticated) {
  for (const auto& s : kPhpSamples) {
    if (s.by_default == SessionClass::authenticated) continue;
    for (std::size_t len = 1; len < s.data.size(); ++len) {
      EXPECT_EQ(classify(s.data.substr(0, len), true), SessionClass::unknown) << s.name << " cut at " << len;
    }
  }
}

// A 64 KiB read cap: a marker that starts about 60 KiB in is still seen.
TEST(SessionClassifierTruncation, MarkerNearTheEndOfTheReadCap) {
  const std::string blob(60 * 1024, 'x');
  const std::string tail_blob(16 * 1024, 'y');
  const std::string marker_value = "a:1:{s:7:\"storage\";s:11:\"compte_reel\";}";
  const std::string php = "Default|a:1:{s:11:\"initialized\";b:1;}blob|" + ser(blob) + "vzn_x|" + marker_value +
                          "tail|" + ser(tail_blob);
  const std::string serialized = "a:4:{s:7:\"Default\";a:1:{s:11:\"initialized\";b:1;}s:4:\"blob\";" + ser(blob) +
                                 "s:5:\"vzn_x\";" + marker_value + "s:4:\"tail\";" + ser(tail_blob) + "}";
  const std::string binary = bin_record("Default", "a:1:{s:11:\"initialized\";b:1;}") + bin_record("blob", ser(blob)) +
                             bin_record("vzn_x", marker_value) + bin_record("tail", ser(tail_blob));
  for (const std::string* full : {&php, &serialized, &binary}) {
    ASSERT_GT(full->size(), kCap);
    const std::size_t at = full->find("s:7:\"storage\";");
    ASSERT_GT(at, 60U * 1024U);
    ASSERT_LT(at, kCap);
    const std::string_view capped = std::string_view(*full).substr(0, kCap);
    EXPECT_EQ(classify(capped, true), SessionClass::authenticated);
    EXPECT_EQ(classify(*full, false), SessionClass::authenticated);
    // The same file without the marker is unknown when capped.
    std::string no_marker = *full;
    no_marker.replace(at, 14, "s:7:\"storagf\";");
    EXPECT_EQ(classify(std::string_view(no_marker).substr(0, kCap), true), SessionClass::unknown);
    EXPECT_EQ(classify(no_marker, false), SessionClass::anonymous);
  }
  // Marker past the cap: unknown.
  const std::string far = "blob|" + ser(std::string(70 * 1024, 'z')) + "vzn_x|" + marker_value;
  EXPECT_EQ(classify(std::string_view(far).substr(0, kCap), true), SessionClass::unknown);
  EXPECT_EQ(classify(far, false), SessionClass::authenticated);
}

// ---------------------------------------------------------------------------
// Adversarial user data

TEST(SessionClassifierAdversarial, PipesAndMarkersInsideStringsDoNotCount) {
  const std::string fake = "x|vzn|a:1:{s:7:\"storage\";s:11:\"compte_reel\";}";
  const std::string php = "Default|a:1:{s:4:\"note\";" + ser(fake) + "}";
  EXPECT_EQ(classify(php), SessionClass::anonymous);
  EXPECT_EQ(classify(php, false, default_rule(SessionFormat::php)), SessionClass::anonymous);
  // The string as the last value of a record: its tail looks like a record.
  expect_class(SessionClass::anonymous,
               {"note|" + ser(fake), "vzn|a:1:{s:7:\"comment\";" + ser("s:7:\"storage\";") + "}",
                "vzn|a:1:{s:7:\"comment\";s:7:\"storage\";}", "vzn|a:1:{i:0;" + ser("storage") + "}"});
  // A user-chosen key is still a key: that is what the rule asks for.
  EXPECT_EQ(classify("vzn|a:1:{" + ser("storage") + ser("|") + "}"), SessionClass::authenticated);
}

// A php_serialize file whose user string makes its tail look like a php
// record: php_serialize is tried first, so the fake marker is ignored.
TEST(SessionClassifierAdversarial, PhpSerializeWinsOverAFakePhpReading) {
  const std::string user = "x|a:1:{s:7:\"storage\";s:1:\"z";
  const std::string data = "a:1:{s:4:\"note\";" + ser(user) + "}";
  // Read as php, the key is everything up to the user's '|' and the value
  // ends exactly where the file ends.
  EXPECT_EQ(classify(data, false, default_rule(SessionFormat::php)), SessionClass::authenticated);
  EXPECT_EQ(classify(data, false, default_rule(SessionFormat::php_serialize)), SessionClass::anonymous);
  EXPECT_EQ(classify(data), SessionClass::anonymous);
}

// A php_binary file whose user string holds '|' and the start of a value
// that the file's own closing bytes complete: read as php, the key is made
// of binary length bytes, which automatic detection rejects.
TEST(SessionClassifierAdversarial, PhpBinaryIsNotReadAsPhp) {
  const std::string data = bin_record("Default", "a:1:{s:11:\"initialized\";b:1;}") +
                           bin_record("note", "a:1:{i:0;" + ser("|a:1:{s:7:\"storage\";s:1:\"z") + "}");
  EXPECT_EQ(classify(data, false, default_rule(SessionFormat::php_binary)), SessionClass::anonymous);
  EXPECT_EQ(classify(data), SessionClass::anonymous);
  // The fixed php format has no such check, and is fooled.
  EXPECT_EQ(classify(data, false, default_rule(SessionFormat::php)), SessionClass::authenticated);
}

TEST(SessionClassifierAdversarial, DeepNestingIsBounded) {
  auto nested = [](std::size_t depth) {
    std::string s = "k|";
    for (std::size_t i = 0; i < depth; ++i) s += "a:1:{i:0;";
    s += "N;";
    s += std::string(depth, '}');
    return s;
  };
  expect_class(SessionClass::anonymous, {nested(1), nested(64)});
  expect_class(SessionClass::unknown, {nested(65), nested(1000), nested(200000)});
  // Unterminated, very deep, in every format.
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "a:1:{i:0;";
  EXPECT_EQ(classify("k|" + deep), SessionClass::unknown);
  EXPECT_EQ(classify("a:1:{s:1:\"k\";" + deep), SessionClass::unknown);
  EXPECT_EQ(classify(bin_record("k", deep)), SessionClass::unknown);
  // A marker read before the depth bound is exceeded still counts.
  EXPECT_EQ(classify("vzn|a:2:{s:7:\"storage\";N;i:0;" + deep), SessionClass::authenticated);
  // Objects count towards the same bound.
  std::string objects = "k|";
  for (int i = 0; i < 65; ++i) objects += "O:8:\"stdClass\":1:{i:0;";
  objects += "N;" + std::string(65, '}');
  EXPECT_EQ(classify(objects), SessionClass::unknown);
}

TEST(SessionClassifierAdversarial, HugeCountsAndLengthsDoNotOverrun) {
  expect_class(SessionClass::unknown, {"k|a:18446744073709551615:{}", "k|a:4611686018427387903:{i:0;N;}",
                                       "k|s:4611686018427387903:\"abc\";", "k|s:18446744073709551616:\"abc\";",
                                       "k|C:3:\"Bag\":4611686018427387903:{}", "k|O:4611686018427387903:\"a\":0:{}",
                                       "k|E:4611686018427387903:\"a:b\";", "k|d:" + std::string(100, '1') + "x;",
                                       "k|s:288230376151711743:\"abc\";", "k|s:1844674407370955161:\"abc\";"});
  expect_class(SessionClass::anonymous, {"k|d:" + std::string(100, '1') + ";", "k|i:" + std::string(100, '1') + ";"});
}

// ---------------------------------------------------------------------------
// Automatic detection

TEST(SessionClassifierDetection, PicksTheFormatThatReadsTheFile) {
  // php_binary records, including an empty key and a key of 127 bytes.
  EXPECT_EQ(classify("\0N;"sv), SessionClass::anonymous);
  EXPECT_EQ(classify(bin_record(std::string(127, 'k'), "a:1:{s:7:\"storage\";N;}")), SessionClass::authenticated);
  // Bit 0x80 of the length byte: an undefined variable, no value follows.
  const std::string undefined = std::string(1, static_cast<char>(0x80 | 3)) + "abc";
  EXPECT_EQ(classify(undefined + bin_record("vzn", "a:1:{s:7:\"storage\";N;}")), SessionClass::authenticated);
  EXPECT_EQ(classify(undefined + bin_record("k", "N;")), SessionClass::anonymous);
  std::string undefined_zf = std::string(1, static_cast<char>(0x80 | 4)) + "__ZF";
  // Undefined variables only: no session variable at all.
  EXPECT_EQ(classify(undefined_zf), SessionClass::empty);
  EXPECT_EQ(classify("\x80"sv), SessionClass::empty);  // one undefined variable with an empty name
  EXPECT_EQ(classify(bin_record("__ZF", "N;")), SessionClass::unknown);
  // php keys may hold anything but '|', including the empty key.
  EXPECT_EQ(classify("|N;"), SessionClass::anonymous);
  EXPECT_EQ(classify("a b:c{|N;"), SessionClass::anonymous);
  // php_serialize: the outer array only (empty: no variable at all).
  EXPECT_EQ(classify("a:0:{}"), SessionClass::empty);
  EXPECT_EQ(classify("a:1:{s:4:\"__ZF\";a:0:{}}"), SessionClass::unknown);
  EXPECT_EQ(classify("a:1:{i:0;N;}"), SessionClass::anonymous);
}

TEST(SessionClassifierDetection, ControlBytesInPhpKeysOnlyWithFixedFormat) {
  const std::string data = "k\x01|a:1:{s:7:\"storage\";N;}";
  EXPECT_EQ(classify(data, false, default_rule(SessionFormat::php)), SessionClass::authenticated);
  EXPECT_NE(classify(data), SessionClass::authenticated);
}

TEST(SessionClassifierDetection, TruncatedFilesKeepTheirFormat) {
  // A php_serialize prefix that holds the marker but no complete top-level
  // pair: its tokens beat the other readings.
  EXPECT_EQ(classify("a:2:{s:3:\"vzn\";a:1:{s:7:\"storage\";", true), SessionClass::authenticated);
  EXPECT_EQ(classify("\x03vzna:2:{s:7:\"storage\";", true), SessionClass::authenticated);
  EXPECT_EQ(classify("vzn|a:2:{s:7:\"storage\";", true), SessionClass::authenticated);
}

// ---------------------------------------------------------------------------
// Robustness

TEST(SessionClassifierRobustness, RandomBytesNeverAuthenticate) {
  std::uint64_t state = 0x9E3779B97F4A7C15ULL;
  auto next = [&state] {
    state ^= state << 13U;
    state ^= state >> 7U;
    state ^= state << 17U;
    return state;
  };
  std::string buf;
  for (int round = 0; round < 20000; ++round) {
    const std::size_t len = static_cast<std::size_t>(next() % 64U);
    buf.assign(len, '\0');
    for (auto& c : buf) c = static_cast<char>(next() & 0xffU);
    for (const bool truncated : {false, true}) {
      EXPECT_NE(classify(buf, truncated), SessionClass::authenticated) << round;
      EXPECT_NE(classify(buf, truncated, symfony_rule(SessionFormat::php_binary)), SessionClass::authenticated);
    }
  }
}

// Every single-byte mutation of a real authenticated session: no crash, and
// no mutation of bytes after the marker turns it into something else.
TEST(SessionClassifierRobustness, SingleByteMutations) {
  for (const std::string_view name :
       {"zend_authenticated.php"sv, "zend_authenticated.php_serialize"sv, "zend_authenticated.php_binary"sv}) {
    const PhpSample& s = sample(name);
    const std::size_t marker_end = s.data.find("s:7:\"storage\";") + 14;
    std::string data(s.data);
    for (std::size_t i = marker_end; i < data.size(); ++i) {
      for (const char c : {'\0', '|', ';', '}', '"', 'a', '9', ':'}) {
        const char saved = data[i];
        data[i] = c;
        EXPECT_EQ(classify(data), SessionClass::authenticated) << name << " byte " << i;
        data[i] = saved;
      }
    }
    for (std::size_t i = 0; i < marker_end; ++i) {
      for (const char c : {'\0', '|', ';', '}', '"', 'a', '9', ':', '\xff'}) {
        const char saved = data[i];
        data[i] = c;
        (void)classify(data);
        (void)classify(data, true, symfony_rule());
        data[i] = saved;
      }
    }
  }
}

}  // namespace
}  // namespace coupecircuit
