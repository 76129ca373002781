#!/usr/bin/env bash
# Install a Canteen build into a fresh prefix and build examples/consumer
# against it, the ways a user would:
#   1. pkg-config, shared   (examples/consumer/Makefile, `make consumer`)
#   2. pkg-config --static  (`make consumer-static`, libcanteen.a)
#   3. the README's static recipe, the line as the README has it
#      (libcanteen.a, the system's shared libuv/libcurl/libcjson)
#   4. CMake find_package   (examples/consumer/CMakeLists.txt: canteen::canteen
#                            and canteen::canteen_static)
# Each program must run and print the port it listened on, with no
# LD_LIBRARY_PATH: the prefix is a fresh temporary directory, in no
# linker's search path, so a shared consumer finds libcanteen.so.0 through
# the RPATH that canteen.pc (or CMake's build tree) gives it.
#
# usage: run_install_test.sh BUILD_DIR [SOURCE_DIR]
#   BUILD_DIR   a configured and built Canteen tree (has CMakeCache.txt)
#   SOURCE_DIR  the Canteen sources (default: two levels above this script)
# Environment: CANTEEN_KEEP_TMP=1 keeps the temporary directory for a look.
#
# The consumers are compiled with the compiler of BUILD_DIR and, when it was
# configured with CANTEEN_SANITIZE=ON, with the same -fsanitize flags (an
# instrumented libcanteen needs the sanitizer runtime in the program).
set -euo pipefail

me="install_consumer"
say() { printf '%s: %s\n' "$me" "$*"; }
die() {
    printf '%s: FAIL: %s\n' "$me" "$*" >&2
    exit 1
}

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 BUILD_DIR [SOURCE_DIR]"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
builddir=$(cd "$1" && pwd) || die "no build directory $1"
srcdir=$(cd "${2:-$here/../..}" && pwd) || die "no source directory ${2:-}"
consumer_src="$srcdir/examples/consumer"
cache="$builddir/CMakeCache.txt"
[[ -f $cache ]] || die "$builddir is not a CMake build directory (no CMakeCache.txt)"
[[ -f $consumer_src/main.c ]] || die "no $consumer_src/main.c"

cache_get() { sed -n "/^$1:[A-Za-z]*=/{s///p;q}" "$cache"; }
is_true() {
    case "${1^^}" in
    1 | ON | YES | TRUE | Y) return 0 ;;
    *) return 1 ;;
    esac
}

cc=$(cache_get CMAKE_C_COMPILER)
cc=${cc:-cc}
san=""
if is_true "$(cache_get CANTEEN_SANITIZE)"; then
    san="-fsanitize=address,undefined -fno-omit-frame-pointer"
