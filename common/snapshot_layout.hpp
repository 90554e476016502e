// The snapshot: the one protocol between coupecircuitd (single writer) and
// every reader (mod_coupecircuit in each Apache child, coupecircuitctl).
//
// A fixed-size file, default /run/coupecircuit/snapshot (mode 0644, owned by
// root), mapped MAP_SHARED by the writer and PROT_READ by readers. It is
// created once at its full size and then only updated in place: never
// truncated, shrunk or replaced while readers map it.
//
// Concurrency: a seqlock. The writer makes `sequence` odd, stores the payload
// word by word through std::atomic_ref (relaxed) after a release fence, then
// stores the next even value with release. Readers load `sequence` (acquire),
// copy the payload with relaxed atomic loads, issue an acquire fence and load
// `sequence` again; equal and even means the copy is consistent. Readers only
// ever load: their mapping is PROT_READ, so no read-modify-write and no
// 16-byte atomics. `heartbeat_ns` lives outside the seqlock so a liveness tick
// does not make readers retry.
//
// Layout changes: any change to these structs bumps kLayoutVersion, except
// giving a reserved field (always written as zero) a meaning for which zero
// stays correct, e.g. count_inactive_unread. Readers
// reject a file whose magic, version, header size or total size differ from
// their own (typed error, never a guess); they fail open. A new writer finding
// another layout (after a package upgrade) never rewrites the file in place:
// it creates the new file beside the old one and renames it over the path,
// so that readers keep a valid mapping of the old inode, see it go stale and
// re-open the path (at most once a second).
//
// Layout history: 1 first release; 2 adds the session store (kind, masters,
// keys seen, notifications, unavailable since) for sessions kept in Redis;
// 3 adds the cluster block (cluster and node names, control-state version,
// lease) and the dependency probe table.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace coupecircuit::snapshot {

inline constexpr std::uint32_t kMagic = 0x4343534EU;  // "NSCC" little-endian: CoupeCircuit Snapshot
inline constexpr std::uint16_t kLayoutVersion = 3;
inline constexpr std::size_t kCacheLine = 64;
inline constexpr const char* kDefaultPath = "/run/coupecircuit/snapshot";

inline constexpr std::size_t kMaxVhostOverrides = 64;
inline constexpr std::size_t kVhostNameCapacity = 88;  // including the NUL
inline constexpr std::size_t kCutReasonCapacity = 128;
inline constexpr std::size_t kTextCapacity = 16;       // pre-rendered numbers
inline constexpr std::size_t kClusterNameCapacity = 64;  // cluster, node and lease-holder names, with the NUL
inline constexpr std::size_t kMaxProbes = 16;
inline constexpr std::size_t kProbeNameCapacity = 32;    // [A-Za-z0-9_-]{1,31}, with the NUL
inline constexpr std::size_t kProbeErrorCapacity = 80;   // last error, short printable text
// Comma list of the probes down, pre-rendered for COUPECIRCUIT_INDISPONIBLE.
inline constexpr std::size_t kProbesDownCapacity = kMaxProbes * kProbeNameCapacity;

// Threshold set, as the helper publishes it. A value is present when its
// has_* flag is set; text is the value pre-rendered for $_SERVER.
struct ThresholdSet {
  std::uint32_t has_sessions;
  std::uint32_t has_load;
  std::uint64_t sessions;
  std::uint64_t load_centi;  // load average times 100
  char sessions_text[kTextCapacity];
  char load_text[kTextCapacity];
};
static_assert(sizeof(ThresholdSet) == 56);

struct VhostOverride {
  std::uint64_t name_hash;  // vhost_name_hash(name): readers compare this first
  char name[kVhostNameCapacity];
  ThresholdSet thresholds;
};
static_assert(sizeof(VhostOverride) == 152);

enum SessionCountIndex : std::size_t {
  kEmpty = 0,
  kAnonymous = 1,
  kUnknown = 2,
  kAuthenticated = 3,
};

