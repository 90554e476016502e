// Reading a whole configuration or state file that was opened already: the
// same checks for every such file, so that each reader says the same thing
// about a directory, a device or a file too large.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "result.hpp"

namespace coupecircuit {

// The contents of the open file `fd`, which must be a regular file of at
// most max_bytes (a directory or a device would otherwise read as empty, a
// FIFO would block). `what` and `path` name it in the errors:
// "cannot stat <what> <path>: …", "<what> <path> is not a regular file",
// "<what> <path> is larger than 1 MiB", "cannot read <what> <path>: …".
[[nodiscard]] Result<std::string> read_regular_file(int fd, std::string_view what, const std::string& path,
                                                    std::size_t max_bytes);

}  // namespace coupecircuit