fi
export PKG_CONFIG=${PKG_CONFIG:-pkg-config}
command -v "$PKG_CONFIG" >/dev/null || die "pkg-config not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/canteen-install.XXXXXX")
cleanup() {
    if [[ ${CANTEEN_KEEP_TMP:-0} == 1 ]]; then
        say "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

# Run a command quietly; on failure show what it printed and stop.
quiet() {
    local what=$1 log
    shift
    log="$tmp/log.$RANDOM"
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        die "$what"
    fi
}

# Run a consumer program and check its one line of output.
check_run() {
    local what=$1 out rc=0
    shift
    out=$(timeout 60 "$@" 2>&1) || rc=$?
    if [[ $rc -ne 0 ]]; then
        printf '%s\n' "$out" >&2
        die "$what exited with status $rc"
    fi
    if [[ ! $out =~ ^consumer:\ listening\ on\ 127\.0\.0\.1:([0-9]+)\ \(cJSON\ [0-9.]+\) ]]; then
        printf '%s\n' "$out" >&2
        die "$what: unexpected output"
    fi
    local port=${BASH_REMATCH[1]}
    ((port > 0 && port < 65536)) || die "$what: bad port $port"
    say "ok: $what (port $port)"
}

# The DT_NEEDED entries of a program, as " a b c " (captured first: with
# pipefail, `... | grep -q` can fail when grep exits before the writer ends).
needed() {
    local list
    list=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p') || die "readelf $1"
    echo " ${list//$'\n'/ } "
}
uses_shared_canteen() { [[ $(needed "$1") == *" libcanteen.so.0 "* ]]; }

# --- 1. install ---------------------------------------------------------------
prefix="$tmp/prefix"
quiet "cmake --install $builddir --prefix $prefix" cmake --install "$builddir" --prefix "$prefix"

pc=$(find "$prefix" -name canteen.pc -path '*/pkgconfig/*' -print -quit)
[[ -n $pc ]] || die "canteen.pc not installed"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
cmakedir="$libdir/cmake/canteen"
for f in "$prefix/include/canteen.h" "$libdir/libcanteen.so" "$libdir/libcanteen.so.0" \
    "$libdir/libcanteen.a" "$cmakedir/canteenConfig.cmake" \
    "$cmakedir/canteenConfigVersion.cmake" "$cmakedir/canteenTargets.cmake"; do
    [[ -e $f ]] || die "not installed: ${f#"$prefix"/}"
done
[[ -L $libdir/libcanteen.so && -L $libdir/libcanteen.so.0 ]] ||
    die "libcanteen.so and libcanteen.so.0 should be symlinks to the versioned library"
soname=$(readelf -d "$libdir/libcanteen.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[[ $soname == libcanteen.so.0 ]] || die "SONAME is '$soname', expected libcanteen.so.0"
if stray=$(find "$prefix" \( -name '*canteen_internal*' -o -name '*canteen_obj*' \
    -o -name '*llhttp*' \) -print -quit) && [[ -n $stray ]]; then
    die "build-tree helper installed: ${stray#"$prefix"/}"
fi
if grep -lE 'canteen_(obj|internal|llhttp)' "$cmakedir"/canteenTargets*.cmake >/dev/null; then
    die "exported CMake targets mention a build-tree helper target"
fi
# Relocatable: nothing installed may point back into the build or source tree.
if leak=$(grep -rlF -e "$builddir" -e "$srcdir" "$cmakedir" "$pc") && [[ -n $leak ]]; then
    die "installed files refer to the build or source tree: $leak"
fi
# Only the public API is exported from the shared library.
extra=$(nm -D --defined-only "$libdir/libcanteen.so" | awk '{print $NF}' |
    grep -vE '^(cn_|_init$|_fini$|__odr_asan)' || true)
# shellcheck disable=SC2086 # one line of names
[[ -z $extra ]] || die "libcanteen.so exports non-cn_ symbols: $(printf "%s " $extra | head -c 300)"
say "ok: installed into a fresh prefix (SONAME $soname, only cn_* exported)"

# --- 2. pkg-config, shared -----------------------------------------------------------
orig_pkg_config_path=${PKG_CONFIG_PATH:-}
export PKG_CONFIG_PATH="$pcdir${orig_pkg_config_path:+:$orig_pkg_config_path}"
pc_version=$("$PKG_CONFIG" --modversion canteen) || die "pkg-config cannot read canteen.pc"
cm_version=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$cmakedir/canteenConfigVersion.cmake")
[[ $pc_version == "$cm_version" ]] || die "canteen.pc says $pc_version, CMake package $cm_version"
pc_prefix=$(cd "$("$PKG_CONFIG" --variable=prefix canteen)" && pwd -P)
[[ $pc_prefix == "$(cd "$prefix" && pwd -P)" ]] || die "canteen.pc prefix is $pc_prefix"
libs=" $("$PKG_CONFIG" --libs canteen) "
for l in -lcanteen -lcjson; do
    [[ $libs == *" $l "* ]] || die "pkg-config --libs canteen lacks $l: $libs"
done
static_libs=" $("$PKG_CONFIG" --static --libs canteen) "
for l in -lcanteen -lcjson -luv -lcurl -lpthread; do
    [[ $static_libs == *" $l "* ]] || die "pkg-config --static --libs canteen lacks $l: $static_libs"
done

mk="$tmp/make"
mkdir -p "$mk"
cp "$consumer_src/main.c" "$consumer_src/Makefile" "$mk/"
quiet "make consumer (pkg-config)" make -C "$mk" consumer CC="$cc" \
    CFLAGS="-O1 -g -Wall -Wextra -Werror $san" LDFLAGS="$san"
uses_shared_canteen "$mk/consumer" || die "consumer does not use libcanteen.so.0"
resolved=$(env -u LD_LIBRARY_PATH ldd "$mk/consumer") || die "ldd consumer failed"
found=$(sed -n 's/^[[:space:]]*libcanteen\.so\.0 => \(\/[^ ]*\) (.*/\1/p' <<<"$resolved")
[[ -n $found && $(realpath "$found") == $(realpath "$libdir/libcanteen.so.0") ]] ||
    die "without LD_LIBRARY_PATH, consumer does not find libcanteen.so.0 in the fresh prefix: $resolved"
readelf -d "$mk/consumer" | grep -qE '\((RUNPATH|RPATH)\)' || die "consumer has no RPATH"
check_run "pkg-config shared consumer (no LD_LIBRARY_PATH)" env -u LD_LIBRARY_PATH "$mk/consumer"

# --- 3. pkg-config --static ----------------------------------------------------------
# libcurl's own Libs.private names every library curl was built with
# (nghttp2, rtmp, ssh2, psl, gssapi_krb5, ldap, zstd, ...). libcurl is linked
# as a shared library here, so those are not needed; but where their -dev
# packages are absent (Debian 12 does not pull them in) -l<name> cannot be
# found and the link fails on a problem that is libcurl's, not ours. Drop
# exactly those flags, and only those: any other missing library fails.
lib_found() {
    local name=$1 ext p d
    for d in "${search_dirs[@]}"; do
        [[ -e $d/lib$name.so || -e $d/lib$name.a ]] && return 0
    done
    for ext in so a; do
        p=$("$cc" -print-file-name="lib$name.$ext")
        [[ $p == /* ]] && return 0
    done
    return 1
}
curl_private=" $("$PKG_CONFIG" --static --libs-only-l libcurl) "
curl_public=" $("$PKG_CONFIG" --libs-only-l libcurl) "
search_dirs=("$libdir")
for flag in $static_libs; do
    [[ $flag == -L* ]] && search_dirs+=("${flag#-L}")
done
static_flags=()
dropped=()
for flag in $static_libs; do
    if [[ $flag == -lcanteen ]]; then
        static_flags+=("-l:libcanteen.a")
        continue
    fi
    if [[ $flag == -l* ]] && ! lib_found "${flag#-l}"; then
        if [[ $curl_private == *" $flag "* && $curl_public != *" $flag "* ]]; then
            dropped+=("$flag")
            continue
        fi
        die "pkg-config --static --libs canteen needs $flag, which is not installed"
    fi
    static_flags+=("$flag")
done
make_static=(make -C "$mk" consumer-static CC="$cc" CFLAGS="-O1 -g -Wall -Wextra -Werror $san"
    LDFLAGS="$san")
if [[ ${#dropped[@]} -gt 0 ]]; then
    say "note: libcurl.pc lists libraries with no development files here; not needed with" \
        "a shared libcurl, left out: ${dropped[*]}"
    make_static+=("CANTEEN_STATIC_LIBS=${static_flags[*]}")
fi
quiet "make consumer-static (pkg-config --static)" "${make_static[@]}"
if [[ $(needed "$mk/consumer-static") == *" libcanteen"* ]]; then
    die "consumer-static still needs a shared libcanteen"
fi
check_run "pkg-config --static consumer" "$mk/consumer-static"

# --- 3. the README's static recipe --------------------------------------------------
# The line after the README's marker, continuation lines joined, with app.c
# standing for the consumer's main.c: exactly what a reader would type.
recipe=$(awk '/<!-- tested by tests\/install\/run_install_test.sh: static -->/ {found = 1; next}
    found && /^```/ { if (inblock) exit; inblock = 1; next }
    found && inblock { line = line $0; if (line ~ /\\$/) { sub(/\\$/, "", line); next } print line; exit }' \
    "$srcdir/README.md")
[[ $recipe == cc\ app.c* ]] || die "no static recipe after the README's marker (got '$recipe')"
rdir="$tmp/readme"
mkdir -p "$rdir"
cp "$consumer_src/main.c" "$rdir/app.c"
( cd "$rdir" && quiet "the README's static recipe: $recipe" env CFLAGS= bash -c "${recipe/#cc /$cc $san }" )
[[ -x $rdir/app ]] || die "the README's static recipe made no ./app"
if [[ $(needed "$rdir/app") == *" libcanteen"* ]]; then
    die "the README's static recipe still needs a shared libcanteen"
fi
check_run "the README's static recipe" env -u LD_LIBRARY_PATH "$rdir/app"

# --- 4. CMake find_package -------------------------------------------------------------
cmb="$tmp/cmake-build"
quiet "cmake configure of examples/consumer (find_package)" \
    env PKG_CONFIG_PATH="$orig_pkg_config_path" cmake -S "$consumer_src" -B "$cmb" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS="-Wall -Wextra -Werror $san" -DCMAKE_EXE_LINKER_FLAGS="$san"
found_dir=$(sed -n 's/^canteen_DIR:[A-Z]*=//p' "$cmb/CMakeCache.txt")
[[ $(cd "$found_dir" && pwd -P) == "$(cd "$cmakedir" && pwd -P)" ]] ||
    die "find_package(canteen) found $found_dir, not the fresh prefix"
quiet "cmake build of examples/consumer" cmake --build "$cmb"
uses_shared_canteen "$cmb/consumer" || die "CMake consumer does not use libcanteen.so.0"
check_run "find_package consumer (canteen::canteen, no LD_LIBRARY_PATH)" env -u LD_LIBRARY_PATH \
    "$cmb/consumer"
if [[ $(needed "$cmb/consumer_static") == *" libcanteen"* ]]; then
    die "consumer_static still needs a shared libcanteen"
fi
check_run "find_package consumer (canteen::canteen_static)" env -u LD_LIBRARY_PATH \
    "$cmb/consumer_static"

# --- 5. libcanteen-pg, when the build has it ------------------------------------
if [[ -e $libdir/libcanteen-pg.so ]]; then
    for f in "$prefix/include/canteen/pg.h" "$prefix/include/canteen/uv.h" \
        "$libdir/libcanteen-pg.a" "$pcdir/canteen-pg.pc" "$cmakedir/canteen-pgTargets.cmake"; do
        [[ -e $f ]] || die "not installed: ${f#"$prefix"/}"
    done
    extra=$(nm -D --defined-only "$libdir/libcanteen-pg.so" | awk '{print $NF}' |
        grep -vE '^(cn_pg_|_init$|_fini$|__odr_asan)' || true)
    # shellcheck disable=SC2086 # one line of names
    [[ -z $extra ]] || die "libcanteen-pg.so exports non-cn_pg_ symbols: $(printf "%s " $extra | head -c 300)"
    # it reaches the core through the public API only: every cn_ symbol it
    # needs is one libcanteen.so exports
    for sym in $(nm -D --undefined-only "$libdir/libcanteen-pg.so" | awk '{print $NF}' | grep '^cn_'); do
        nm -D --defined-only "$libdir/libcanteen.so" | awk '{print $NF}' | grep -qx "$sym" ||
            die "libcanteen-pg.so needs $sym, which libcanteen.so does not export"
    done
    pglibs=" $("$PKG_CONFIG" --libs canteen-pg) "
    [[ $pglibs == *" -lcanteen-pg "* && $pglibs == *" -lcanteen "* ]] ||
        die "pkg-config --libs canteen-pg: $pglibs"
    cp "$consumer_src/pg_main.c" "$mk/"
    quiet "make consumer-pg (pkg-config canteen-pg)" make -C "$mk" consumer-pg CC="$cc" \
        CFLAGS="-O1 -g -Wall -Wextra -Werror $san" LDFLAGS="$san"
    out=$(env -u LD_LIBRARY_PATH timeout 60 "$mk/consumer-pg" 2>&1) ||
        die "consumer-pg failed: $out"
    [[ $out == "consumer_pg: pool of 10 to 10 connections" ]] || die "consumer-pg: $out"
    [[ -x $cmb/consumer_pg ]] || die "find_package(canteen COMPONENTS pg) did not give canteen::canteen-pg"
    out=$(env -u LD_LIBRARY_PATH timeout 60 "$cmb/consumer_pg" 2>&1) ||
        die "CMake consumer_pg failed: $out"
    say "ok: libcanteen-pg installed, only cn_pg_* exported, pkg-config and CMake consumers run"
fi

say "PASS${san:+ (with $san)}"
