# Install rules for the files that are not build targets: the manual pages
# and the systemd units of coupecircuitd and coupecircuit-probes. (coupecircuitd.conf is installed by
# the top-level CMakeLists.txt; the Apache mods-available files by the Debian
# packaging, through dh_apache2.)
#
#   COUPECIRCUIT_INSTALL_SYSTEMD_UNIT  ON: install coupecircuitd.service and
#                                      coupecircuit-probes.service
#   COUPECIRCUIT_SYSTEMD_UNIT_DIR      where to; default: systemd's
#                                      systemdsystemunitdir (pkg-config), else
#                                      <prefix>/lib/systemd/system
include_guard(GLOBAL)
include(GNUInstallDirs)

set(_coupecircuit_source_dir "${CMAKE_CURRENT_LIST_DIR}/..")

install(FILES
  "${_coupecircuit_source_dir}/docs/man/coupecircuitd.8"
  "${_coupecircuit_source_dir}/docs/man/coupecircuitctl.8"
  "${_coupecircuit_source_dir}/docs/man/coupecircuit-probes.8"
  DESTINATION "${CMAKE_INSTALL_MANDIR}/man8")
install(FILES
  "${_coupecircuit_source_dir}/docs/man/coupecircuitd.conf.5"
  "${_coupecircuit_source_dir}/docs/man/coupecircuit.conf.5"
  DESTINATION "${CMAKE_INSTALL_MANDIR}/man5")

option(COUPECIRCUIT_INSTALL_SYSTEMD_UNIT "Install the systemd units of coupecircuitd and coupecircuit-probes" ON)
set(COUPECIRCUIT_SYSTEMD_UNIT_DIR "" CACHE PATH
    "Directory for coupecircuitd.service (empty: systemd's systemdsystemunitdir)")

if(COUPECIRCUIT_INSTALL_SYSTEMD_UNIT)
  set(_coupecircuit_unit_dir "${COUPECIRCUIT_SYSTEMD_UNIT_DIR}")
  if(NOT _coupecircuit_unit_dir)
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
      pkg_get_variable(_coupecircuit_unit_dir systemd systemdsystemunitdir)
    endif()
  endif()
  if(NOT _coupecircuit_unit_dir)
    set(_coupecircuit_unit_dir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
  endif()
  # The unit starts /usr/sbin/coupecircuitd: with another prefix, adjust
  # ExecStart= in a drop-in.
  install(FILES "${_coupecircuit_source_dir}/conf.d/coupecircuitd.service"
                "${_coupecircuit_source_dir}/conf.d/coupecircuit-probes.service"
          DESTINATION "${_coupecircuit_unit_dir}")
endif()
