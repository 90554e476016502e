// Counts PHP sessions kept in Redis by phpredis (save_handler redis or
// rediscluster) or Symfony's RedisSessionHandler: the same classes and
// per-class counts as for session files.
//
// A value's "modification time" is derived from its TTL: every session
// write is SETEX key gc_maxlifetime value (a read-only request with
// lazy_write sends EXPIRE key gc_maxlifetime), so last activity =
// now - (gc_maxlifetime - TTL). A key without expiry (TTL -1) is active when
// its value is not empty.
//
// All Redis traffic runs on one worker thread: the daemon's loop never
// waits for Redis (a stalled server must not stall the heartbeat). The
// worker makes a full pass every rescan_interval (the source of truth):
// SCAN MATCH <prefix>* on every master (Cluster masters are found with
// CLUSTER SLOTS; a key seen twice counts once), *_LOCK keys and non-strings
// skipped, PTTL + GETRANGE 0 max_read_bytes-1 pipelined for new keys, PTTL +
// STRLEN for known ones and GETRANGE only for those whose derived write time
// or length moved. Between passes it follows keyspace notifications when
// the servers have them on (never changing their configuration). Any fault
// (down, LOADING, timeout, auth) makes the store "unavailable since T" until
// a full pass succeeds again; reconnection backs off up to rescan_interval.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <absl/container/flat_hash_map.h>

#include "save_path.hpp"
#include "session_classifier.hpp"
#include "session_scanner.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {

struct RedisStoreOptions {
  SavePath save_path;                  // handler redis or rediscluster
  std::string auth_file_password;      // from [sessions] auth_file; replaces auth= when set
  std::uint32_t gc_maxlifetime_s = 1440;
  std::uint32_t active_minutes = 24;
  std::size_t max_read_bytes = 1024 * 1024;  // bytes of a value examined at most
  std::size_t read_chunk_bytes = 64 * 1024;  // fetched per GETRANGE; the classifier skips long strings
  ClassifierRule rule;
  std::uint32_t rescan_interval_s = 10;
  std::uint32_t timeout_ms = 1000;     // connect and command
  bool operator==(const RedisStoreOptions&) const = default;
};

struct RedisStoreStatus {
  SessionCounts counts;  // counts.files_seen: the keys seen
  bool available = false;                   // the last full pass succeeded
  std::int64_t unavailable_since_wall_s = 0;  // 0 while available
  std::int64_t last_good_pass_wall_ns = 0;    // end of the last complete pass
  std::uint64_t last_pass_duration_us = 0;
  std::uint32_t masters_reached = 0;
  std::uint32_t masters_total = 0;
  std::uint64_t keys_read_last_pass = 0;   // values fetched (GETRANGE)
  std::uint64_t bytes_read_last_pass = 0;  // reply payload bytes
  bool notifications = false;              // subscribed on every master
  std::uint64_t passes = 0;                // complete passes so far
};

class RedisSessionStore {
 public:
  explicit RedisSessionStore(RedisStoreOptions options);
  ~RedisSessionStore();
  RedisSessionStore(const RedisSessionStore&) = delete;
  RedisSessionStore& operator=(const RedisSessionStore&) = delete;

  // Starts the worker thread (the daemon); without it, run_pass_now() runs
  // a pass on the calling thread (--once, tests).
  void start();
  bool run_pass_now();
  // A full pass as soon as possible (SIGHUP).
  void request_pass();
  // In a cluster, only the holder of the session lease counts: a store that
  // may not count makes no pass and follows no notification (thread-safe;
  // true by default, set before start() to begin idle).
  void set_counting(bool counting);

  // Readable when counts or availability changed; consume() clears it.
  [[nodiscard]] int change_fd() const noexcept { return change_fd_.get(); }
  void consume_change() noexcept;

  [[nodiscard]] RedisStoreStatus status(std::int64_t now_wall_s) const;
  [[nodiscard]] const RedisStoreOptions& options() const noexcept { return options_; }
  // The first error of the current outage ("" while available), for logs.
  [[nodiscard]] std::string last_error() const;

  class Worker;

 private:
  RedisStoreOptions options_;
  UniqueFd change_fd_;
  std::unique_ptr<Worker> worker_;
  std::thread thread_;
};

}  // namespace coupecircuit
