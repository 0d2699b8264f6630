#!/usr/bin/env bash
# Builds clockify-operator and clockify-addons as static binaries (x86_64 musl), as the images
# ship them, and checks that they are static and run. CI runs it (there is no Docker engine to
# build the images themselves; see docs/install.md for the image builds).
#
#   ./scripts/build-static.sh            debug profile (CI: proves the static build)
#   PROFILE=release ./scripts/build-static.sh
#   PROFILE=dist ./scripts/build-static.sh      # the add-ons as the images ship them
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
PROFILE=${PROFILE:-dev}
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
if ! command -v musl-gcc >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=$(command -v sudo || true)
    $sudo apt-get install -y -q musl-tools >/dev/null 2>&1 \
        || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q musl-tools >/dev/null; }
fi
# Linked as the images are, with rust-lld and the functions a serving add-on runs laid out
# together (scripts/link-ordered.sh, services/clockify-addons/hot-symbols.txt): a pod maps less
# of the binary's code. Every profile, so CI links this way on every run.
CLOCKIFY_GCC_LD="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
export CLOCKIFY_GCC_LD
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER="$PWD/scripts/link-ordered.sh"
# The same profile as the test build, so the host side (proc macros, build scripts) is reused.
CARGO_INCREMENTAL=0 cargo build --locked --profile "$PROFILE" --target "$TARGET" \
    -p clockify-operator -p clockify-addons --bins
dir=target/$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
for bin in clockify-operator clockify-addons kubectl-clockify; do
    file "$dir/$bin" | grep -Eq "static-pie linked|statically linked" || { file "$dir/$bin"; echo "$bin is not static" >&2; exit 1; }
    "$dir/$bin" --version
    printf '%s: static, %s\n' "$bin" "$(du -h "$dir/$bin" | cut -f1)"
done
# The add-ons' memcpy and memmove are services/musl-memcpy's, not musl's, and call nothing: the
# compiler may turn a copying loop into a call to memcpy, which would recurse without end.
# (The linker may fold the two into one body under both names.)
for fn in memcpy memmove; do
    read -r addr size _ < <(nm -S "$dir/clockify-addons" | awk -v f="$fn" '$4 == f && $3 == "T"') \
        || { echo "clockify-addons: no $fn with a size (musl's assembly ones have none)" >&2; exit 1; }
    body=$(objdump -d --no-show-raw-insn --start-address="0x$addr" \
        --stop-address="$(printf '0x%x' $((0x$addr + 0x$size)))" "$dir/clockify-addons")
    if grep -Eq "[[:space:]](call|j[a-z]*)[[:space:]]+[0-9a-f]+ <[^+>]*>|rep movsq" <<<"$body"; then
        echo "clockify-addons: $fn is not services/musl-memcpy's leaf function:" >&2
        echo "$body" >&2
        exit 1
    fi
done
# They work, not only start: render an example, print the configuration reference.
"$dir/clockify-operator" render -f manifests/examples/api-studio-standard.yaml | grep -q "kind: Deployment"
"$dir/clockify-addons" config-table | grep -q DATABASE_URL
"$dir/kubectl-clockify" completion bash | grep -c "kubectl__clockify" > /dev/null
echo "static binaries: ok"
