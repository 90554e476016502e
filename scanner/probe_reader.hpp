// coupecircuitd's side of the probe results file: reads what
// coupecircuit-probes writes (untrusted: common/probe_results.* validates
// it), keeps the last valid results, and fills the snapshot's probe table.
//
// The last valid results stay in use until they are older than their
// stale_after_ms (clamped to 1 s .. 10 min): an invalid file is ignored (one
// log line a minute at most), a missing one changes nothing. Without valid
// fresh results the table is flagged stale and every probe is unknown: never
// up, never down, nothing drains or trips on them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "file_identity.hpp"
#include "probe_results.hpp"
#include "snapshot_layout.hpp"

namespace coupecircuit {

// Fills the payload's probe table from the results in use (null: none).
// Not configured: the table stays all zero.
void fill_probe_table(bool configured, const probes::ProbeResults* results, std::int64_t now_wall_ms,
                      snapshot::Payload& payload) noexcept;

class ProbeResultsReader {
 public:
  // A new path forgets the results read from the old one.
  void configure(bool configured, const std::string& path);
  // Reads the file again when its identity (inode, size, mtime) changed and
  // logs a change of freshness. Cheap otherwise (one lstat).
  void refresh(std::int64_t now_wall_ms);
  void fill(snapshot::Payload& payload, std::int64_t now_wall_ms) const noexcept;

 private:
  void read_file();
  void report_invalid(const std::string& why, std::int64_t now_wall_ms);

  bool configured_ = false;
  std::string path_;
  FileIdentity identity_;
  std::optional<probes::ProbeResults> results_;  // the last valid ones
  bool stale_ = false;                           // as last logged
  bool stale_logged_ = false;                    // stale_ has been logged at least once
  std::int64_t last_invalid_log_ms_ = 0;
  std::uint64_t invalid_unlogged_ = 0;
  std::string pending_invalid_;  // set by read_file(), logged by refresh()
};

}  // namespace coupecircuit
