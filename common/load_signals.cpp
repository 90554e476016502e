#include "load_signals.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "decimal.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {
namespace {

// /proc files are small; one read is enough.
Result<std::string> read_small_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return make_error("cannot open " + path + ": " + std::strerror(errno), errno);
  std::string text(8192, '\0');
  ssize_t got = 0;
  do {
    got = ::read(fd.get(), text.data(), text.size());
  } while (got < 0 && errno == EINTR);
  if (got < 0) return make_error("cannot read " + path + ": " + std::strerror(errno), errno);
  text.resize(static_cast<std::size_t>(got));
  return text;
}

std::string_view next_token(std::string_view& text) {
  std::size_t start = 0;
  while (start < text.size() && (text[start] == ' ' || text[start] == '\t' || text[start] == '\n')) ++start;
  std::size_t end = start;
  while (end < text.size() && text[end] != ' ' && text[end] != '\t' && text[end] != '\n') ++end;
  const std::string_view token = text.substr(start, end - start);
  text.remove_prefix(end);
  return token;
}

std::uint32_t clamp32(std::uint64_t value) noexcept {
  return value > 0xffffffffULL ? 0xffffffffU : static_cast<std::uint32_t>(value);
}

}  // namespace

Result<std::array<std::uint32_t, 3>> parse_loadavg(std::string_view text) {
  std::array<std::uint32_t, 3> result{};
  for (auto& value : result) {
    auto parsed = parse_centi(next_token(text));
    if (!parsed) return make_error("unexpected /proc/loadavg: " + parsed.error().message);
    value = clamp32(*parsed);
  }
  return result;
}

Result<std::uint32_t> parse_psi_some_avg10(std::string_view text) {
  const auto line_end = text.find('\n');
  std::string_view line = text.substr(0, line_end);
  if (next_token(line) != "some") return make_error("unexpected pressure file: no \"some\" line first");
  const std::string_view field = next_token(line);
  constexpr std::string_view kPrefix = "avg10=";
  if (field.substr(0, kPrefix.size()) != kPrefix) return make_error("unexpected pressure file: no avg10");
  auto parsed = parse_centi(field.substr(kPrefix.size()));
  if (!parsed) return make_error("unexpected pressure avg10: " + parsed.error().message);
  return clamp32(*parsed);
}

namespace {

// The /proc/meminfo fields the helper reads, in kB.
struct MeminfoFields {
  std::optional<std::uint64_t> total;
  std::optional<std::uint64_t> available;
  std::optional<std::uint64_t> swap_total;
  std::optional<std::uint64_t> swap_free;

  std::optional<std::uint64_t>* field(std::string_view key) noexcept {
    if (key == "MemTotal") return &total;
    if (key == "MemAvailable") return &available;
    if (key == "SwapTotal") return &swap_total;
    if (key == "SwapFree") return &swap_free;
    return nullptr;
  }
};

// One "Key:   value kB" line into its field, if it is one of them.
Result<void> read_meminfo_line(std::string_view line, MeminfoFields& fields) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return {};
  const std::string_view key = line.substr(0, colon);
  std::optional<std::uint64_t>* target = fields.field(key);
  if (target == nullptr) return {};
  std::string_view rest = line.substr(colon + 1);
  auto value = parse_unsigned(next_token(rest), ~0ULL / 10000);
  if (!value) return make_error("unexpected /proc/meminfo " + std::string(key) + ": " + value.error().message);
  *target = *value;
  return {};
}

}  // namespace

Result<MemoryPercent> parse_meminfo(std::string_view text) {
  MeminfoFields fields;
  while (!text.empty()) {
    const auto line_end = text.find('\n');
    const std::string_view line = text.substr(0, line_end);
    text.remove_prefix(line_end == std::string_view::npos ? text.size() : line_end + 1);
    auto read = read_meminfo_line(line, fields);
    if (!read) return read.error();
  }
  const auto& [total, available, swap_total, swap_free] = fields;
  if (!total || !available || *total == 0) return make_error("unexpected /proc/meminfo: no MemTotal/MemAvailable");
  MemoryPercent result{};
  result.available_centi_pct = clamp32(*available * 10000 / *total);
  if (swap_total && swap_free && *swap_total > 0 && *swap_free <= *swap_total) {
    result.swap_used_centi_pct = clamp32((*swap_total - *swap_free) * 10000 / *swap_total);
  }
  return result;
}

Result<LoadSignals> read_load_signals(const std::string& proc_root) {
  LoadSignals signals;
  auto loadavg_text = read_small_file(proc_root + "/loadavg");
  if (!loadavg_text) return loadavg_text.error();
  auto loadavg = parse_loadavg(*loadavg_text);
  if (!loadavg) return loadavg.error();
  signals.load_centi = *loadavg;

  // Kernels without PSI (or with psi=0) have no /proc/pressure: a flag, not an error.
  signals.psi_available = true;
  const char* resources[] = {"cpu", "memory", "io"};
  for (std::size_t i = 0; i < 3; ++i) {
    auto text = read_small_file(proc_root + "/pressure/" + resources[i]);
    auto value = text ? parse_psi_some_avg10(*text) : Result<std::uint32_t>(text.error());
    if (!value) {
      signals.psi_available = false;
      signals.psi_some_avg10_centi = {};
      break;
    }
    signals.psi_some_avg10_centi[i] = *value;
  }

  auto meminfo_text = read_small_file(proc_root + "/meminfo");
  if (!meminfo_text) return meminfo_text.error();
  auto memory = parse_meminfo(*meminfo_text);
  if (!memory) return memory.error();
  signals.mem_available_centi_pct = memory->available_centi_pct;
  signals.swap_used_centi_pct = memory->swap_used_centi_pct;
  return signals;
}

}  // namespace coupecircuit
