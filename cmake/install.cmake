# Install rules: the public header(s), libcanteen.so.0 and libcanteen.a, a
# pkg-config file (canteen.pc) and a CMake package (find_package(canteen)).
#
# Layout under the prefix (GNUInstallDirs):
#   include/canteen.h, include/canteen/*.h
#   <libdir>/libcanteen.so.0.1.0, libcanteen.so.0, libcanteen.so, libcanteen.a
#   <libdir>/pkgconfig/canteen.pc
#   <libdir>/cmake/canteen/canteen{Config,ConfigVersion,Targets*}.cmake
#
# Components: canteen_Runtime (the shared library proper) and
# canteen_Development (everything else), for packagers.
#
# Only canteen and canteen_static are installed and exported. The build-tree
# helpers (canteen_obj, canteen_internal, canteen_llhttp) are not: their
# objects are already inside the two libraries.
#
# How the link interface is exported. Both libraries link the PkgConfig::
# imported targets that cmake/deps.cmake creates (PkgConfig::CJSON publicly,
# PkgConfig::LIBUV, PkgConfig::LIBCURL and Threads::Threads privately).
# install(EXPORT) writes imported targets by name and does not check them, so
# canteenTargets.cmake refers to PkgConfig::CJSON (canteen and canteen_static)
# and to $<LINK_ONLY:PkgConfig::LIBUV> etc. (canteen_static only: a static
# archive needs its private dependencies at the final link; the shared
# library's private dependencies are not exported at all). canteenConfig.cmake
# therefore re-creates exactly those imported targets, with the same names,
# from the consumer's own pkg-config before it includes canteenTargets.cmake.
# This keeps src/CMakeLists.txt free of $<BUILD_INTERFACE:...> wrapping and the
# build tree and the installed package agree on one set of names.
#
# The one dependency that does need care is a system llhttp (newer
# distributions; on Debian 12 llhttp is compiled into the library and nothing
# is linked). src/CMakeLists.txt then links canteen_static PRIVATE to
# canteen_llhttp, a plain INTERFACE target of this build that cannot be
# exported; install(EXPORT) would fail with "requires target canteen_llhttp
# that is not in any export set". canteen_llhttp only forwards to one imported
# target, so below the static library's exported link interface names that
# imported target instead (same link line in the build tree) and the config
# file re-creates it.

include(CMakePackageConfigHelpers)

set(CANTEEN_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/canteen"
    CACHE STRING "Where canteenConfig.cmake is installed (relative to the prefix)")
set(CANTEEN_PKGCONFIG_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
    CACHE STRING "Where canteen.pc is installed (relative to the prefix)")
mark_as_advanced(CANTEEN_CMAKE_INSTALL_DIR CANTEEN_PKGCONFIG_INSTALL_DIR)

# --- llhttp, when it is a system library rather than compiled in -----------
set(CANTEEN_PC_REQUIRES_PRIVATE_EXTRA "")
set(CANTEEN_PC_LIBS_PRIVATE_EXTRA "")
set(CANTEEN_CONFIG_LLHTTP_TARGET "")
if(NOT CANTEEN_LLHTTP_MODE STREQUAL "sources")
  get_target_property(_cn_llhttp_iface canteen_llhttp INTERFACE_LINK_LIBRARIES)
  list(LENGTH _cn_llhttp_iface _cn_llhttp_n)
  if(NOT _cn_llhttp_n EQUAL 1)
    message(FATAL_ERROR "canteen install: expected canteen_llhttp to forward to one target, "
                        "got '${_cn_llhttp_iface}'")
  endif()
  set(CANTEEN_CONFIG_LLHTTP_TARGET "${_cn_llhttp_iface}")
  get_target_property(_cn_static_iface canteen_static INTERFACE_LINK_LIBRARIES)
  list(TRANSFORM _cn_static_iface REPLACE "^\\$<LINK_ONLY:canteen_llhttp>$"
       "$<LINK_ONLY:${CANTEEN_CONFIG_LLHTTP_TARGET}>")
  set_target_properties(canteen_static PROPERTIES INTERFACE_LINK_LIBRARIES "${_cn_static_iface}")
  if(CANTEEN_LLHTTP_MODE STREQUAL "pkg-config")
    set(CANTEEN_PC_REQUIRES_PRIVATE_EXTRA ", llhttp")
  else()
    set(CANTEEN_PC_LIBS_PRIVATE_EXTRA " -lllhttp")
  endif()
endif()

