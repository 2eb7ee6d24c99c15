#!/usr/bin/env bash
# `make check`: the host-side gates and tests for the inner loop (no kernel build, no
# guest; under 5 minutes from a warm cargo cache). Steps, in order; the first failure
# stops the run:
#   fmt     cargo fmt --all --check                 (the user-space workspace)
#   kfmt    rustfmt --check on the kernel crate's own files, which cargo does not see:
#           drivers/block/fvp/**/*.rs but logic/, and rust/**/*.rs (same rustfmt.toml)
#   unsafe  each driver module (drivers/block/fvp/*.rs but fvp_main.rs) starts with
#           #![forbid(unsafe_code)] after its SPDX line and doc comments, and no file
#           of the logic (drivers/block/fvp/logic/) says `unsafe` outside comments
#   clippy  cargo clippy --locked --workspace --all-targets -- -D warnings
#   test    cargo test --locked --workspace         (the host tests, model checks included)
# Then prints each step's wall time and writes them to build/check-times.json.
#
# Options:
#   --fix          format (cargo fmt --all, rustfmt on the kernel files) instead of
#                  checking the format, then run the other steps
#   --only a,b     run only these steps (e.g. --fix --only fmt,kfmt just formats)
# CARGO_BUILD_JOBS=N limits cargo's parallelism, as for any cargo command.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

all_steps=(fmt kfmt unsafe clippy test)
fix=0
only=""
while [ $# -gt 0 ]; do
  case $1 in
    --fix) fix=1 ;;
    --only) only=${2:?--only needs a list of steps}; shift ;;
    --only=*) only=${1#--only=} ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
steps=("${all_steps[@]}")
if [ -n "$only" ]; then
  steps=()
  IFS=, read -ra wanted <<<"$only"
  for s in "${all_steps[@]}"; do
    for w in "${wanted[@]}"; do [ "$s" = "$w" ] && steps+=("$s"); done
  done
  for w in "${wanted[@]}"; do
    [[ " ${all_steps[*]} " == *" $w "* ]] || { echo "check.sh: unknown step '$w' (steps: ${all_steps[*]})" >&2; exit 2; }
  done
fi

# The kernel crate's files that cargo does not format: the driver modules and the
# kernel bindings, not the logic (a workspace member) nor generated files.
kernel_rs_files() {
  find drivers/block/fvp rust -name '*.rs' -not -path 'drivers/block/fvp/logic/*' \
    -not -name '*_generated.rs' | LC_ALL=C sort
}

# kernel_fmt check|fix. One file at a time through stdin, so that rustfmt does not
# follow `mod` declarations out of the list (fvp_main.rs reaches the logic and rust/).
kernel_fmt() {
  local mode=$1 f tmp bad=0
  tmp=$(mktemp)
  while IFS= read -r f; do
    if ! rustfmt --edition 2021 --config-path "$repo/rustfmt.toml" --emit stdout <"$f" >"$tmp"; then
      echo "rustfmt cannot parse $f"
      bad=1
      continue
    fi
    cmp -s "$f" "$tmp" && continue
    if [ "$mode" = fix ]; then
      cat "$tmp" >"$f"
      echo "formatted $f"
    else
      diff -u --label "a/$f" --label "b/$f" "$f" "$tmp" || true
      bad=1
    fi
  done < <(kernel_rs_files)
  rm -f "$tmp"
  return $bad
}

check_unsafe() {
  local f bad=0 first hits h
  for f in drivers/block/fvp/*.rs; do
    [ "$(basename "$f")" = fvp_main.rs ] && continue
    # The first line that is not the SPDX line, a comment or blank.
    first=$(awk '/^\/\/ SPDX-License-Identifier:/ || /^[[:space:]]*\/\// || /^[[:space:]]*$/ { next }
                 { print; exit }' "$f")
    if [ "$first" != '#![forbid(unsafe_code)]' ]; then
      echo "$f: must start with #![forbid(unsafe_code)] after its SPDX line and doc comments"
      echo "  (driver modules use only safe APIs: the FFI lives in rust/fvp_kernel)"
      bad=1
    fi
  done
  while IFS= read -r f; do
    # Comments may talk about unsafe; code may not.
    if hits=$(sed -E 's://.*$::' "$f" | grep -nw unsafe); then
      echo "$f: the logic must not use unsafe (it is plain core code, compiled on the host too):"
      while IFS= read -r h; do echo "  line $h"; done <<<"$hits"
      bad=1
    fi
  done < <(find drivers/block/fvp/logic -name '*.rs' | LC_ALL=C sort)
  return $bad
}

describe() {
  case $1 in
    fmt) [ $fix = 1 ] && echo "cargo fmt --all" || echo "cargo fmt --all --check" ;;
    kfmt) [ $fix = 1 ] && echo "rustfmt the kernel crate's files" || echo "rustfmt --check on the kernel crate's files" ;;
    unsafe) echo "driver modules forbid unsafe code; the logic has none" ;;
    clippy) echo "cargo clippy --locked --workspace --all-targets -- -D warnings" ;;
    test) echo "cargo test --locked --workspace" ;;
  esac
}

run_step() {
  case $1 in
    fmt) if [ $fix = 1 ]; then cargo fmt --all; else cargo fmt --all --check; fi ;;
    kfmt) if [ $fix = 1 ]; then kernel_fmt fix; else kernel_fmt check; fi ;;
    unsafe) check_unsafe ;;
    clippy) cargo clippy --locked --workspace --all-targets -- -D warnings ;;
    test) cargo test --locked --workspace ;;
  esac
}

hint() {
  case $1 in
    fmt | kfmt) echo "scripts/check.sh --fix formats the code (then review and commit the changes)" ;;
    unsafe) echo "add #![forbid(unsafe_code)] after the doc comments; unsafe code goes in rust/fvp_kernel" ;;
    clippy) echo "fix the code; allow a lint only where it is wrong for the code, with a reason" ;;
    test) echo "see the failing tests above" ;;
  esac
}

now() { date +%s.%N; }
names=() secs=()
t_all=$(now)
failed=""

report() {
  local total i json
  total=$(awk -v a="$t_all" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  echo
  printf '%-8s %9s\n' step seconds
  for i in "${!names[@]}"; do printf '%-8s %9s\n' "${names[$i]}" "${secs[$i]}"; done
  printf '%-8s %9s\n' total "$total"
  json='{"steps": ['
  for i in "${!names[@]}"; do
    [ "$i" -gt 0 ] && json+=', '
    json+="{\"name\": \"${names[$i]}\", \"seconds\": ${secs[$i]}}"
  done
  json+="], \"total_s\": $total"
  [ -n "$failed" ] && json+=", \"failed\": \"$failed\""
  json+='}'
  mkdir -p build
  echo "$json" >build/check-times.json
}

n=${#steps[@]}
i=0
for s in "${steps[@]}"; do
  i=$((i + 1))
  echo
  echo "=== check [$i/$n] $s: $(describe "$s")"
  t0=$(now)
  rc=0
  run_step "$s" || rc=$?
  names+=("$s")
  secs+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')")
  if [ $rc -ne 0 ]; then
    failed=$s
    report
    echo
    echo "check.sh: FAILED at step '$s' ($(describe "$s")): $(hint "$s")" >&2
    exit 1
  fi
done
report
echo
echo "check.sh: all ${n} steps passed"
