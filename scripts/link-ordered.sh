#!/usr/bin/env bash
# The linker of the dist build (`PROFILE=dist ./scripts/build-static.sh` sets it): the C
# compiler driver with the toolchain's rust-lld, told to lay out first the functions that
# services/clockify-addons/hot-symbols.txt names, in its order (--symbol-ordering-file).
#
# That file names each function by its symbol, hash included (one name, one instance of a
# generic function), without LLVM's `.llvm.N` suffix, which varies from link to link; here they
# are matched to the symbols of the objects being linked. A name that matches nothing (a
# dependency updated since the file was written) is skipped; a binary that has none of them
# (the operator) links as before.
#
# Relative relocations are packed (`-z pack-relative-relocs`, DT_RELR, which musl's static-PIE
# start code applies since musl 1.2.4): the table the binary reads at every start, and keeps
# resident, is 8 KB instead of 650 KB.
set -euo pipefail

list=$(cd "$(dirname "$0")/.." && pwd)/services/clockify-addons/hot-symbols.txt
gcc_ld=${CLOCKIFY_GCC_LD:?set by scripts/build-static.sh: the gcc-ld directory of the toolchain}
cc=${CLOCKIFY_LINK_CC:-cc}
if [ ! -x "$gcc_ld/ld.lld" ]; then
    # A toolchain without rust-lld links as it would without this script, in the usual order.
    echo "link-ordered.sh: no $gcc_ld/ld.lld; linking without the hot-code order" >&2
    exec "$cc" "$@"
fi

# The arguments, with a response file (@path, one argument per line) read out.
args=()
for a in "$@"; do
    if [[ $a == @* && -f ${a#@} ]]; then
        while IFS= read -r line; do args+=("$line"); done < "${a#@}"
    else
        args+=("$a")
    fi
done
objects=()
for a in "${args[@]}"; do
    [[ $a == *.o ]] && objects+=("$a")
done

ordering=$(mktemp)
trap 'rm -f "$ordering"' EXIT
if [ -f "$list" ] && [ ${#objects[@]} -gt 0 ]; then
    # "normalised<TAB>symbol" for every function the objects define.
    nm --defined-only -P "${objects[@]}" 2>/dev/null \
        | awk '$2 ~ /^[tTwW]$/ { print $1 }' | sort -u \
        | sed -E 'h; s/(17h[0-9a-f]{16}E)(\.llvm\.[0-9]+|\.[0-9]+)$/\1/; s/\.llvm\.[0-9]+$//; G; s/\n/\t/' \
        > "$ordering.map"
    # Each listed name, in the list's order: the symbols it matches, or itself (C functions of
    # the static libraries, whose names carry no hash).
    awk -F'\t' '
        NR == FNR { if ($0 !~ /^#/ && $0 != "") { n++; name[n] = $0 }; next }
        { matches[$1] = ($1 in matches) ? matches[$1] "\n" $2 : $2 }
        END { for (i = 1; i <= n; i++) print ((name[i] in matches) ? matches[name[i]] : name[i]) }
    ' "$list" "$ordering.map" > "$ordering"
    rm -f "$ordering.map"
fi

exec "$cc" "${args[@]}" -fuse-ld=lld -B"$gcc_ld" \
    -Wl,--symbol-ordering-file="$ordering" -Wl,--no-warn-symbol-ordering \
    -Wl,-z,pack-relative-relocs
