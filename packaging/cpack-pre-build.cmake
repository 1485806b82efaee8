# Run by cpack (CPACK_PRE_BUILD_SCRIPTS) on the staging tree before it is packed: every folder
# 0755. Folders cpack and install() create on the way follow the builder's umask, and a package
# built under umask 077 would otherwise install /etc/cas-agent and /usr/share/doc/cas-agent 0700.
cmake_policy(VERSION 3.22)
file(GLOB_RECURSE cas_dirs LIST_DIRECTORIES true "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*")
foreach(d ${cas_dirs} "${CPACK_TEMPORARY_INSTALL_DIRECTORY}")
  if(IS_DIRECTORY "${d}" AND NOT IS_SYMLINK "${d}")
    file(CHMOD "${d}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                  WORLD_READ WORLD_EXECUTE)
  endif()
endforeach()
