# Every dependency is a Debian 12 package (see docs/design.md).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv>=1.44)
pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson>=1.7)
# 7.85: CURLOPT_PROTOCOLS_STR (src/fetch.c); every other curl symbol the
# library uses is older: 7.61 at most (CURLINFO_NAMELOOKUP_TIME_T); see
# curl's docs/libcurl/symbols-in-versions
pkg_check_modules(LIBCURL REQUIRED IMPORTED_TARGET libcurl>=7.85)
# the gzip middleware (Debian: zlib1g-dev)
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib>=1.2)
# libcanteen-pg only (optional: without it the pg library, its tests and
# the demo's --database are not built)
pkg_check_modules(LIBPQ QUIET IMPORTED_TARGET libpq>=14)

# llhttp: prefer a system library (pkg-config or CMake package, as newer
# distributions ship); otherwise compile the C sources that Debian 12's
# node-llhttp package installs under /usr/share.
set(CANTEEN_LLHTTP_SRC_DIR "/usr/share/llhttp" CACHE PATH "llhttp C sources (node-llhttp)")
set(CANTEEN_LLHTTP_INC_DIR "/usr/share/include/llhttp" CACHE PATH "llhttp header (node-llhttp)")
set(CANTEEN_LLHTTP_MODE "")
pkg_check_modules(LLHTTP QUIET IMPORTED_TARGET llhttp)
if(LLHTTP_FOUND)
  set(CANTEEN_LLHTTP_MODE "pkg-config")
  add_library(canteen_llhttp INTERFACE)
  target_link_libraries(canteen_llhttp INTERFACE PkgConfig::LLHTTP)
else()
  find_package(llhttp QUIET CONFIG)
  if(TARGET llhttp::llhttp_shared OR TARGET llhttp::llhttp_static OR TARGET llhttp::llhttp)
    set(CANTEEN_LLHTTP_MODE "cmake")
    add_library(canteen_llhttp INTERFACE)
    if(TARGET llhttp::llhttp)
      target_link_libraries(canteen_llhttp INTERFACE llhttp::llhttp)
    elseif(TARGET llhttp::llhttp_shared)
      target_link_libraries(canteen_llhttp INTERFACE llhttp::llhttp_shared)
    else()
      target_link_libraries(canteen_llhttp INTERFACE llhttp::llhttp_static)
    endif()
  elseif(EXISTS "${CANTEEN_LLHTTP_SRC_DIR}/llhttp.c" AND EXISTS "${CANTEEN_LLHTTP_INC_DIR}/llhttp.h")
    set(CANTEEN_LLHTTP_MODE "sources")
    # Compiled into libcanteen itself (an object library, hidden symbols), so
    # the installed library has no extra dependency.
    add_library(canteen_llhttp OBJECT
      "${CANTEEN_LLHTTP_SRC_DIR}/llhttp.c"
      "${CANTEEN_LLHTTP_SRC_DIR}/api.c"
      "${CANTEEN_LLHTTP_SRC_DIR}/http.c")
    target_include_directories(canteen_llhttp PUBLIC "${CANTEEN_LLHTTP_INC_DIR}")
    set_target_properties(canteen_llhttp PROPERTIES C_VISIBILITY_PRESET hidden
                          POSITION_INDEPENDENT_CODE ON)
    target_compile_options(canteen_llhttp PRIVATE -w)
    # Strict mode (DESIGN: "keep it on"): CRLF required after chunk data,
    # LF after CR, token-only header names, no 8-bit bytes in the target.
    # Built without it, llhttp skips the two bytes after chunk data unchecked.
    target_compile_definitions(canteen_llhttp PRIVATE LLHTTP_STRICT_MODE=1)
  else()
    message(FATAL_ERROR "llhttp not found: install Debian's node-llhttp (script/bootstrap does)")
  endif()
endif()
message(STATUS "canteen: llhttp from ${CANTEEN_LLHTTP_MODE}")