enum PayloadFlags : std::uint32_t {
  kFlagPsiAvailable = 1U << 0,
  kFlagCutActive = 1U << 1,
  kFlagScanFailed = 1U << 2,    // the last scan could not read the session dir
  kFlagStateInvalid = 1U << 3,  // the state file is unreadable: last good state kept
  kFlagSessionsUnavailable = 1U << 4,  // the session store (Redis) cannot be counted now
};

// Where sessions are counted (Payload::store_kind).
enum StoreKind : std::uint32_t {
  kStoreFiles = 0,
  kStoreRedis = 1,
  kStoreRedisCluster = 2,
};

enum StoreFlags : std::uint32_t {
  kStoreNotifications = 1U << 0,  // following keyspace notifications on every master
};

// Cluster membership (Payload::cluster.flags). Zero everywhere = not in a
// cluster, which is what every layout-2 writer meant.
enum ClusterFlags : std::uint32_t {
  kClusterJoined = 1U << 0,            // [cluster] is configured
  kClusterRedisReachable = 1U << 1,    // the last exchange with the cluster's Redis succeeded
  kClusterLeaseHolder = 1U << 2,       // this node holds the lease: it counts the sessions
  kClusterCountsFromPeer = 1U << 3,    // session figures are the lease holder's, not ours
  kClusterCountsStale = 1U << 4,       // the holder's result is older than the limit: counts missing
  kClusterCutLocal = 1U << 5,          // the cut in force was set on this node only (--local)
  kClusterLocalChangeUnsynced = 1U << 6,  // a --local change made while Redis was unreachable
};

struct ClusterState {
  char cluster_name[kClusterNameCapacity];  // empty when not in a cluster
  char node_name[kClusterNameCapacity];
  char lease_holder[kClusterNameCapacity];  // node name of the lease holder, empty when unknown
  std::uint32_t flags;                      // ClusterFlags
  std::uint32_t nodes_live;                 // registered nodes whose heartbeat is fresh
  std::uint64_t control_version;            // cluster control-state version applied here
  std::uint64_t lease_fencing;              // fencing number of the session counts in use
  std::int64_t counts_published_wall_ms;    // when the lease holder published those counts
  std::int64_t redis_last_contact_wall_s;   // last successful exchange with the cluster's Redis
};
static_assert(sizeof(ClusterState) == 232);

// Dependency probes (results of coupecircuit-probes, validated by the helper).
enum ProbeStatus : std::uint32_t {
  kProbeUnknown = 0,  // no result yet, or the results are stale
  kProbeUp = 1,
  kProbeDown = 2,
};

enum ProbeEntryFlags : std::uint32_t {
  kProbeCritical = 1U << 0,       // down drains the node's health
  kProbeHasSaturation = 1U << 1,  // saturation_pct is a measurement (postgresql)
};

enum ProbeTableFlags : std::uint32_t {
  kProbesConfigured = 1U << 0,    // [probes] is configured: the table is meaningful
  kProbesStale = 1U << 1,         // results missing or too old: every entry is unknown
  kProbesCriticalDown = 1U << 2,  // at least one critical probe is down
};

struct ProbeEntry {
  char name[kProbeNameCapacity];
  std::uint32_t status;        // ProbeStatus
  std::uint32_t flags;         // ProbeEntryFlags
  std::int64_t since_wall_s;   // when status last changed
  std::uint32_t latency_us;    // of the last check
  std::uint32_t saturation_pct;
  char saturation_text[kTextCapacity];  // "57", for SATURATION_<NAME>
  char last_error[kProbeErrorCapacity];
};
static_assert(sizeof(ProbeEntry) == 152);

// Everything below is copied as a whole under the seqlock. Plain integers and
// char arrays only, a multiple of 8 bytes, so it can be stored and loaded as
// 64-bit words.
struct Payload {
  // Writer identity.
  std::uint64_t writer_generation;  // random per writer start: a restart is visible
  std::uint32_t writer_pid;
  std::uint32_t flags;              // PayloadFlags
  std::uint64_t snapshot_sequence;  // +1 per content publish, for this generation

