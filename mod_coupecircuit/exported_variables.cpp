#include "exported_variables.hpp"

#include <cstring>
#include <mutex>
#include <string>
#include <unordered_set>

#include "probe_results.hpp"
#include "probe_table.hpp"
#include "snapshot.hpp"

namespace coupecircuit::module {
namespace {

// The texts of 0 to 9999 and 0.00 to 99.99, made at compile time: in static
// storage, they outlive every request that points at them.
constexpr std::uint64_t kStaticNumbers = 10000;
constexpr std::size_t kStaticTextSize = 8;

struct NumberTexts {
  char text[kStaticNumbers][kStaticTextSize];
};

constexpr NumberTexts make_number_texts(bool centi) noexcept {
  NumberTexts texts{};
  for (std::uint64_t n = 0; n < kStaticNumbers; ++n) {
    char* out = texts.text[n];
    const std::uint64_t whole = centi ? n / 100 : n;
    std::size_t length = 0;
    for (std::uint64_t unit = 1000; unit > 1; unit /= 10) {
      if (whole >= unit || length > 0) out[length++] = static_cast<char>('0' + whole / unit % 10);
    }
    out[length++] = static_cast<char>('0' + whole % 10);
    if (centi) {
      out[length++] = '.';
      out[length++] = static_cast<char>('0' + n / 10 % 10);
      out[length++] = static_cast<char>('0' + n % 10);
    }
  }
  return texts;
}

constexpr NumberTexts kUnsignedTexts = make_number_texts(false);
constexpr NumberTexts kCentiTexts = make_number_texts(true);

// The snapshot's texts come from the payload copy of one thread: never lasting.
ExportText from_payload(const char* text) noexcept { return {text, false}; }

ExportText threshold_text(const snapshot::ThresholdSet* from, const ExportInputs& inputs, bool load) noexcept {
  if (from == nullptr) return {};
  return {load ? from->load_text : from->sessions_text, from == inputs.directive};
}

}  // namespace

ExportText text_of(const ExportedVariable& variable, const ExportInputs& inputs) noexcept {
  const snapshot::Payload* payload = inputs.payload;
  switch (variable.source) {
    case TextSource::payload_text:
      return payload != nullptr ? from_payload(payload->*variable.payload_text) : ExportText{};
    case TextSource::sessions_text:
      return payload != nullptr && snapshot::sessions_known(*payload) ? from_payload(payload->sessions_active_text)
                                                                      : ExportText{};
    case TextSource::cut_flag:
      if (payload == nullptr) return {};
      return {(payload->flags & snapshot::kFlagCutActive) != 0 ? "1" : "0", true};
    case TextSource::sessions_threshold: return threshold_text(inputs.thresholds.sessions_from, inputs, false);
    case TextSource::load_threshold: return threshold_text(inputs.thresholds.load_from, inputs, true);
    case TextSource::verdict: return {verdict_text(inputs.verdict), true};
    case TextSource::age: return {inputs.age, false};
    case TextSource::probes_down:
      if (payload == nullptr || !probe_table::fresh(*payload)) return {};
      return {intern_text(probe_table::text(payload->probes_down_text)), true};
  }
  return {};
}

const char* intern_text(std::string_view text) noexcept {
  if (text.empty()) return "";
  // Never freed: requests of any thread may point at an entry until they end.
  static std::mutex mutex;
  static auto* texts = new std::unordered_set<std::string>();  // NOLINT(cppcoreguidelines-owning-memory)
  try {
    std::lock_guard lock(mutex);
    auto found = texts->find(std::string(text));
    if (found != texts->end()) return found->c_str();
    if (texts->size() >= kMaxInternedTexts) return nullptr;
    return texts->emplace(text).first->c_str();
  } catch (...) {
    return nullptr;
  }
}

void fill_probe_tail(const snapshot::Payload& payload, ProbeTail& tail) noexcept {
  tail.count = 0;
  if (!probe_table::fresh(payload)) return;
  for (std::uint32_t i = 0; i < probe_table::count(payload); ++i) {
    const auto& entry = payload.probes[i];
    if (!probe_table::has_saturation(entry)) continue;
    const char* value = static_unsigned_text(entry.saturation_pct);
    const char* name = nullptr;
    try {
      name = intern_text(probes::saturation_variable_name(probe_table::text(entry.name)));
    } catch (...) {
    }
    if (value == nullptr || name == nullptr) continue;
    tail.name[tail.count] = name;
    tail.value[tail.count] = value;
    ++tail.count;
  }
}

const char* verdict_text(Verdict verdict) noexcept {
  return verdict_word(verdict);
}

const char* static_unsigned_text(std::uint64_t value) noexcept {
  return value < kStaticNumbers ? kUnsignedTexts.text[value] : nullptr;
}

const char* static_number_text(const char* rendered) noexcept {
  // Digits, then an optional '.' and exactly two digits.
  std::uint64_t whole = 0;
  std::size_t digits = 0;
  const char* p = rendered;
  for (; *p >= '0' && *p <= '9' && digits < 5; ++p, ++digits) whole = whole * 10 + static_cast<std::uint64_t>(*p - '0');
  if (digits == 0) return nullptr;
  const NumberTexts* texts = &kUnsignedTexts;
  std::uint64_t index = whole;
  if (*p == '.') {
    if (p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9') return nullptr;
    index = whole * 100 + static_cast<std::uint64_t>(p[1] - '0') * 10 + static_cast<std::uint64_t>(p[2] - '0');
    texts = &kCentiTexts;
  }
  if (index >= kStaticNumbers) return nullptr;
  const char* text = texts->text[index];
  // The same rendering exactly (no leading zeros, nothing after).
  return std::strncmp(text, rendered, kStaticTextSize) == 0 ? text : nullptr;
}

}  // namespace coupecircuit::module
