#!/usr/bin/env bash
# Build (or find in the cache) the Rust-enabled test kernel.
# Prints the build directory (a kernel tree usable as KDIR) on stdout; logs go to stderr.
# The cache key covers everything the build depends on, so a second run is a no-op.
#
# Usage: build.sh [test|bench]. "test" (the default) has lockdep, KASAN, kmemleak and
# the other checks on; "bench" is the same kernel without them (fvp-bench.config).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../env.sh"
log() { echo "kernel: $*" >&2; }

flavor=${1:-test}
fragment=$here/fvp-test.config
overlay=
case $flavor in
  test) ;;
  bench) overlay=$here/fvp-bench.config ;;
  *) log "unknown flavor $flavor"; exit 2 ;;
esac
src_version=$(dpkg-query -W -f='${Version}' linux-source-6.12)
key=$( {
  echo "src=$src_version flavor=$flavor"
  cat "$fragment" ${overlay:+"$overlay"} "$0"
  "$FVP_RUSTC" --version
  clang --version | head -1
  "$FVP_BINDGEN" --version
} | sha256sum | cut -c1-16)

dir=$FVP_CACHE/kernel/$key
if [ -f "$dir/.complete" ]; then
  log "cached build $dir"
  echo "$dir/build"
  exit 0
fi

src=$FVP_CACHE/src/linux-source-$src_version
if [ ! -f "$src/.complete" ]; then
  log "extracting $FVP_KSRC_TARBALL"
  rm -rf "$src"; mkdir -p "$src"
  tar -xJf "$FVP_KSRC_TARBALL" -C "$src" --strip-components=1
  touch "$src/.complete"
fi

rm -rf "$dir"; mkdir -p "$dir/build"
kmake=(make -C "$src" O="$dir/build" LLVM=1 RUSTC="$FVP_RUSTC" BINDGEN="$FVP_BINDGEN" -s)
log "configuring in $dir/build"
"${kmake[@]}" tinyconfig >&2
(cd "$dir/build" && "$src/scripts/kconfig/merge_config.sh" -m -O . .config "$fragment" ${overlay:+"$overlay"} >/dev/null)
"${kmake[@]}" olddefconfig >&2

# Options the tests depend on must have survived olddefconfig; fail loudly if not.
bad=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=y|CONFIG_*=m) ;; *) continue ;; esac
  grep -qx "$line" "$dir/build/.config" || { log "option not applied: $line"; bad=1; }
done < <(if [ -n "$overlay" ]; then grep -v -F -f <(sed -n 's/^# \(CONFIG_[A-Z0-9_]*\) is not set/\1=/p' "$overlay") "$fragment"; cat "$overlay"; else cat "$fragment"; fi)
[ "$bad" -eq 0 ] || { log "config fragment not satisfied"; exit 1; }

log "building (this takes several minutes on 2 cores)"
jobs=$(( $(nproc) + 1 ))
"${kmake[@]}" -j"$jobs" bzImage modules >&2
"${kmake[@]}" INSTALL_MOD_PATH="$dir/modroot" modules_install >&2
touch "$dir/.complete"
log "built $dir"
echo "$dir/build"
