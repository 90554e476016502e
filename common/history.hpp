// The last hour of the node, for the status page's chart: one point every
// 10 s (sessions, load 1 min, cut, sessions unknown), kept by coupecircuitd
// in memory and written as a whole to a small file of its own next to the
// snapshot (snapshot path + ".history"), by a new file renamed over the old.
//
// Why not in the snapshot: every request copies the snapshot's payload when
// it changes; the history is read only by the status handler, which reads
// the file (about 9 KB) per page view. The file survives a helper restart:
// the helper reads it back at start and goes on from there.
//
// File layout (little-endian, fixed-size records):
//   FileHeader (24 bytes), then `count` Points (24 bytes each), oldest
//   first. The file's size is exactly 24 + 24 * count, count <= kCapacity.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"
#include "snapshot_layout.hpp"

namespace coupecircuit::history {

inline constexpr std::uint32_t kMagic = 0x49484343U;  // "CCHI" little-endian
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::int64_t kIntervalSeconds = 10;
inline constexpr std::size_t kCapacity = 360;  // one hour
inline constexpr std::int64_t kSpanSeconds = kIntervalSeconds * static_cast<std::int64_t>(kCapacity);

enum PointFlags : std::uint32_t {
  kPointCut = 1U << 0,              // the manual cut was on
  kPointSessionsUnknown = 1U << 1,  // the session store could not be read
};

struct FileHeader {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t point_size;
  std::uint32_t capacity;
  std::uint32_t interval_seconds;
  std::uint32_t count;
  std::uint32_t reserved;
};
static_assert(sizeof(FileHeader) == 24);

struct Point {
  std::int64_t wall_s;        // CLOCK_REALTIME seconds, a multiple of kIntervalSeconds
  std::uint64_t sessions;     // active authenticated sessions
  std::uint32_t load1_centi;  // load average (1 min) times 100
  std::uint32_t flags;        // PointFlags
};
static_assert(sizeof(Point) == 24);

// Where the history of the snapshot at snapshot_path lives.
[[nodiscard]] std::string path_for(std::string_view snapshot_path);

// The point a payload makes at wall_s.
[[nodiscard]] Point point_from(const snapshot::Payload& payload, std::int64_t wall_s) noexcept;

[[nodiscard]] std::string encode(const std::vector<Point>& points);
// Validates the header and the size; points out of order are an error.
[[nodiscard]] Result<std::vector<Point>> decode(std::string_view bytes);

// Reads a history file (bounded: a bigger file is an error).
[[nodiscard]] Result<std::vector<Point>> read_file(const std::string& path);
// Writes path.tmp and renames it over path (mode 0644).
[[nodiscard]] Result<void> write_file(const std::string& path, const std::vector<Point>& points);

// The helper's side: one point per kIntervalSeconds slot of the wall clock.
class Recorder {
 public:
  // Called on each tick (about once a second) with the published payload:
  // records a point when a new slot has begun, and writes the file then.
  // Reads the file back first when the path is new (start, reload). Returns
  // a message to log when writing fails after having worked (or at the first
  // attempt), empty otherwise: a failure is reported once, not every 10 s.
  [[nodiscard]] std::string record(const std::string& snapshot_path, const snapshot::Payload& payload,
                                   std::int64_t now_wall_s);
  [[nodiscard]] const std::vector<Point>& points() const noexcept { return points_; }

 private:
  std::string path_;
  std::vector<Point> points_;  // oldest first, at most kCapacity, within kSpanSeconds
  std::int64_t last_slot_ = INT64_MIN;
  bool failing_ = false;
};

}  // namespace coupecircuit::history