# --- headers ----------------------------------------------------------------
install(FILES "${PROJECT_SOURCE_DIR}/include/canteen.h"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" COMPONENT canteen_Development)
file(GLOB _cn_sub_headers CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/include/canteen/*.h")
if(_cn_sub_headers)
  install(FILES ${_cn_sub_headers}
          DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/canteen" COMPONENT canteen_Development)
endif()

# --- libraries ----------------------------------------------------------------
install(TARGETS canteen canteen_static
  EXPORT canteenTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
          COMPONENT canteen_Runtime
          NAMELINK_COMPONENT canteen_Development
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT canteen_Development
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT canteen_Runtime)

# --- pkg-config -----------------------------------------------------------------
# Relocatable: paths are relative to the .pc file itself (${pcfiledir}), so
# `cmake --install build --prefix /somewhere` gives a working canteen.pc
# although the prefix was not known at configure time. Absolute install dirs
# (-DCMAKE_INSTALL_LIBDIR=/opt/...) are written as they are.
if(IS_ABSOLUTE "${CANTEEN_PKGCONFIG_INSTALL_DIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}"
   OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(CANTEEN_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(CANTEEN_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(CANTEEN_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _cn_pc_up "/${CANTEEN_PKGCONFIG_INSTALL_DIR}" "/")
  string(REGEX REPLACE "/$" "" _cn_pc_up "${_cn_pc_up}")
  set(CANTEEN_PC_PREFIX "\${pcfiledir}/${_cn_pc_up}")
  set(CANTEEN_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(CANTEEN_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
# An RPATH in the link flags, so that a program built with
# `pkg-config --libs canteen` finds libcanteen.so.0 where it was installed,
# without LD_LIBRARY_PATH or an ldconfig run (a fresh /usr/local/lib is not
# in ld.so's cache until ldconfig runs; /opt/... never is). Off for /usr,
# where the linker looks anyway and distributions want no RPATH.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_cn_pc_rpath_default OFF)
else()
  set(_cn_pc_rpath_default ON)
endif()
option(CANTEEN_PC_RPATH "canteen.pc's Libs carry -Wl,-rpath,<libdir>" ${_cn_pc_rpath_default})
set(CANTEEN_PC_RPATH_FLAG "")
if(CANTEEN_PC_RPATH)
  set(CANTEEN_PC_RPATH_FLAG " -Wl,-rpath,\${libdir}")
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/canteen.pc.in"
               "${PROJECT_BINARY_DIR}/canteen.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/canteen.pc"
        DESTINATION "${CANTEEN_PKGCONFIG_INSTALL_DIR}" COMPONENT canteen_Development)

# --- CMake package ----------------------------------------------------------------
install(EXPORT canteenTargets
        NAMESPACE canteen::
        FILE canteenTargets.cmake
        DESTINATION "${CANTEEN_CMAKE_INSTALL_DIR}"
        COMPONENT canteen_Development)
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/canteenConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/canteenConfig.cmake"
  INSTALL_DESTINATION "${CANTEEN_CMAKE_INSTALL_DIR}")
# The SONAME carries the major version (libcanteen.so.0), so the CMake
# package promises the same: any 0.x satisfies find_package(canteen 0.1).
write_basic_package_version_file("${PROJECT_BINARY_DIR}/canteenConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)
install(FILES "${PROJECT_BINARY_DIR}/canteenConfig.cmake"
              "${PROJECT_BINARY_DIR}/canteenConfigVersion.cmake"
        DESTINATION "${CANTEEN_CMAKE_INSTALL_DIR}" COMPONENT canteen_Development)

# --- libcanteen-pg -------------------------------------------------------------
# Its own export set (canteen-pgTargets.cmake, in the same package
# directory) and its own pkg-config file, so that a consumer of libcanteen
# alone never needs libpq: find_package(canteen COMPONENTS pg) loads it.
if(TARGET canteen-pg)
  install(TARGETS canteen-pg canteen-pg_static
    EXPORT canteen-pgTargets
    LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
            COMPONENT canteen_Runtime
            NAMELINK_COMPONENT canteen_Development
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT canteen_Development
    RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT canteen_Runtime)
  install(EXPORT canteen-pgTargets
          NAMESPACE canteen::
          FILE canteen-pgTargets.cmake
          DESTINATION "${CANTEEN_CMAKE_INSTALL_DIR}"
          COMPONENT canteen_Development)
  configure_file("${PROJECT_SOURCE_DIR}/cmake/canteen-pg.pc.in"
                 "${PROJECT_BINARY_DIR}/canteen-pg.pc" @ONLY)
  install(FILES "${PROJECT_BINARY_DIR}/canteen-pg.pc"
          DESTINATION "${CANTEEN_PKGCONFIG_INSTALL_DIR}" COMPONENT canteen_Development)
endif()
