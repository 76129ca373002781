#!/usr/bin/env bash
# check_docs.sh -- the documentation cannot drift from the code.
#
# usage: tests/docs/check_docs.sh <source-dir> [<build-dir>]
#        (CHECK_DOCS_KEEP=1 keeps its scratch files, for debugging)
#
# Fails (exit 1, one line per problem) when:
#  1. a CN_EXTERN function in include/canteen.h (or include/canteen/*.h) has
#     no doc comment immediately above it (a block comment, then no blank
#     line before the declaration; adjacent declarations, a #define or a
#     typedef between the comment and the declaration may share it);
#  2. a public function has no "### <name>" heading on exactly one page of
#     docs/api/*.md, or that page does not show its signature (compared with
#     whitespace collapsed and CN_EXTERN ignored); a "### cn_*" heading that
#     names no public function is stale and fails too;
#  3. a cn_config field is missing from docs/api/config.md and
#     docs/api/app.md, or config.md states a default other than the header's;
#     a CN_E* code of CN_ERRNO_MAP has no row in docs/api/errors.md giving
#     its message;
#  4. a code block marked <!-- from: <path> --> is not found verbatim in that
#     file, or a ```c block in README.md, docs/guide/, docs/api/ or
#     docs/design.md carries no such marker (every C snippet is quoted from a
#     file that CI compiles, so it cannot stop compiling unnoticed);
#  5. a file examples/guide/<name>.c named in the docs does not exist, is not
#     listed in examples/guide/CMakeLists.txt, or -- given a build dir in
#     which examples/guide was built -- has no executable there.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 <source-dir> [<build-dir>]" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
build=${2:-}
problems=0
say() {
    echo "check_docs: $*" >&2
    problems=$((problems + 1))
}

tmp=$(mktemp -d)
if [[ -n ${CHECK_DOCS_KEEP:-} ]]; then
    echo "check_docs: keeping $tmp" >&2
else
    trap 'rm -rf "$tmp"' EXIT
fi

headers=("$src/include/canteen.h")
for h in "$src"/include/canteen/*.h; do
    [[ -f $h ]] && headers+=("$h")
done
[[ -f ${headers[0]} ]] || {
    echo "check_docs: no include/canteen.h under $src" >&2
    exit 1
}

# The Markdown files this checks: the README and everything under docs/.
docs=()
[[ -f $src/README.md ]] && docs+=("$src/README.md")
while IFS= read -r f; do docs+=("$f"); done < <(find "$src/docs" -name '*.md' 2>/dev/null | sort)
api_pages=()
while IFS= read -r f; do api_pages+=("$f"); done < <(find "$src/docs/api" -maxdepth 1 -name '*.md' 2>/dev/null | sort)

rel() { echo "${1#"$src"/}"; }

# ---- 1. public functions and their doc comments ---------------------------
# One line per function: name <TAB> documented (0/1) <TAB> signature <TAB> file:line
for h in "${headers[@]}"; do
    awk -v file="$(rel "$h")" '
    function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
    function depth(s,   i, c, d) {
        d = 0
        for (i = 1; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (c == "(") d++
            else if (c == ")") d--
        }
        return d
    }
    function emit(   s, name, sig) {
        s = substr(decl, 1, index(decl, "(") - 1)
        if (!match(s, /[A-Za-z_][A-Za-z0-9_]*[ \t]*$/)) return
        name = trim(substr(s, RSTART, RLENGTH))
        sig = decl
        sub(/^CN_EXTERN[ \t]+/, "", sig)
        gsub(/[ \t]+/, " ", sig)
        gsub(/\( /, "(", sig)
        gsub(/ \)/, ")", sig)
        sub(/;$/, "", sig)
        printf "%s\t%d\t%s\t%s:%d\n", name, decl_doc, sig, file, decl_line
        collecting = 0
    }
    {
        line = $0
        t = trim(line)
        if (collecting) {
            decl = decl " " t
            if (depth(decl) == 0) emit()
            next
        }
        if (in_comment) {
            if (index(line, "*/")) { in_comment = 0; if (doc_comment) documented = 1 }
            next
        }
        if (t == "") { documented = 0; next }
        if (substr(t, 1, 2) == "/*") {
            if (index(substr(t, 3), "*/")) documented = 1
            else { in_comment = 1; doc_comment = 1 }
            next
        }
        if (t ~ /^CN_EXTERN[ \t]/) {
            decl = t; decl_line = NR; decl_doc = documented
            if (index(decl, "(") && depth(decl) == 0) emit()
            else collecting = 1
            next
        }
        # the end of a struct or enum: a comment above it documents it only
        if (substr(t, 1, 1) == "}") documented = 0
        # a comment that starts after code and runs on: not a doc comment
        p = index(line, "/*")
        if (p && !index(substr(line, p + 2), "*/")) { in_comment = 1; doc_comment = 0 }
    }' "$h"
