// libFuzzer target for the control state file (common/state_file.cpp), read
// by coupecircuitd and rewritten by coupecircuitctl. Two readings of the
// input:
//  1. As the file's JSON text: parse_state never throws; when it accepts,
//     serialize_state does not throw and parse_state(serialize_state(x)) == x,
//     and the state fits the snapshot (apply_state_to_payload keeps every
//     vhost and NUL-terminates every text).
//  2. As the fields an operator gives coupecircuitctl (a cut reason, vhost
//     names, numbers): what validate_cut_reason and validate_vhost_name
//     accept is what coupecircuitctl writes, so serialize_state must not
//     throw on it and must read back equal (coupecircuitctl checks the
//     rewritten state with parse_state before saving it).
// Seed corpus: tests/fuzz/corpus/state_file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "decimal.hpp"
#include "snapshot.hpp"
#include "state_file.hpp"

namespace {

using coupecircuit::ControlState;
using coupecircuit::parse_state;
using coupecircuit::serialize_state;

void check(bool ok) {
  if (!ok) std::abort();
}

template <std::size_t N>
bool terminated(const char (&text)[N]) {
  return ::strnlen(text, N) < N;
}

void check_round_trip(const ControlState& state) {
  const std::string text = serialize_state(state);
  auto again = parse_state(text);
  check(again.has_value());
  check(*again == state);
  check(serialize_state(*again) == text);

  coupecircuit::snapshot::Payload payload{};
  coupecircuit::apply_state_to_payload(state, payload);
  check(payload.vhost_override_count == state.vhosts.size());
  check(terminated(payload.cut_reason));
  check(std::string(payload.cut_reason) == (state.cut_active ? state.cut_reason : std::string()));
  for (std::uint32_t i = 0; i < payload.vhost_override_count; ++i) {
    const auto& entry = payload.vhost_overrides[i];
    check(terminated(entry.name) && terminated(entry.thresholds.load_text) && terminated(entry.thresholds.sessions_text));
    check(state.vhosts.count(entry.name) == 1);
  }
}

// Reads fields from the input the way an operator's arguments arrive.
class Fields {
 public:
  Fields(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t byte() { return offset_ < size_ ? data_[offset_++] : 0; }
  std::uint64_t number() {
    std::uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value = value << 8 | byte();
    return value;
  }
  std::string text() {
    const std::size_t length = byte() % 160;
    std::string result;
    while (result.size() < length && offset_ < size_) result += static_cast<char>(data_[offset_++]);
    return result;
  }
  [[nodiscard]] bool done() const { return offset_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t offset_ = 0;
};

void operator_fields(const std::uint8_t* data, std::size_t size) {
  Fields fields(data, size);
  ControlState state;
  state.cut_active = (fields.byte() & 1U) != 0;
  const std::string reason = fields.text();
  if (coupecircuit::validate_cut_reason(reason)) state.cut_reason = reason;
  state.cut_since = static_cast<std::int64_t>(fields.number() >> 1);
  if ((fields.byte() & 1U) != 0) state.global.sessions = fields.number() % coupecircuit::kMaxSessionsValue + 1;
  if ((fields.byte() & 1U) != 0) state.global.load_centi = fields.number() % coupecircuit::kMaxLoadCenti + 1;
  while (!fields.done() && state.vhosts.size() < coupecircuit::snapshot::kMaxVhostOverrides) {
    const std::string name = fields.text();
    coupecircuit::ThresholdOverride value;
    value.sessions = fields.number() % coupecircuit::kMaxSessionsValue + 1;
    if ((fields.byte() & 1U) != 0) value.load_centi = fields.number() % coupecircuit::kMaxLoadCenti + 1;
    if (coupecircuit::validate_vhost_name(name)) state.vhosts[coupecircuit::normalize_vhost_name(name)] = value;
  }
  check_round_trip(state);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 256 * 1024) return -1;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_state(text);
  if (parsed) check_round_trip(*parsed);
  operator_fields(data, size);
  return 0;
}
