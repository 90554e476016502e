// The one registry of log message IDs (httpd's APLOGNO discipline): every
// line logged by coupecircuitd, coupecircuit-probes, coupecircuitctl and mod_coupecircuit
// carries one of these IDs, each with one meaning. Never reuse a number for another
// meaning, never log an ID that is not listed here; each is documented in docs/man
// (coupecircuitd(8), coupecircuit-probes(8), coupecircuit.conf(5)).
// tests/unit/test_message_ids.cpp checks the sources and the man pages
// against this table.
#pragma once

#include <string_view>

namespace coupecircuit::log {

struct MessageId {
  std::string_view id;
  std::string_view program;
  std::string_view priority;
  std::string_view meaning;
};

inline constexpr MessageId kMessageIds[] = {
    {"CC0001", "coupecircuitd", "info", "started: version, session directory, snapshot, counts"},
    {"CC0002", "coupecircuitd", "info", "stopping on a signal"},
    {"CC0003", "coupecircuitd", "info", "configuration reloaded"},
    {"CC0004", "coupecircuitd", "error", "reload failed: the running configuration and its resources are kept"},
    {"CC0005", "coupecircuitd", "error", "configuration error at start: exit 2"},
    {"CC0006", "coupecircuitd", "error", "the main loop failed: exit 1"},
    {"CC0007", "coupecircuitd", "error", "a resource named by the configuration cannot be used at start: exit 1"},
    {"CC0010", "coupecircuitd", "debug", "summary of a full scan"},
    {"CC0011", "coupecircuitd", "error", "the session store cannot be read: sessions unknown"},
    {"CC0012", "coupecircuitd", "warning", "inotify queue overflow: full rescan"},
    {"CC0013", "coupecircuitd", "warning", "inotify unavailable or a directory cannot be watched"},
    {"CC0014", "coupecircuitd", "notice", "the session store is readable again"},
    {"CC0020", "coupecircuitd", "error", "the snapshot file cannot be opened, created or re-created"},
    {"CC0021", "coupecircuitd", "warning", "the snapshot file was removed or damaged: re-created"},
    {"CC0022", "coupecircuitd", "warning", "a file found at the snapshot path was replaced, not reused (and why)"},
    {"CC0030", "coupecircuitd", "info", "state file loaded at start"},
    {"CC0031", "coupecircuitd", "error", "the state file is invalid: the last good state is kept"},
    {"CC0032", "coupecircuitd", "notice", "the manual cut was turned on or off"},
    {"CC0033", "coupecircuitd", "info", "the state directory was replaced: watched again"},
    {"CC0040", "coupecircuitd", "warning", "a load signal cannot be read"},
    {"CC0050", "coupecircuitd", "info", "the HAProxy agent listens"},
    {"CC0051", "coupecircuitd", "error", "the HAProxy agent cannot listen"},
    {"CC0060", "coupecircuitd", "warning", "the status page history cannot be written"},
    {"CC0070", "coupecircuitd", "error", "the Redis session store cannot be read: sessions unknown"},
    {"CC0071", "coupecircuitd", "notice", "the sessions in Redis are counted again"},
    {"CC0072", "coupecircuitd", "notice", "Redis keyspace notifications: off (full passes only) or followed"},
    {"CC0073", "coupecircuitd", "info", "the masters of the Redis Cluster, at start and after a change"},
    {"CC0400", "coupecircuitd", "info", "joined a cluster: cluster and node names, Redis server, control state in force"},
    {"CC0401", "coupecircuitd", "error", "the cluster's Redis cannot be reached or refused us: the last known control state is kept"},
    {"CC0402", "coupecircuitd", "notice", "the cluster's Redis is reachable (again): the node is registered"},
    {"CC0403", "coupecircuitd", "notice", "a cluster control state was applied: version, cut, who changed it"},
    {"CC0404", "coupecircuitd", "warning", "a control state found in Redis is invalid: ignored, the last good one is kept"},
    {"CC0405", "coupecircuitd", "warning", "a node-local change was made while the cluster's Redis was unreachable"},
    {"CC0406", "coupecircuitd", "notice", "Redis is back: a node-local change made during the outage is kept on this node"},
    {"CC0407", "coupecircuitd", "error", "the cluster mirror file cannot be read or written"},
    {"CC0408", "coupecircuitd", "notice", "Redis had no or an older control state: the one in force here was written back"},
    {"CC0450", "coupecircuitd", "notice", "this node took the cluster's session lease: it counts the sessions in Redis"},
    {"CC0451", "coupecircuitd", "notice", "this node lost, released or was refused the session lease: it uses the holder's counts"},
    {"CC0452", "coupecircuitd", "warning", "the lease holder's session counts are stale or missing: sessions unknown"},
    {"CC0453", "coupecircuitd", "notice", "the cluster's session counts are fresh again"},
    {"CC0454", "coupecircuitd", "warning", "the session counts published in Redis are invalid: ignored"},
    {"CC0550", "coupecircuitd", "warning", "the probe results file is invalid: ignored, the last valid results kept"},
    {"CC0551", "coupecircuitd", "warning", "no fresh probe results: every probe unknown"},
    {"CC0552", "coupecircuitd", "notice", "fresh probe results again"},
    {"CC0100", "coupecircuitctl", "error", "reserved: state file errors of coupecircuitctl"},
    {"CC0500", "coupecircuit-probes", "info", "started: version, probes, results file"},
    {"CC0501", "coupecircuit-probes", "info", "stopping on a signal"},
    {"CC0502", "coupecircuit-probes", "info", "configuration reloaded: probes kept, started, stopped"},
    {"CC0503", "coupecircuit-probes", "error", "reload failed: the running probes are kept"},
    {"CC0504", "coupecircuit-probes", "error", "configuration error at start: exit 2"},
    {"CC0505", "coupecircuit-probes", "error", "cannot run (results directory, signals, main loop): exit 1"},
    {"CC0510", "coupecircuit-probes", "notice", "a probe is up (rise reached)"},
    {"CC0511", "coupecircuit-probes", "warning", "a probe is down (fall reached), with the last error"},
    {"CC0520", "coupecircuit-probes", "error", "the results file cannot be written"},
    {"CC0521", "coupecircuit-probes", "notice", "the results file is written again"},
    {"CC0301", "mod_coupecircuit", "warning", "the snapshot is stale"},
    {"CC0302", "mod_coupecircuit", "warning", "the snapshot cannot be used"},
    {"CC0303", "mod_coupecircuit", "info", "the snapshot is fresh again"},
    {"CC0304", "mod_coupecircuit", "warning", "no shared memory for the hysteresis: each child decides alone"},
    {"CC0305", "mod_coupecircuit", "error", "the status page cannot be rendered"},
};

[[nodiscard]] constexpr bool is_registered(std::string_view id) noexcept {
  int found = 0;
  for (const auto& entry : kMessageIds) found += entry.id == id ? 1 : 0;
  return found == 1;
}

namespace id {
inline constexpr std::string_view kStarted = "CC0001";
static_assert(is_registered(kStarted));
inline constexpr std::string_view kStopping = "CC0002";
static_assert(is_registered(kStopping));
inline constexpr std::string_view kReloaded = "CC0003";
static_assert(is_registered(kReloaded));
inline constexpr std::string_view kReloadFailed = "CC0004";
static_assert(is_registered(kReloadFailed));
inline constexpr std::string_view kConfigError = "CC0005";
static_assert(is_registered(kConfigError));
inline constexpr std::string_view kLoopFailed = "CC0006";
static_assert(is_registered(kLoopFailed));
inline constexpr std::string_view kStartFailed = "CC0007";
static_assert(is_registered(kStartFailed));
inline constexpr std::string_view kScanSummary = "CC0010";
static_assert(is_registered(kScanSummary));
inline constexpr std::string_view kScanDirError = "CC0011";
static_assert(is_registered(kScanDirError));
inline constexpr std::string_view kInotifyOverflow = "CC0012";
static_assert(is_registered(kInotifyOverflow));
inline constexpr std::string_view kInotifyUnavailable = "CC0013";
static_assert(is_registered(kInotifyUnavailable));
inline constexpr std::string_view kScanDirRecovered = "CC0014";
static_assert(is_registered(kScanDirRecovered));
inline constexpr std::string_view kSnapshotError = "CC0020";
static_assert(is_registered(kSnapshotError));
inline constexpr std::string_view kSnapshotReopened = "CC0021";
static_assert(is_registered(kSnapshotReopened));
inline constexpr std::string_view kSnapshotReplaced = "CC0022";
static_assert(is_registered(kSnapshotReplaced));
inline constexpr std::string_view kStateLoaded = "CC0030";
static_assert(is_registered(kStateLoaded));
inline constexpr std::string_view kStateInvalid = "CC0031";
static_assert(is_registered(kStateInvalid));
inline constexpr std::string_view kCutChanged = "CC0032";
static_assert(is_registered(kCutChanged));
inline constexpr std::string_view kStateWatch = "CC0033";
static_assert(is_registered(kStateWatch));
inline constexpr std::string_view kLoadSignalError = "CC0040";
static_assert(is_registered(kLoadSignalError));
inline constexpr std::string_view kAgentListening = "CC0050";
static_assert(is_registered(kAgentListening));
inline constexpr std::string_view kAgentError = "CC0051";
static_assert(is_registered(kAgentError));
inline constexpr std::string_view kHistoryError = "CC0060";
static_assert(is_registered(kHistoryError));
inline constexpr std::string_view kRedisUnavailable = "CC0070";
static_assert(is_registered(kRedisUnavailable));
inline constexpr std::string_view kRedisAvailable = "CC0071";
static_assert(is_registered(kRedisAvailable));
inline constexpr std::string_view kRedisNotifications = "CC0072";
static_assert(is_registered(kRedisNotifications));
inline constexpr std::string_view kRedisTopology = "CC0073";
static_assert(is_registered(kRedisTopology));
inline constexpr std::string_view kClusterJoined = "CC0400";
static_assert(is_registered(kClusterJoined));
inline constexpr std::string_view kClusterUnreachable = "CC0401";
static_assert(is_registered(kClusterUnreachable));
inline constexpr std::string_view kClusterReachable = "CC0402";
static_assert(is_registered(kClusterReachable));
inline constexpr std::string_view kClusterControlApplied = "CC0403";
static_assert(is_registered(kClusterControlApplied));
inline constexpr std::string_view kClusterControlInvalid = "CC0404";
static_assert(is_registered(kClusterControlInvalid));
inline constexpr std::string_view kClusterLocalUnsynced = "CC0405";
static_assert(is_registered(kClusterLocalUnsynced));
inline constexpr std::string_view kClusterLocalReported = "CC0406";
static_assert(is_registered(kClusterLocalReported));
inline constexpr std::string_view kClusterMirrorError = "CC0407";
static_assert(is_registered(kClusterMirrorError));
inline constexpr std::string_view kClusterControlRestored = "CC0408";
static_assert(is_registered(kClusterControlRestored));
inline constexpr std::string_view kLeaseAcquired = "CC0450";
static_assert(is_registered(kLeaseAcquired));
inline constexpr std::string_view kLeaseLost = "CC0451";
static_assert(is_registered(kLeaseLost));
inline constexpr std::string_view kLeaseCountsStale = "CC0452";
static_assert(is_registered(kLeaseCountsStale));
inline constexpr std::string_view kLeaseCountsFresh = "CC0453";
static_assert(is_registered(kLeaseCountsFresh));
inline constexpr std::string_view kLeaseCountsInvalid = "CC0454";
static_assert(is_registered(kLeaseCountsInvalid));
inline constexpr std::string_view kProbeResultsInvalid = "CC0550";
static_assert(is_registered(kProbeResultsInvalid));
inline constexpr std::string_view kProbeResultsStale = "CC0551";
static_assert(is_registered(kProbeResultsStale));
inline constexpr std::string_view kProbeResultsFresh = "CC0552";
static_assert(is_registered(kProbeResultsFresh));
inline constexpr std::string_view kCtlStateError = "CC0100";
static_assert(is_registered(kCtlStateError));
inline constexpr std::string_view kModuleSnapshotStale = "CC0301";
static_assert(is_registered(kModuleSnapshotStale));
inline constexpr std::string_view kModuleSnapshotUnusable = "CC0302";
static_assert(is_registered(kModuleSnapshotUnusable));
inline constexpr std::string_view kModuleSnapshotFresh = "CC0303";
static_assert(is_registered(kModuleSnapshotFresh));
inline constexpr std::string_view kModuleNoSharedMemory = "CC0304";
static_assert(is_registered(kModuleNoSharedMemory));
inline constexpr std::string_view kModuleStatusRenderFailed = "CC0305";
static_assert(is_registered(kModuleStatusRenderFailed));
inline constexpr std::string_view kProbesStarted = "CC0500";
static_assert(is_registered(kProbesStarted));
inline constexpr std::string_view kProbesStopping = "CC0501";
static_assert(is_registered(kProbesStopping));
inline constexpr std::string_view kProbesReloaded = "CC0502";
static_assert(is_registered(kProbesReloaded));
inline constexpr std::string_view kProbesReloadFailed = "CC0503";
static_assert(is_registered(kProbesReloadFailed));
inline constexpr std::string_view kProbesConfigError = "CC0504";
static_assert(is_registered(kProbesConfigError));
inline constexpr std::string_view kProbesCannotRun = "CC0505";
static_assert(is_registered(kProbesCannotRun));
inline constexpr std::string_view kProbeUp = "CC0510";
static_assert(is_registered(kProbeUp));
inline constexpr std::string_view kProbeDown = "CC0511";
static_assert(is_registered(kProbeDown));
inline constexpr std::string_view kProbeResultsError = "CC0520";
static_assert(is_registered(kProbeResultsError));
inline constexpr std::string_view kProbeResultsRecovered = "CC0521";
static_assert(is_registered(kProbeResultsRecovered));
}  // namespace id

}  // namespace coupecircuit::log
