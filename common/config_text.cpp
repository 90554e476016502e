#include "config_text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "decimal.hpp"
#include "read_file.hpp"
#include "text.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {
namespace {

// "[name]" (blanks around allowed, a comment after it too): the name, else nullopt.
std::optional<std::string_view> section_header(std::string_view line) {
  const auto first = line.find_first_not_of(" \t");
  if (first == std::string_view::npos || line[first] != '[') return std::nullopt;
  const auto close = line.find(']', first);
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view name = line.substr(first + 1, close - first - 1);
  while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  return name;
}

}  // namespace

char* ini_read_line(char* buffer, int size, void* stream) {
  auto* reader = static_cast<IniLineReader*>(stream);
  if (reader->rest.empty() || size < 2) return nullptr;
  const auto newline = reader->rest.find('\n');
  std::string_view line = reader->rest.substr(0, newline);
  reader->rest.remove_prefix(newline == std::string_view::npos ? reader->rest.size() : newline + 1);
  ++reader->line;
  reader->indented = !line.empty() && (line.front() == ' ' || line.front() == '\t');
  const auto capacity = static_cast<std::size_t>(size) - 1;
  reader->longest_allowed = capacity;
  if (line.size() > capacity) {
    const auto first = line.find_first_not_of(" \t");
    const bool comment = first != std::string_view::npos && (line[first] == ';' || line[first] == '#');
    if (comment) {
      line = line.substr(0, capacity);  // still a comment once cut
    } else {
      if (reader->overlong_line == 0) reader->overlong_line = reader->line;
      line = {};
    }
  }
  if (const auto name = section_header(line); name && !reader->indented) {
    reader->sections.push_back({std::string(*name), reader->line});
  }
  if (!line.empty()) std::memcpy(buffer, line.data(), line.size());
  buffer[line.size()] = '\0';
  return buffer;
}

std::string ini_error(const IniLineReader& reader, const std::string& source_name, int line, int rejected_line,
                      const std::string& rejected_why) {
  if (line < 0) return source_name + ": cannot read";
  // inih returns the first line with an error of any kind: a rejected
  // setting, or a syntax error (which does not reach the handler).
  std::string why = "syntax error";
  if (reader.overlong_line != 0 && (line == 0 || reader.overlong_line < line)) {
    line = reader.overlong_line;
    why = "line longer than " + std::to_string(reader.longest_allowed) + " characters";
  } else if (line != 0 && line == rejected_line) {
    why = rejected_why;
  }
  if (line == 0) return {};
  return source_name + ":" + std::to_string(line) + ": " + why;
}

Result<std::optional<std::string>> read_config_file(const std::string& path, bool required) {
  const auto failure = [&path](const char* what) {
    const int saved = errno;
    return make_error(std::string(what) + " config file " + path + ": " + std::strerror(saved), saved);
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    if (!required && errno == ENOENT) return std::optional<std::string>();
    return failure("cannot open");
  }
  auto text = read_regular_file(fd.get(), "config file", path, kMaxConfigBytes);
  if (!text) return text.error();
  return std::optional<std::string>(std::move(*text));
}

Result<std::string> read_password_file(const std::string& path, std::string_view what) {
  const std::string name = std::string(what) + " " + path;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    const int saved = errno;
    return make_error(name + ": " + std::strerror(saved), saved);
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) return make_error(name + " is not a regular file");
  if (info.st_uid != 0 && info.st_uid != ::geteuid()) return make_error(name + " is not owned by root");
  if ((info.st_mode & 077) != 0) {
    return make_error(name + " is readable or writable by group or others (chmod 600 it)");
  }
  if (info.st_size > 4096) return make_error(name + " is larger than 4 KiB");
  std::string text(static_cast<std::size_t>(info.st_size), '\0');
  const ssize_t got = ::read(fd.get(), text.data(), text.size());
  if (got < 0) return make_error(name + ": cannot read");
  text.resize(static_cast<std::size_t>(got));
  const auto newline = text.find_first_of("\r\n");
  if (newline != std::string::npos) text.resize(newline);
  if (text.empty()) return make_error(name + " is empty (its first line is the secret)");
  return text;
}

Result<std::uint32_t> parse_bounded(std::string_view value, std::uint64_t min, std::uint64_t max) {
  auto parsed = parse_unsigned(value, max);
  if (!parsed) return parsed.error();
  if (*parsed < min) return make_error(quoted(value) + " is below the minimum " + std::to_string(min));
  return static_cast<std::uint32_t>(*parsed);
}

Result<bool> parse_boolean(std::string_view value) {
  for (const std::string_view yes : {"yes", "true", "on", "1"}) {
    if (value == yes) return true;
  }
  for (const std::string_view no : {"no", "false", "off", "0"}) {
    if (value == no) return false;
  }
  return make_error(quoted(value) + " is not yes or no");
}

std::string apply_absolute_path(std::string_view key, std::string_view value, std::string& out) {
  if (value.empty() || value.front() != '/') return std::string(key) + " must be an absolute path";
  out = std::string(value);
  return {};
}

}  // namespace coupecircuit
