#!/usr/bin/env bash
# `make test`: builds the test kernel (cached), fvp.ko, fvpctl and the test helpers,
# runs the host tests (cargo) and every guest suite under tests/selftests, checks every
# guest's kernel log for reports, and ends with one line "N passed, N failed, N skipped".
#
# SUITES=fvp,fvp-net limits the guest suites; KEEP_RUN=1 keeps build/run afterwards;
# HOST_TESTS=0 skips cargo test (for quick guest-only runs while developing).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/env.sh
. tests/lib/qemu.sh
export FVP_REPO=$repo
mkdir -p build

t0=$(date +%s)
passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
failures=()
fail() { failed=$((failed + 1)); failures+=("$*"); echo "FAIL: $*"; }
skip() { skipped=$((skipped + 1)); echo "SKIP: $*"; }
# Wall time per step: "name seconds" lines, printed as a table at the end and written to
# build/test-times.json (the budget in the README is checked against its total_s).
step_name= step_t0=
times=()
step_end() {
  [ -n "$step_name" ] && times+=("$step_name"$'\t'"$(( $(date +%s) - step_t0 ))")
  step_name=
}
summary() {
  step_end
  local total=$(( $(date +%s) - t0 ))
  echo
  printf '%-40s %8s\n' "step" "seconds"
  local line
  for line in "${times[@]}"; do printf '%-40s %8s\n' "${line%%$'\t'*}" "${line##*$'\t'}"; done
  printf '%-40s %8s\n' "total" "$total"
  python3 - "$total" "$passed" "$failed" "$skipped" "${times[@]}" >build/test-times.json <<'PY'
import json, sys
total, passed, failed, skipped = (int(x) for x in sys.argv[1:5])
steps = [{"name": n, "seconds": int(s)} for n, s in (a.split("\t") for a in sys.argv[5:])]
json.dump({"steps": steps, "total_s": total, "passed": passed, "failed": failed,
           "skipped": skipped}, sys.stdout, indent=1)
PY
  echo "make test took ${total}s (budget: 2400 s with the kernel cached; see README)"
  # Just before the last line, so that the tail of a CI log names what failed (first
  # failures first: a suite's later ones often only follow from its first).
  if [ "${#failures[@]}" -gt 0 ]; then
    echo "failed (${#failures[@]}, first 12):"
    printf '  %s\n' "${failures[@]:0:12}"
  fi
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
  exit
}
step() { step_end; step_name=$*; step_t0=$(date +%s); echo; echo "=== $* ($(( step_t0 - t0 ))s)"; }
# count_tap FILE [LABEL]: adds a KTAP file's results to the totals (its failed checks to
# the list printed last); sets tap_failed, tap_skipped.
count_tap() {
  local ok line
  ok=$(grep -cE '^ok [0-9]+' "$1"); tap_skipped=$(grep -cE '^ok [0-9]+ .*# SKIP' "$1")
  tap_failed=$(grep -cE '^not ok [0-9]+' "$1")
  while IFS= read -r line; do failures+=("${2:-$1}: $line"); done < <(grep -E '^not ok [0-9]+' "$1")
  passed=$((passed + ok - tap_skipped)); skipped=$((skipped + tap_skipped))
  failed=$((failed + tap_failed))
}

# progress RUN SUITE: while a suite runs, one line as each guest program starts and ends
# (host clock), so that a log cut short still says where the suite was.
progress() {
  local seen=" " f key node name
  while sleep 5; do
    # Oldest first: a program's end before the next one's start.
    for f in $(ls -1tr "$1"/node*/out/"$2"/*.start "$1"/node*/out/"$2"/*.rc 2>/dev/null); do
      key=${f#"$1"/}:$(stat -c %Y "$f")
      case $seen in *" $key "*) continue ;; esac
      seen="$seen$key "
      node=${f#"$1"/}; node=${node%%/*}; name=${f##*/}
      case $name in
        *.start) echo "  [$(( $(date +%s) - t0 ))s] $node: $2/${name%.start} started" ;;
        *.rc) echo "  [$(( $(date +%s) - t0 ))s] $node: $2/${name%.rc} ended, exit $(cat "$f")" ;;
      esac
    done
  done
}

