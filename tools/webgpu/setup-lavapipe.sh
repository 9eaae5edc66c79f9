#!/usr/bin/env bash
# A WebGPU adapter without a GPU: Mesa's lavapipe, a Vulkan driver that runs on the CPU, so
# that the tests and `npm run bench:gpu` run onnxruntime's WebGPU provider for real on any
# Debian 12 (amd64) machine. Debian 12's own Mesa (22.3) lacks Vulkan features that the
# provider requires, so the driver comes from bookworm-backports (Mesa 25). It is unpacked
# into `.lavapipe/` beside the repository with an apt configuration of its own: the system's
# packages and package sources are left as they are. Point the Vulkan loader at it with
#   VK_ICD_FILENAMES=$PWD/.lavapipe/lvp_icd.json
# (the tests do this themselves). Needs the system's libvulkan1 and libllvm15, and Debian's
# package mirror. Idempotent; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST="$PWD/.lavapipe"
LIB="$DEST/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

fail() { echo "setup-lavapipe: $*" >&2; exit 1; }

if ! [ -f "$DEST/lvp_icd.json" ] || ! [ -f "$LIB" ]; then
  [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] || fail "needs Debian on amd64 (dpkg --print-architecture: $(dpkg --print-architecture 2>/dev/null || echo none))"
  grep -q '^VERSION_CODENAME=bookworm$' /etc/os-release || fail "needs Debian 12 (bookworm); this is $(. /etc/os-release && echo "$PRETTY_NAME")"
  installed() { dpkg-query -W -f '${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'; }
  if ! installed libvulkan1 || ! installed libllvm15; then
    [ "$(id -u)" = 0 ] || fail "install libvulkan1 and libllvm15 first (apt-get install libvulkan1 libllvm15)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq libvulkan1 libllvm15 >/dev/null
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts" "$work/debs"
  echo "deb $MIRROR bookworm-backports main" > "$work/sources.list"
  apt=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts"
       -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "Debug::NoLocking=1"
       -o "APT::Sandbox::User=root")
  apt-get "${apt[@]}" update -qq >/dev/null || fail "could not read bookworm-backports from $MIRROR"
  (cd "$work/debs" && apt-get "${apt[@]}" download -qq mesa-vulkan-drivers/bookworm-backports >/dev/null) || fail "could not download mesa-vulkan-drivers from bookworm-backports"
  rm -rf "$DEST.new"
  mkdir -p "$DEST.new"
  dpkg-deb -x "$work"/debs/mesa-vulkan-drivers_*.deb "$DEST.new/root"
  [ -f "$DEST.new/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" ] || fail "the package has no libvulkan_lvp.so"
  version=$(dpkg-deb -f "$work"/debs/mesa-vulkan-drivers_*.deb Version)
  api=$(sed -n 's/.*"api_version": *"\([^"]*\)".*/\1/p' "$DEST.new/root/usr/share/vulkan/icd.d/lvp_icd.json")
  cat > "$DEST.new/lvp_icd.json" <<EOF
{
    "file_format_version": "1.0.0",
    "ICD": { "library_path": "$LIB", "api_version": "$api" }
}
EOF
  echo "$version" > "$DEST.new/VERSION"
  rm -rf "$DEST"
  mv "$DEST.new" "$DEST"
fi
if ldd "$LIB" | grep -q 'not found'; then
  fail "lavapipe's libraries are not all on this machine: $(ldd "$LIB" | grep 'not found' | tr -s ' \t\n' ' ')"
fi
echo "lavapipe (Mesa $(cat "$DEST/VERSION")): VK_ICD_FILENAMES=$DEST/lvp_icd.json"
