#include "history.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "snapshot.hpp"
#include "unique_fd.hpp"

namespace coupecircuit::history {
namespace {

constexpr std::size_t kMaxFileSize = sizeof(FileHeader) + kCapacity * sizeof(Point);

std::string errno_text(int error) {
  return std::strerror(error);
}

std::int64_t slot_of(std::int64_t wall_s) noexcept {
  const std::int64_t slot = wall_s / kIntervalSeconds;
  return (wall_s % kIntervalSeconds < 0 ? slot - 1 : slot) * kIntervalSeconds;
}

}  // namespace

std::string path_for(std::string_view snapshot_path) {
  return std::string(snapshot_path) + ".history";
}

Point point_from(const snapshot::Payload& payload, std::int64_t wall_s) noexcept {
  Point point{};
  point.wall_s = wall_s;
  point.sessions = payload.sessions_active;
  point.load1_centi = payload.load_centi[0];
  if ((payload.flags & snapshot::kFlagCutActive) != 0) point.flags |= kPointCut;
  if (!snapshot::sessions_known(payload)) point.flags |= kPointSessionsUnknown;
  return point;
}

std::string encode(const std::vector<Point>& points) {
  const std::size_t count = points.size() < kCapacity ? points.size() : kCapacity;
  const std::size_t first = points.size() - count;
  FileHeader header{kMagic, kVersion, sizeof(Point), kCapacity, kIntervalSeconds, static_cast<std::uint32_t>(count), 0};
  std::string bytes(sizeof header + count * sizeof(Point), '\0');
  std::memcpy(bytes.data(), &header, sizeof header);
  if (count > 0) std::memcpy(bytes.data() + sizeof header, points.data() + first, count * sizeof(Point));
  return bytes;
}

Result<std::vector<Point>> decode(std::string_view bytes) {
  FileHeader header{};
  if (bytes.size() < sizeof header) return make_error("history: file too short");
  std::memcpy(&header, bytes.data(), sizeof header);
  if (header.magic != kMagic) return make_error("history: bad magic");
  if (header.version != kVersion || header.point_size != sizeof(Point)) return make_error("history: unknown layout");
  if (header.count > kCapacity || bytes.size() != sizeof header + header.count * sizeof(Point)) {
    return make_error("history: size does not match the point count");
  }
  std::vector<Point> points(header.count);
  if (header.count > 0) std::memcpy(points.data(), bytes.data() + sizeof header, header.count * sizeof(Point));
  for (std::size_t i = 1; i < points.size(); ++i) {
    if (points[i].wall_s <= points[i - 1].wall_s) return make_error("history: points out of order");
  }
  return points;
}

Result<std::vector<Point>> read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return make_error("history " + path + ": " + errno_text(errno), errno);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return make_error("history " + path + ": " + errno_text(errno), errno);
  if (!S_ISREG(info.st_mode) || static_cast<std::size_t>(info.st_size) > kMaxFileSize) {
    return make_error("history " + path + ": not a regular file of at most " + std::to_string(kMaxFileSize) + " bytes");
  }
  std::string bytes(kMaxFileSize + 1, '\0');
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error("history " + path + ": " + errno_text(errno), errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  bytes.resize(got);
  return decode(bytes);
}

Result<void> write_file(const std::string& path, const std::vector<Point>& points) {
  const std::string bytes = encode(points);
  const std::string temporary = path + ".tmp";
  ::unlink(temporary.c_str());
  UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) return make_error("history " + temporary + ": " + errno_text(errno), errno);
  ::fchmod(fd.get(), 0644);  // whatever the umask: Apache children read it
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd.get(), bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::unlink(temporary.c_str());
      return make_error("history " + temporary + ": " + errno_text(error), error);
    }
    written += static_cast<std::size_t>(n);
  }
  fd.reset();
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    return make_error("history " + path + ": " + errno_text(error), error);
  }
  return {};
}

std::string Recorder::record(const std::string& snapshot_path, const snapshot::Payload& payload,
                             std::int64_t now_wall_s) {
  const std::string path = path_for(snapshot_path);
  if (path != path_) {
    path_ = path;
    auto loaded = read_file(path_);
    points_ = loaded ? std::move(*loaded) : std::vector<Point>{};
    last_slot_ = points_.empty() ? INT64_MIN : points_.back().wall_s;
    failing_ = false;
  }
  const std::int64_t slot = slot_of(now_wall_s);
  if (slot == last_slot_) return {};
  // The wall clock went back (or the file came from the future): start again.
  if (slot < last_slot_) points_.clear();
  last_slot_ = slot;
  std::size_t expired = 0;
  while (expired < points_.size() && points_[expired].wall_s <= slot - kSpanSeconds) ++expired;
  if (points_.size() - expired >= kCapacity) expired = points_.size() - kCapacity + 1;
  points_.erase(points_.begin(), points_.begin() + static_cast<std::ptrdiff_t>(expired));
  points_.push_back(point_from(payload, slot));
  auto written = write_file(path_, points_);
  if (!written) {
    if (failing_) return {};
    failing_ = true;
    return written.error().message + " (the status page's history chart stays empty)";
  }
  failing_ = false;
  return {};
}

}  // namespace coupecircuit::history
