// What the starts of coupecircuitd and coupecircuit-probes share: paths from
// the command line made absolute, and the classic detach for init systems
// without supervision (systemd runs both with --foreground, Type=notify).
#pragma once

#include <string>

namespace coupecircuit {

// Paths typed on the command line are relative to the directory the program
// was started from; it moves to "/" when it detaches and reads its
// configuration again on SIGHUP: make them absolute first.
void make_absolute(std::string& path);

// fork (the parent exits 0), setsid, chdir("/"), stdin from /dev/null.
// Called once the configuration was accepted, so that the parent exits 0
// only then. False (errno set) when a step failed.
bool detach_from_terminal();

}  // namespace coupecircuit
