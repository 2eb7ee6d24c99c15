#!/bin/sh
# Runs inside a guest (chrooted into the host root): every test program of the given
# kselftest suites, in order, each under a timeout. Each program's KTAP output goes to
# /tmp/out/<suite>/<program>.tap and its exit code to <program>.rc. "suite@prog" starts
# the suite at that program (a guest a suite's host.sh restarted after killing it).
repo=$1 node=$2 nodes=$3 suites=$4
# No udev in the guests: libdevmapper must create /dev/mapper nodes itself.
export DM_DISABLE_UDEV=1
export FVP_REPO="$repo" FVP_NODE="$node" FVP_NODES="$nodes"
export PATH="$repo/build/bin:$repo/target/release:/usr/sbin:/usr/bin:/sbin:/bin"
for entry in $(echo "$suites" | tr ',' ' '); do
  suite=${entry%@*} from=
  [ "$suite" = "$entry" ] || from=${entry#*@}
  dir="$repo/tests/selftests/$suite"
  [ -d "$dir" ] || dir="$repo/tests/$suite"
  out="/tmp/out/$suite"
  mkdir -p "$out"
  timeout_s=$(sed -n 's/^timeout=//p' "$dir/settings" 2>/dev/null)
  for prog in $(sed -n 's/^TEST_PROGS *[:+]\?= *//p' "$dir/Makefile"); do
    name=${prog%.sh}
    [ -z "$from" ] || [ "$name" = "$from" ] || continue
    from=
    echo "# running $suite/$prog on node $node"
    # Created now and at the end (.rc): the host reads both files' times off its own
    # clock (the guest's slows down when it is starved).
    rm -f "$out/$name.start"; : >"$out/$name.start"
    if [ -e /tmp/out/abort ]; then
      # A program of another guest failed and the suite's host.sh aborted it: the
      # rest would only wait for guests that gave up.
      printf 'TAP version 13\n1..1\nnot ok 1 not run: the suite was aborted (an earlier program failed)\n' \
        >"$out/$name.tap"
      echo 1 >"$out/$name.rc"
      cat "$out/$name.tap"
      continue
    fi
    (cd "$dir" && timeout "${timeout_s:-300}" ./"$prog") >"$out/$name.tap" 2>&1 &
    pid=$!
    # An abort also ends the program running now (`timeout` passes the signal on). One
    # watcher process, not a `sleep` a second: each program started costs an emulated
    # guest ~0.3 s of CPU.
    (fvp_wait_file --while-pid $pid 86400 /tmp/out/abort && { echo "# the suite was aborted" >>"$out/$name.tap"; kill $pid; }) &
    wait $pid
    echo $? >"$out/$name.rc"
    cat "$out/$name.tap"
    sync
  done
done