step "host-side gates and tests (make check)"
# Formatting, no unsafe in driver modules, clippy -D warnings, cargo test: the gates run
# first, so that a formatting slip fails in minutes, not after the kernel build.
if [ "${HOST_TESTS:-1}" = 1 ]; then
scripts/check.sh 2>&1 | tee build/cargo-test.log
check_rc=${PIPESTATUS[0]}
while read -r p f i; do
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + i))
done < <(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' build/cargo-test.log)
if [ "$check_rc" -eq 0 ]; then pass "host-side gates (scripts/check.sh)"
else fail "host-side gates (scripts/check.sh): $(grep -m1 '^check.sh: FAILED' build/cargo-test.log)"; fi
# The index's RAM cost per cached block, all structures included (budget: 32 bytes).
cargo test --locked -q -p fvp-logic --lib metadata_budget -- --nocapture 2>/dev/null | grep 'bytes per slot'
cargo test --locked -q -p fvp-logic --lib scan_resistance -- --nocapture 2>/dev/null | grep -iv '^running\|^test \|^$' | head -6
# The flash pool crash model: seeds, power cuts, flushes (docs/flash.md).
cargo test --locked -q -p fvp-logic --lib crash_at_any_step -- --nocapture 2>/dev/null | grep 'flash crash model'
# The replication simulator's bounded run: seeds and simulated events per minute.
cargo test --locked -q -p fvp-sim --test seeds -- --nocapture --test-threads 1 2>/dev/null | grep -o 'peers=.*'
fi

step "test kernel"
if kdir=$(scripts/kernel/build.sh); then pass "test kernel available at $kdir"
else fail "test kernel build"; summary; fi
export FVP_KERNEL_IMAGE=$kdir/arch/x86/boot/bzImage

step "fvp.ko"
if make -s module KDIR="$kdir"; then pass "fvp.ko builds"; else fail "fvp.ko build"; summary; fi

step "fvpctl"
if cargo build --release --locked -p fvpctl; then pass "fvpctl builds"; else fail "fvpctl build"; summary; fi

step "guest helpers and initramfs"
if guest_helpers; then pass "test helpers build"; else fail "test helpers build"; fi
scripts/build-initramfs.sh build/initramfs.cpio.gz
export FVP_INITRAMFS=$repo/build/initramfs.cpio.gz

# Every suite directory with a Makefile is a guest suite; settings may say guests=N.
suites=${SUITES:-$(for d in tests/selftests/*/Makefile; do basename "$(dirname "$d")"; done | paste -sd,)}
export FVP_NET_PORT=$(( 20000 + RANDOM % 20000 ))
rm -rf build/run

for suite in ${suites//,/ }; do
  step "guest suite $suite"
  guests=$(sed -n 's/^guests=//p' "tests/selftests/$suite/settings" 2>/dev/null)
  guests=${guests:-1}
  limit=$(sed -n 's/^timeout=//p' "tests/selftests/$suite/settings" 2>/dev/null)
  nprogs=$(sed -n 's/^TEST_PROGS *[:+]\?= *//p' "tests/selftests/$suite/Makefile" | wc -w)
  limit=$(( ${limit:-300} * nprogs + 120 ))
  # settings: budget=<s> the whole suite's wall time; past it the guests are killed and
  # the suite fails (a hung suite must not eat CI's 90 minutes).
  budget=$(sed -n 's/^budget=//p' "tests/selftests/$suite/settings" 2>/dev/null)
  budget=${budget:-$limit}
  deadline=$(( $(date +%s) + budget ))
  failed_before=$failed
  run=$repo/build/run/$suite
  mkdir -p "$run"
  # settings: shared=<MiB> gives every guest of the suite one more disk, the same one.
  shared_mb=$(sed -n 's/^shared=//p' "tests/selftests/$suite/settings" 2>/dev/null)
  shared_img=
  if [ -n "$shared_mb" ]; then
    shared_img=$run/shared.img
    rm -f "$shared_img"; truncate -s "${shared_mb}M" "$shared_img"
  fi
  # settings: smp=N vCPUs per guest (several TCG guests share the host's cores).
  GUEST_SMP=$(sed -n 's/^smp=//p' "tests/selftests/$suite/settings" 2>/dev/null)
  # settings: cmdline=... more kernel parameters for the suite's guests.
  # tsc=unstable: the guests' clock is jiffies, which slows down with a starved guest.
  # Without it a guest usually fails to calibrate its TSC (no HPET or PM timer) and uses
  # jiffies anyway, but one that calibrates against the PIT while starved gets a rate
  # several times too low: a peer_kill restart's clock then ran about 5x fast, and its
  # `timeout 1200` killed link_cut after 227 s.
  GUEST_CMDLINE_EXTRA="printk.time=1 tsc=unstable $(sed -n 's/^cmdline=//p' "tests/selftests/$suite/settings" 2>/dev/null)"
  export GUEST_SMP GUEST_CMDLINE_EXTRA
  for n in $(seq 1 "$guests"); do guest_start "$run" "$n" "$guests" "$suite" "$shared_img"; done
  # A suite's host.sh, if any, runs beside its guests (fault injection through QMP).
  progress "$run" "$suite" &
  progress_pid=$!
  host_pid=
  if [ -x "tests/selftests/$suite/host.sh" ]; then
    timeout "$budget" "tests/selftests/$suite/host.sh" "$run" >"$run/host.tap" 2>&1 &
    host_pid=$!
  fi
  # host.sh first: it may kill and restart guests, and ends when all are gone.
  if [ -n "$host_pid" ]; then
    wait "$host_pid"; rc=$?
    sed "s/^/[host] /" "$run/host.tap"
    count_tap "$run/host.tap" "$suite/host.sh"
    [ "$rc" -eq 0 ] || [ "$tap_failed" -gt 0 ] || fail "$suite/host.sh exited $rc"
  fi
  sub=()
  for n in $(seq 1 "$guests"); do
    dir=$run/node$n
    left=$(( deadline - $(date +%s) )); [ "$left" -gt 10 ] || left=10
    guest_wait "$run" "$n" "$left" || fail "$suite: guest $n did not finish within the suite's budget of ${budget}s"
    sed "s/^/[node$n] /" "$dir/tests.log" 2>/dev/null
    for prog in $(sed -n 's/^TEST_PROGS *[:+]\?= *//p' "tests/selftests/$suite/Makefile"); do
      name=${prog%.sh}
      tap=$dir/out/$suite/$name.tap
      rc=$(cat "$dir/out/$suite/$name.rc" 2>/dev/null || echo missing)
      label="$suite/$name (node $n)"
      if [ ! -f "$tap" ]; then fail "$label did not run"; continue; fi
      count_tap "$tap" "$label"; f=$tap_failed; s=$tap_skipped
      if [ "$rc" = missing ] && [ -e "$dir/expect-killed" ]; then
        echo "INFO: $label: the guest was killed on purpose while it ran (see host.sh)"; continue
      fi
      case $rc in
        0) [ "$f" -eq 0 ] || fail "$label exited 0 despite failures" ;;
        4) [ "$s" -gt 0 ] || skip "$label: $(grep -m1 -i 'skip' "$tap" || echo 'skipped without a reason')" ;;
        *) [ "$f" -gt 0 ] || fail "$label exited $rc" ;;
      esac
    done
    # Per program, host clock: from its .start file to its .rc file, on the first node
    # that ran it to its end (node 1 unless a test killed it there).
    for prog in $(sed -n 's/^TEST_PROGS *[:+]\?= *//p' "tests/selftests/$suite/Makefile"); do
      name=${prog%.sh}
      case " ${sub[*]} " in *" $suite/$name "*) continue ;; esac
      [ -f "$dir/out/$suite/$name.start" ] && [ -f "$dir/out/$suite/$name.rc" ] || continue
      sub+=("  $suite/$name (node $n)"$'\t'"$(( $(stat -c %Y "$dir/out/$suite/$name.rc") - $(stat -c %Y "$dir/out/$suite/$name.start") ))")
    done
    reports=$(guest_reports "$dir")
    if [ -n "$reports" ]; then
      fail "$suite: kernel reports in node $n's log ($dir/console.log):"
      echo "$reports"
    else
      pass "$suite: no kernel reports in node $n's log"
    fi
  done
  kill "$progress_pid" 2>/dev/null; wait "$progress_pid" 2>/dev/null
  if [ "$failed" -gt "$failed_before" ]; then
    for dir in "$run"/node*; do
      echo "--- ${dir##*/}: fvp's last kernel messages ($dir/console.log)"
      grep -a 'fvp' "$dir/console.log" 2>/dev/null | tail -25
    done
  fi
  step_end
  times+=("${sub[@]}")
done

[ -n "${KEEP_RUN:-}" ] || find build/run -name '*.img' -delete
summary
