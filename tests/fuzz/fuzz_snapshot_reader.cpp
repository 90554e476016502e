// libFuzzer target for the snapshot readers (common/snapshot.cpp): whatever
// bytes sit at the snapshot path, ReadOnlyMapping::open and
// read_snapshot_allow_stale return a typed error or a consistent copy, and
// never crash or read outside the mapping. The input is written as the file
// as it is, padded with zeros or cut to the layout's size, and with a valid
// header forced over its first bytes (so that the payload copy is reached).
// header_is_valid and try_copy_payload are also run on an in-memory buffer of
// kTotalSize filled from the input. Properties checked for any input:
//  - open succeeds only for a regular file of exactly kTotalSize bytes with
//    this build's magic, version and sizes;
//  - header_is_valid agrees with a field-by-field check of the header;
//  - try_copy_payload succeeds exactly when the sequence is even (nothing
//    writes concurrently here), reports that sequence and copies the payload
//    bytes unchanged;
//  - a copy read through the file equals the payload bytes written.
// Seed corpus: tests/fuzz/corpus/snapshot_reader (snapshots written by the
// real coupecircuitd; see make_snapshot_corpus.sh).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "snapshot.hpp"

namespace {

namespace snap = coupecircuit::snapshot;

void check(bool ok) {
  if (!ok) std::abort();
}

const std::string& snapshot_path() {
  static const std::string path = [] {
    char pattern[] = "/tmp/coupecircuit-fuzz-snapshot-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) std::abort();
    return std::string(pattern) + "/snapshot";
  }();
  return path;
}

void write_whole(const std::string& path, const unsigned char* data, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  check(fd >= 0);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t wrote = ::write(fd, data + done, size - done);
    check(wrote > 0);
    done += static_cast<std::size_t>(wrote);
  }
  ::close(fd);
}

// The header fields as the readers must judge them, read with memcpy.
bool expected_header_valid(const unsigned char* bytes, std::size_t mapped_size) {
  snap::Header header;
  std::memcpy(&header, bytes, sizeof header);
  return header.magic == snap::kMagic && header.layout_version == snap::kLayoutVersion &&
         header.header_size == snap::kHeaderSize && header.total_size == snap::kTotalSize &&
         mapped_size >= snap::kTotalSize;
}

void force_valid_header(unsigned char* bytes) {
  snap::Header header{};
  header.magic = snap::kMagic;
  header.layout_version = snap::kLayoutVersion;
  header.header_size = static_cast<std::uint16_t>(snap::kHeaderSize);
  header.total_size = static_cast<std::uint32_t>(snap::kTotalSize);
  std::memcpy(bytes, &header, sizeof header);
}

std::uint64_t sequence_of(const unsigned char* bytes) {
  std::uint64_t sequence = 0;
  std::memcpy(&sequence, bytes + offsetof(snap::SnapshotFile, sync) + offsetof(snap::SyncLine, sequence),
              sizeof sequence);
  return sequence;
}

bool payload_matches(const snap::Payload& copy, const unsigned char* bytes) {
  return std::memcmp(&copy, bytes + snap::kHeaderSize, sizeof copy) == 0;
}

// Writes `bytes` (size bytes) as the snapshot file and reads it back.
void read_through_file(const unsigned char* bytes, std::size_t size) {
  const std::string& path = snapshot_path();
  write_whole(path, bytes, size);

  auto mapping = snap::ReadOnlyMapping::open(path.c_str());
  const bool header_ok = size >= sizeof(snap::Header) && expected_header_valid(bytes, size);
  if (mapping) {
    check(size == snap::kTotalSize && header_ok);
    check(mapping->file() != nullptr);
    // Reading through the mapping agrees with the bytes written.
    check(snap::load_sequence(*mapping->file()) == sequence_of(bytes));
  } else {
    check(size != snap::kTotalSize || !header_ok);
    if (size != snap::kTotalSize) check(mapping.error() == snap::ReadError::bad_size);
  }

  snap::ReadOptions options;
  options.max_attempts = 3;
  bool stale = false;
  auto copy = snap::read_snapshot_allow_stale(path.c_str(), options, &stale);
  if (copy) {
    check(size == snap::kTotalSize && header_ok);
    check((copy->sequence & 1U) == 0 && copy->sequence == sequence_of(bytes));
    check(payload_matches(copy->payload, bytes));
  } else if (size == snap::kTotalSize && header_ok) {
    // A valid header: the only failure left is an odd (in progress) sequence.
    check(copy.error() == snap::ReadError::torn && (sequence_of(bytes) & 1U) != 0);
  }
  // read_snapshot is read_snapshot_allow_stale plus the age check.
  auto strict = snap::read_snapshot(path.c_str(), options);
  check(strict.has_value() == (copy.has_value() && !stale));
}

// The low-level operations the module's fast path uses, on memory.
void read_in_memory(const unsigned char* data, std::size_t size) {
  alignas(snap::SnapshotFile) static unsigned char buffer[snap::kTotalSize];
  std::memset(buffer, 0, sizeof buffer);
  if (size > 0) {
    // The input repeated over the whole buffer, so that short inputs still
    // reach every field.
    for (std::size_t i = 0; i < sizeof buffer; ++i) buffer[i] = data[i % size];
  }
  const auto* file = reinterpret_cast<const snap::SnapshotFile*>(buffer);
  std::size_t mapped_size = snap::kTotalSize;
  if (size >= 2) mapped_size = (static_cast<std::size_t>(data[0]) << 8 | data[1]) % (2 * snap::kTotalSize);

  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) force_valid_header(buffer);
    snap::ReadError why{};
    const bool valid = snap::header_is_valid(*file, mapped_size, &why);
    check(valid == expected_header_valid(buffer, mapped_size));
    check(snap::header_is_valid(*file, snap::kTotalSize) == expected_header_valid(buffer, snap::kTotalSize));

    snap::Payload copy;
    std::uint64_t sequence = 1;
    const bool copied = snap::try_copy_payload(*file, copy, &sequence, 2);
    check(copied == ((sequence_of(buffer) & 1U) == 0));
    if (copied) {
      check(sequence == sequence_of(buffer));
      check(payload_matches(copy, buffer));
    }
    check(snap::load_heartbeat_ns(*file) ==
          [&] {
            std::uint64_t value = 0;
            std::memcpy(&value,
                        buffer + offsetof(snap::SnapshotFile, sync) + offsetof(snap::SyncLine, heartbeat_ns),
                        sizeof value);
            return value;
          }());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 4 * snap::kTotalSize) return -1;  // longer inputs add nothing
  read_in_memory(data, size);

  // 1. The bytes as they are (any size: empty, short, long).
  read_through_file(data, size);

  // 2. Padded with zeros or cut to exactly kTotalSize, then with a valid
  //    header forced over it, then one byte short of the layout.
  static unsigned char sized[snap::kTotalSize];
  std::memset(sized, 0, sizeof sized);
  std::memcpy(sized, data, size < sizeof sized ? size : sizeof sized);
  read_through_file(sized, sizeof sized);
  force_valid_header(sized);
  read_through_file(sized, sizeof sized);
  read_through_file(sized, sizeof sized - 1);
  return 0;
}
