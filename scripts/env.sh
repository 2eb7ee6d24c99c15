# Shared settings for the scripts; sourced, not run.
# The cache lives outside the repository so clean clones reuse the kernel build.
FVP_CACHE=${FVP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fvp}
FVP_TOOLS=$FVP_CACHE/tools
BINDGEN_VERSION=0.72.1
FVP_BINDGEN=$FVP_TOOLS/bin/bindgen
# The kernel and the module must use the very same rustc, one with rust-src: Debian's rustc-web.
FVP_RUSTC=${FVP_RUSTC:-/usr/bin/rustc}
FVP_KSRC_TARBALL=${FVP_KSRC_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
export FVP_CACHE FVP_TOOLS BINDGEN_VERSION FVP_BINDGEN FVP_RUSTC FVP_KSRC_TARBALL
