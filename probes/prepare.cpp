#include "prepare.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <libpq-fe.h>
#include <pcre2.h>

#include <memory>

#include "checks.hpp"
#include "config_text.hpp"

namespace coupecircuit::probes {
namespace {

// PQconninfoParse's own message would quote the string: only say that it is not valid.
Result<void> check_conninfo(const std::string& conninfo) {
  char* message = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &message);
  if (message != nullptr) PQfreemem(message);
  if (options == nullptr) return make_error("is not a valid libpq connection string");
  PQconninfoFree(options);
  return {};
}

}  // namespace

Result<void> check_body_pattern(const std::string& pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> code(
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), 0, &error, &offset, nullptr),
      pcre2_code_free);
  if (code) return {};
  PCRE2_UCHAR text[160] = {};
  pcre2_get_error_message(error, text, sizeof text);
  return make_error("not a valid PCRE2 pattern at offset " + std::to_string(offset) + ": " +
                    reinterpret_cast<const char*>(text));
}

Result<void> prepare_probes(ProbesConfig& config, const std::string& source_name) {
  for (auto& spec : config.probes) {
    const auto at = [&](int line) { return source_name + ":" + std::to_string(line) + ": [probe " + spec.name + "] "; };
    if (spec.type == ProbeType::http && !spec.http.body_regex.empty()) {
      if (auto valid = check_body_pattern(spec.http.body_regex); !valid) {
        return make_error(at(spec.http.body_line) + "body: " + valid.error().message);
      }
    }
    spec.secret.clear();
    if (spec.type == ProbeType::redis && !spec.redis.auth_file.empty()) {
      auto password = read_password_file(spec.redis.auth_file, "auth_file");
      if (!password) return make_error(at(spec.secret_file_line) + password.error().message);
      spec.secret = std::move(*password);
    }
    if (spec.type == ProbeType::postgresql) {
      auto conninfo = read_password_file(spec.postgresql.conninfo_file, "conninfo_file");
      if (!conninfo) return make_error(at(spec.secret_file_line) + conninfo.error().message);
      if (auto valid = check_conninfo(*conninfo); !valid) {
        return make_error(at(spec.secret_file_line) + "conninfo_file " + spec.postgresql.conninfo_file + " " +
                          valid.error().message);
      }
      spec.secret = std::move(*conninfo);
    }
  }
  return {};
}

}  // namespace coupecircuit::probes