  // Session scan.
  std::int64_t last_scan_wall_ns;   // CLOCK_REALTIME of the end of the last scan
  std::uint64_t last_scan_duration_us;
  std::uint64_t sessions_active;    // active authenticated sessions
  std::uint64_t files_seen;
  std::uint64_t count_active[4];    // by SessionCountIndex
  std::uint64_t count_inactive[4];   // of the files read
  std::uint32_t active_minutes;
  std::uint32_t count_inactive_unread;  // non-empty, inactive when first seen: never read
  char sessions_active_text[kTextCapacity];

  // Session store. For Redis, last_scan_* describe the last complete pass
  // and files_seen stays 0.
  std::uint32_t store_kind;             // StoreKind
  std::uint32_t store_flags;            // StoreFlags
  std::uint32_t store_masters_reached;  // Redis masters scanned by the last pass
  std::uint32_t store_masters_total;
  std::uint64_t keys_seen;              // Redis session keys counted
  std::int64_t sessions_unavailable_since_wall_s;  // with kFlagSessionsUnavailable
  std::uint64_t store_values_read;      // values fetched by the last complete pass
  std::uint64_t store_bytes_read;       // reply bytes of the last complete pass

  // Load signals (centi: value times 100).
  std::uint32_t load_centi[3];           // 1, 5, 15 minutes
  std::uint32_t psi_some_avg10_centi[3]; // cpu, memory, io
  std::uint32_t mem_available_centi_pct;
  std::uint32_t swap_used_centi_pct;
  char load1_text[kTextCapacity];        // "1.52"

  // Manual cut.
  std::int64_t cut_since_wall_s;
  char cut_reason[kCutReasonCapacity];

  // Cluster membership and the lease (all zero when not in a cluster).
  ClusterState cluster;

  // Dependency probes: the first probe_count entries are in use.
  std::uint32_t probe_flags;  // ProbeTableFlags
  std::uint32_t probe_count;
  std::int64_t probes_updated_wall_s;  // written time of the results in use
  char probes_down_text[kProbesDownCapacity];
  ProbeEntry probes[kMaxProbes];

  // Runtime threshold overrides (from the state file).
  ThresholdSet global_override;
  std::uint32_t vhost_override_count;
  std::uint32_t reserved1;
  VhostOverride vhost_overrides[kMaxVhostOverrides];
};
static_assert(std::is_trivially_copyable_v<Payload>);
static_assert(sizeof(Payload) % sizeof(std::uint64_t) == 0);

struct alignas(kCacheLine) Header {  // written once when the file is created
  std::uint32_t magic;
  std::uint16_t layout_version;
  std::uint16_t header_size;  // offsetof(SnapshotFile, payload)
  std::uint32_t total_size;   // sizeof(SnapshotFile)
  std::uint32_t reserved;
};

struct alignas(kCacheLine) SyncLine {  // written on every publish
  std::uint64_t sequence;      // seqlock: odd while the payload is being written
  std::uint64_t heartbeat_ns;  // CLOCK_MONOTONIC of the writer's last tick
};

struct alignas(kCacheLine) SnapshotFile {
  Header header;
  SyncLine sync;
  Payload payload;
};

static_assert(std::is_standard_layout_v<SnapshotFile>);
static_assert(std::is_trivially_copyable_v<SnapshotFile>);
static_assert(offsetof(SnapshotFile, header) == 0);
static_assert(offsetof(SnapshotFile, sync) == kCacheLine);
static_assert(offsetof(SnapshotFile, payload) == 2 * kCacheLine);
static_assert(sizeof(SnapshotFile) % kCacheLine == 0);
static_assert(sizeof(SnapshotFile) <= 16384, "keep the snapshot small: it is copied on change");
static_assert(offsetof(Payload, writer_generation) == 0);
static_assert(offsetof(Payload, vhost_overrides) % 8 == 0);
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(alignof(SnapshotFile) >= alignof(std::uint64_t));

inline constexpr std::size_t kHeaderSize = offsetof(SnapshotFile, payload);
inline constexpr std::size_t kTotalSize = sizeof(SnapshotFile);

// FNV-1a over the vhost name, shared by writer and readers.
[[nodiscard]] constexpr std::uint64_t vhost_name_hash(const char* name, std::size_t length) noexcept {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < length; ++i) {
    hash ^= static_cast<unsigned char>(name[i]);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace coupecircuit::snapshot