done >"$tmp/functions.tsv"

nfuncs=$(wc -l <"$tmp/functions.tsv")
if [[ $nfuncs -eq 0 ]]; then
    say "found no CN_EXTERN function in ${headers[*]}"
fi
while IFS=$'\t' read -r name doc sig where; do
    [[ $doc == 1 ]] || say "$where: $name has no doc comment immediately above it"
done <"$tmp/functions.tsv"

# ---- 2. every function on exactly one docs/api page, with its signature ---
# Page text with whitespace collapsed, for the signature comparison.
normalize() {
    tr '\n\t' '  ' <"$1" | sed -e 's/  */ /g' -e 's/( /(/g' -e 's/ )/)/g'
}
if [[ ${#api_pages[@]} -eq 0 ]]; then
    say "docs/api/ has no pages"
else
    for p in "${api_pages[@]}"; do
        normalize "$p" >"$tmp/$(basename "$p").norm"
    done
    while IFS=$'\t' read -r name doc sig where; do
        pages=()
        for p in "${api_pages[@]}"; do
            if grep -qE "^### ${name}\$" "$p"; then pages+=("$p"); fi
        done
        if [[ ${#pages[@]} -eq 0 ]]; then
            say "$name ($where) is not documented in docs/api/*.md (no '### $name' heading)"
        elif [[ ${#pages[@]} -gt 1 ]]; then
            say "$name has a heading on ${#pages[@]} pages: $(for p in "${pages[@]}"; do rel "$p"; done | tr '\n' ' ')"
        elif ! grep -qF -- "$sig" "$tmp/$(basename "${pages[0]}").norm"; then
            say "$(rel "${pages[0]}"): the signature of $name differs from the header's: $sig"
        fi
    done <"$tmp/functions.tsv"
    # headings that name no public function
    cut -f1 "$tmp/functions.tsv" | sort -u >"$tmp/names"
    for p in "${api_pages[@]}"; do
        { grep -nE '^### cn_[A-Za-z0-9_]+$' "$p" || true; } | while IFS=: read -r ln heading; do
            n=${heading#\#\#\# }
            grep -qxF -- "$n" "$tmp/names" ||
                echo "$(rel "$p"):$ln: '### $n' names no public function (stale?)"
        done
    done >"$tmp/stale"
    while IFS= read -r l; do say "$l"; done <"$tmp/stale"
fi

# ---- 3. cn_config: every field and its default ------------------------------
# Fields from the struct, defaults from the table in the comment above it.
awk '/^typedef struct cn_config \{/ { on = 1; next }
     on && /^\}/ { exit }
     on { l = $0; sub(/;.*/, "", l); if (match(l, /[A-Za-z_][A-Za-z0-9_]*$/)) print substr(l, RSTART, RLENGTH) }' \
    "${headers[0]}" >"$tmp/config_fields"
awk '/^ \* Configuration\./ { on = 1; next }
     on && /^ \*\// { exit }
     on && /^ \*   [a-z_]+  +[0-9]/ {
         l = $0; sub(/^ \*   /, "", l)
         field = l; sub(/ .*/, "", field)
         rest = substr(l, length(field) + 1); sub(/^ +/, "", rest)
         if (match(rest, /^-?[0-9]+( [KMG]iB)?/)) print field "\t" substr(rest, 1, RLENGTH)
     }' "${headers[0]}" >"$tmp/config_defaults"
if [[ ! -s $tmp/config_fields ]]; then
    say "could not read the fields of cn_config from include/canteen.h"
fi
for page in config.md app.md; do
    f=$src/docs/api/$page
    if [[ ! -f $f ]]; then
        say "docs/api/$page is missing"
        continue
    fi
    while IFS= read -r field; do
        grep -qF -- "\`$field\`" "$f" || say "docs/api/$page does not mention cn_config.$field"
    done <"$tmp/config_fields"
done
if [[ -f $src/docs/api/config.md ]]; then
    while IFS=$'\t' read -r field dflt; do
        grep -F -- "\`$field\`" "$src/docs/api/config.md" | grep -qF -- "$dflt" ||
            say "docs/api/config.md: no line gives cn_config.$field with the header's default ($dflt)"
    done <"$tmp/config_defaults"
fi

# ---- 3b. every error code, with its message --------------------------------
grep -oE '^ *XX\([A-Z]+, [^,]+, "[^"]*"\)' "${headers[0]}" |
    sed -E 's/^ *XX\(([A-Z]+), [^,]+, "([^"]*)"\)/CN_E\1\t\2/' >"$tmp/errors"
if [[ ! -s $tmp/errors ]]; then
    say "could not read CN_ERRNO_MAP from include/canteen.h"
elif [[ ! -f $src/docs/api/errors.md ]]; then
    say "docs/api/errors.md is missing"
else
    while IFS=$'\t' read -r code msg; do
        grep -F -- "\`$code\`" "$src/docs/api/errors.md" | grep -qF -- "| $msg |" ||
            say "docs/api/errors.md: no table row gives $code with its message ($msg)"
    done <"$tmp/errors"
fi

# ---- 4. quoted code blocks ------------------------------------------------
# Emits, per marker: doc <TAB> line <TAB> path <TAB> block file; and, per
# unmarked ```c block in a checked file: doc <TAB> line <TAB> - <TAB> -.
n=0
for d in "${docs[@]}"; do
    r=$(rel "$d")
    case $r in
    README.md | docs/guide/* | docs/api/* | docs/design.md) strict=1 ;;
    *) strict=0 ;;
    esac
    awk -v doc="$r" -v out="$tmp/block" -v strict="$strict" -v start="$n" '
    BEGIN { k = start }
    {
        if (inblock) {
            if ($0 ~ /^```[ \t]*$/) { inblock = 0; close(bf); next }
            print $0 > bf
            next
        }
        if (want) {
            want = 0
            if ($0 ~ /^```/) {
                k++; bf = out "." k; printf "" > bf; inblock = 1
                printf "%s\t%d\t%s\t%s\n", doc, NR, path, bf
                next
            }
            printf "%s\t%d\t%s\t%s\n", doc, mline, path, "NOBLOCK"
        }
        if (match($0, /<!-- from: [^ ]+ -->/)) {
            path = substr($0, RSTART + 11, RLENGTH - 15); want = 1; mline = NR
            next
        }
        if ($0 ~ /^```/) {
            if (strict && $0 ~ /^```c[ \t]*$/) printf "%s\t%d\t-\t-\n", doc, NR
            # skip to the closing fence
            while ((getline l) > 0) { if (l ~ /^```[ \t]*$/) break }
        }
    }
    END { print k > (out ".count") }' "$d" >>"$tmp/blocks.tsv"
    n=$(cat "$tmp/block.count")
done

while IFS=$'\t' read -r doc line path block; do
    if [[ $path == - ]]; then
        say "$doc:$line: a \`\`\`c block without a <!-- from: FILE --> marker (quote the code from a compiled file)"
        continue
    fi
    if [[ $block == NOBLOCK ]]; then
        say "$doc:$line: marker 'from: $path' is not followed by a fenced code block"
        continue
    fi
    if [[ ! -f $src/$path ]]; then
        say "$doc:$line: quotes $path, which does not exist"
        continue
    fi
    if [[ ! -s $block ]]; then
        say "$doc:$line: empty code block quoted from $path"
        continue
    fi
    # verbatim: the block's lines, newlines included, are a substring of the file
    if ! awk -v blockfile="$block" '
        BEGIN { while ((getline l < blockfile) > 0) b = b l "\n" }
        { f = f $0 "\n" }
        END { exit index(f, b) ? 0 : 1 }' "$src/$path"; then
        say "$doc:$line: the block quoted from $path is not found verbatim in it"
    fi
done <"$tmp/blocks.tsv"

# ---- 5. examples/guide programs ---------------------------------------------
cmakelists=$src/examples/guide/CMakeLists.txt
exe_dir=
if [[ -n $build && -d $build/examples/guide ]]; then
    exe_dir=$build/examples/guide
fi
if [[ ${#docs[@]} -gt 0 ]]; then
    grep -ohE 'examples/guide/[A-Za-z0-9_.-]+\.c' "${docs[@]}" | sort -u >"$tmp/examples" || true
else
    : >"$tmp/examples"
fi
while IFS= read -r ex; do
    name=$(basename "$ex" .c)
    if [[ ! -f $src/$ex ]]; then
        say "the docs refer to $ex, which does not exist"
        continue
    fi
    if [[ ! -f $cmakelists ]] || ! grep -qE "(^|[[:space:]])${name}([[:space:]]|\)|$)" "$cmakelists"; then
        say "$ex is not listed in examples/guide/CMakeLists.txt (CI would not build it)"
        continue
    fi
    if [[ -n $exe_dir && ! -x $exe_dir/$name ]]; then
        say "$ex was not built: no executable $exe_dir/$name"
    fi
done <"$tmp/examples"

if [[ $problems -gt 0 ]]; then
    echo "check_docs: FAILED: $problems problem(s)" >&2
    exit 1
fi
echo "check_docs: ok: $nfuncs public functions documented in docs/api," \
    "$(grep -vc $'\t-\t-$' "$tmp/blocks.tsv" || true) quoted code blocks verbatim," \
    "$(wc -l <"$tmp/examples") guide examples present"
