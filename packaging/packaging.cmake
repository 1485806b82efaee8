# Install rules beyond the two programs, and the Debian package (CPack DEB). Included by the
# top-level CMakeLists.txt. Build the package with:
#   cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr
#   cmake --build build-deb && (cd build-deb && cpack -G DEB)
# tests/package/test_deb.sh builds, installs, checks and purges it.

set(CAS_PACKAGING_DIR ${CMAKE_CURRENT_LIST_DIR})
set(CAS_PACKAGING_OUT ${CMAKE_CURRENT_BINARY_DIR}/packaging)

# The unit and /etc/cas-agent/agent.json only make sense where the unit's ExecStart
# (/usr/sbin/cas-agent) and the agent's default configuration path point: a /usr install.
# A /usr/local developer install gets the programs, man pages, completion and examples only.
# -DCAS_INSTALL_SYSTEM_FILES=ON|OFF overrides; otherwise it follows the prefix on every configure
# (not cached), so one build folder can be reconfigured from /usr/local to /usr.
if(DEFINED CAS_INSTALL_SYSTEM_FILES)
  set(cas_install_system ${CAS_INSTALL_SYSTEM_FILES})
elseif(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(cas_install_system ON)
else()
  set(cas_install_system OFF)
endif()
set(CAS_SYSTEMD_UNIT_DIR "/lib/systemd/system" CACHE PATH
    "Where the systemd unit goes (Debian 12: /lib/systemd/system)")
# The Debian revision: the part after the upstream version (0.1.0-1). Raise it to build a
# package that upgrades one of the same upstream version.
set(CAS_PACKAGE_RELEASE "1" CACHE STRING "Debian revision of the package")
set(CAS_PACKAGE_MAINTAINER
    "cas-agent maintainers <maintainers@users.noreply.r-seed-8df33239.example>"
    CACHE STRING "Maintainer field of the Debian package")
set(CAS_DEB_VERSION "${PROJECT_VERSION}-${CAS_PACKAGE_RELEASE}")

# --- Generated files: man pages carry the version; everything Debian wants compressed is gzipped
# with -n (no name or time stamp), so the same sources make the same package.
file(MAKE_DIRECTORY ${CAS_PACKAGING_OUT})
set(CAS_VERSION ${PROJECT_VERSION}) # @CAS_VERSION@ in the man pages
set(cas_gz_files)
foreach(page cas-agent.8 cas-site.1 cas-agent.json.5)
  configure_file(${CAS_PACKAGING_DIR}/man/${page} ${CAS_PACKAGING_OUT}/${page} @ONLY)
  list(APPEND cas_gz_files ${page})
endforeach()
string(TIMESTAMP CAS_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC) # honours SOURCE_DATE_EPOCH
configure_file(${CAS_PACKAGING_DIR}/debian/changelog.in ${CAS_PACKAGING_OUT}/changelog.Debian
               @ONLY)
list(APPEND cas_gz_files changelog.Debian)

set(cas_gz_outputs)
foreach(f ${cas_gz_files})
  add_custom_command(
    OUTPUT ${CAS_PACKAGING_OUT}/${f}.gz
    COMMAND gzip -9nkf ${f}
    DEPENDS ${CAS_PACKAGING_OUT}/${f}
    WORKING_DIRECTORY ${CAS_PACKAGING_OUT}
    COMMENT "Compressing ${f}"
    VERBATIM)
  list(APPEND cas_gz_outputs ${CAS_PACKAGING_OUT}/${f}.gz)
endforeach()
add_custom_target(cas-packaging-files ALL DEPENDS ${cas_gz_outputs})

# --- Install rules
# Folders 0755 whatever the umask of whoever installs (the package: cpack-pre-build.cmake).
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(cas_doc_dir ${CMAKE_INSTALL_DATADIR}/doc/cas-agent) # Debian: the package's name
install(FILES ${CAS_PACKAGING_OUT}/cas-agent.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CAS_PACKAGING_OUT}/cas-site.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CAS_PACKAGING_OUT}/cas-agent.json.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${CAS_PACKAGING_DIR}/bash-completion/cas-agent
              ${CAS_PACKAGING_DIR}/bash-completion/cas-site
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(FILES ${CAS_PACKAGING_DIR}/nginx-dp.conf ${CAS_PACKAGING_DIR}/nginx-peer-cache.conf
              ${CAS_PACKAGING_DIR}/installers.conf
        DESTINATION ${cas_doc_dir}/examples)
