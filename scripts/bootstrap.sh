#!/usr/bin/env bash
# Install everything `make test` needs on a fresh Debian 12 machine.
# Idempotent: when every package and tool is present it changes nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

packages=(
  linux-source-6.12 rustc-web rust-web-src
  clang lld llvm libclang-dev
  flex bison bc libelf-dev libssl-dev cpio kmod xz-utils
  qemu-system-x86 qemu-utils busybox-static
  fio dmsetup util-linux iproute2 drbd-utils bcache-tools
  python3 gcc make gnuplot-nox jq
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The kernel needs bindgen >= 0.65.1; Debian 12 ships 0.60, so build a pinned one.
if ! "$FVP_BINDGEN" --version 2>/dev/null | grep -qx "bindgen $BINDGEN_VERSION"; then
  echo "bootstrap: building bindgen-cli $BINDGEN_VERSION into $FVP_TOOLS"
  cargo install --locked --root "$FVP_TOOLS" --version "$BINDGEN_VERSION" bindgen-cli
fi
# make check's gates: rustfmt and clippy of the machine's (rustup) toolchain.
for c in rustfmt clippy; do
  if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "bootstrap: adding the $c component"
    rustup component add "$c"
  fi
done
echo "bootstrap: toolchain ready ($("$FVP_RUSTC" --version), $("$FVP_BINDGEN" --version))"