install(FILES ${CAS_PACKAGING_DIR}/debian/copyright ${CAS_PACKAGING_OUT}/changelog.Debian.gz
        DESTINATION ${cas_doc_dir})
if(cas_install_system)
  install(FILES ${CAS_PACKAGING_DIR}/cas-agent.service DESTINATION ${CAS_SYSTEMD_UNIT_DIR})
  # /etc, not /usr/etc: GNUInstallDirs maps the /usr prefix's sysconfdir to /etc.
  install(FILES ${CAS_PACKAGING_DIR}/agent.json
          DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/cas-agent)
endif()

# --- CPack: one Debian package
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cas-agent)
set(CPACK_PACKAGE_VENDOR "cas-agent")
set(CPACK_PACKAGE_CONTACT "${CAS_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "endpoint agent for verified downloads and advertised programs")
# Debian wants the long description in lines of at most 80 characters.
set(CPACK_PACKAGE_DESCRIPTION
    "cas-agent is a download-and-execute agent for Linux endpoints, modelled on
the SMS 2003 / ConfigMgr advanced client. It polls a management point for a
signed policy, downloads the advertised content from distribution points (any
static HTTP or HTTPS server) into its cache, verifies it against the package
hash in the signed policy, and only then runs the advertised program, as root
or as a named user. Everything is logged in CMTrace format.
.
This package holds the agent (cas-agent, with its systemd service) and the
site's tool (cas-site: site keys, packages on a distribution point, signed
policy).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Absolute destinations (/etc, /lib/systemd) go into the package through DESTDIR.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PRE_BUILD_SCRIPTS ${CAS_PACKAGING_DIR}/cpack-pre-build.cmake)
set(CPACK_DEBIAN_PACKAGE_NAME cas-agent)
set(CPACK_DEBIAN_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_PACKAGE_RELEASE ${CAS_PACKAGE_RELEASE})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # cas-agent_0.1.0-1_amd64.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CAS_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON) # libc, libcurl, libssl, libcjson from dpkg-shlibdeps
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "nginx-light | nginx")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CAS_PACKAGING_DIR}/debian/conffiles ${CAS_PACKAGING_DIR}/debian/postinst
    ${CAS_PACKAGING_DIR}/debian/prerm ${CAS_PACKAGING_DIR}/debian/postrm)
# Maintainer scripts 0755, conffiles 0644, whatever the checkout's modes are.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# cpack runs this before it builds: a package made from a /usr/local build would lack the unit
# and the configuration (and put them in the wrong place).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" AND cas_install_system)
  set(cas_deb_ok 1)
else()
  set(cas_deb_ok 0)
endif()
set(CPACK_PROJECT_CONFIG_FILE ${CAS_PACKAGING_OUT}/cpack-check.cmake)
file(WRITE ${CPACK_PROJECT_CONFIG_FILE}
     "# Written by packaging/packaging.cmake.\n"
     "cmake_policy(VERSION 3.22)\n"
     "if(NOT \"${cas_deb_ok}\" STREQUAL \"1\")\n"
     "  message(FATAL_ERROR \"The Debian package needs a /usr build: configure with\"\n"
     "    \" -DCMAKE_INSTALL_PREFIX=/usr (and CAS_INSTALL_SYSTEM_FILES ON)\")\n"
     "endif()\n")
include(CPack)
