#!/bin/sh
# Helpers for the multi-guest replication suites. Sourced after lib/ktap.sh and lib/fvp.sh.
# Guests are 10.77.0.N, N = FVP_NODE; each host is in its own fault domain dN unless
# CLUSTER_DOMAINS says otherwise ("d1 d1 d2": node 1 and 2 share domain d1).
OUT=/tmp/out
CLUSTER_TOML=/tmp/cluster.toml
CLUSTER_SECRET=${CLUSTER_SECRET:-fvp-selftest-secret-0123456789}
# The transport mode the suite switched to (cluster_form.sh switches to "encrypted" once
# it checked the default): kept in the run's output, so that later programs and a
# restarted guest apply the same.
CLUSTER_TRANSPORT=${CLUSTER_TRANSPORT:-$(cat "$OUT/cluster-transport" 2>/dev/null)}
# The shared device's configured identity (empty: none), which peers check before they
# hold a volume's replicas.
CLUSTER_DEVICE_UUID=${CLUSTER_DEVICE_UUID-0f8fad5b-d9cb-469f-a165-70867728950e}

# The disk all guests share (serial fvp-shared).
cluster_shared_disk() {
  for d in /sys/block/vd*; do
    [ "$(cat "$d/serial" 2>/dev/null)" = "fvp-shared" ] && { echo "/dev/${d##*/}"; return; }
  done
}

# cluster_write_toml SECRET: the description every guest applies (CLUSTER_DEVICE: the
# path of the device named shared0, the shared disk by default). Every guest writes the
# same key pairs: host N's private key in /tmp/fvp-keys/hostN.key (root's, mode 0600, as
# fvpctl wants), from a fixed test seed; the file names this host's and lists every
# host's public key. An fvpctl without keys (the benchmark's baseline: `fvpctl key` is a
# usage error) gets a description without them, and one without device uuids (no
# `device add --uuid`) a device without CLUSTER_DEVICE_UUID.
cluster_write_toml() {
  domains=${CLUSTER_DOMAINS:-$(seq -f 'd%g' 1 "$FVP_NODES")}
  mkdir -p /tmp/fvp-keys
  keys=yes
  n=1
  for dom in $domains; do
    (umask 077 && printf 'fvp-test-host-key-%s' "$n" | sha256sum | cut -c1-64 >"/tmp/fvp-keys/host$n.key")
    key=$(fvpctl key public "/tmp/fvp-keys/host$n.key" 2>/tmp/fvp-keys/error)
    case $? in
      0) eval "key_$n=\$key" ;;
      2) keys=; break ;;
      *) cat /tmp/fvp-keys/error >&2; return 1 ;;
    esac
    n=$((n + 1))
  done
  {
    echo "name = \"fvpsuite\""
    echo "secret = \"$1\""
    echo "heartbeat_ms = ${CLUSTER_HEARTBEAT_MS:-250}"
    echo "timeout_ms = ${CLUSTER_TIMEOUT_MS:-3000}"
    # Unset: the default (authenticated); the benchmark's baseline module knows no such key.
    [ -z "${CLUSTER_TRANSPORT:-}" ] || echo "transport = \"$CLUSTER_TRANSPORT\""
    [ -z "$keys" ] || echo "key_file = \"/tmp/fvp-keys/host$FVP_NODE.key\""
    n=1
    for dom in $domains; do
      printf '[[host]]\nid = %s\naddr = "10.77.0.%s:7790"\ndomain = "%s"\n' "$n" "$n" "$dom"
      [ -z "$keys" ] || { eval "key=\$key_$n"; echo "key = \"$key\""; }
      n=$((n + 1))
    done
    printf '[[device]]\nname = "shared0"\npath = "%s"\n' "${CLUSTER_DEVICE:-$(cluster_shared_disk)}"
    if [ -n "$CLUSTER_DEVICE_UUID" ] && fvpctl device add --help 2>/dev/null | grep -q -- --uuid; then
      echo "uuid = \"$CLUSTER_DEVICE_UUID\""
    fi
  } >"$CLUSTER_TOML"
}

# cluster_json FILTER: a jq filter over `fvpctl cluster show --json`
# (e.g. '.cluster.hosts_up'). jq, not Python: it starts fast in an emulated guest.
cluster_json() { fvpctl cluster show --json | jq -r "$1"; }

# host_field ID FIELD: one field of host ID in `cluster show --json`.
host_field() { cluster_json ".hosts[] | select(.id == $1) | .$2"; }

# cluster_wait_up N SECONDS: until N hosts (this one included) are up. On timeout,
# shows the cluster and fvp's kernel messages as KTAP comments.
cluster_wait_up() {
  t=0
  # One fvpctl and one jq per look: each program started costs a guest ~0.1 s of CPU.
  while [ "$(cluster_json '"\(.cluster.hosts_up) \([.hosts[] | select(.state == "up" or .state == "self")] | length)"' 2>/dev/null)" != "$1 $1" ]; do
    sleep 1; t=$((t + 1))
    if [ $t -ge "$2" ]; then cluster_debug; return 1; fi
  done
}

cluster_debug() {
  fvpctl cluster show 2>&1 | sed 's/^/# /'
  dmesg | grep fvp | tail -40 | sed 's/^/# /'
}

# publish NAME VALUE: every guest finds VALUE in $OUT/published-NAME once the next
# barrier is answered (host.sh copies the file; written whole, then renamed, so that
# it is never copied half-written).
publish() {
  echo "$2" >"$OUT/.publish-$1" && mv "$OUT/.publish-$1" "$OUT/publish-$1"
}

# barrier NAME [SECONDS]: waits until every running guest reached NAME. The suite's
# host.sh sees the marker files in each guest's results directory and answers. Fails at
# once if the suite was aborted (a program of some guest failed: tests/lib/barriers.sh).
# One process for the whole wait (fvp_wait_file), not one `sleep` a second: starting a
# program costs these guests ~0.3 s of CPU, which the other guests' replication needs.
barrier() {
  : >"$OUT/barrier-$1"
  fvp_wait_file "${2:-900}" "$OUT/go-$1" "$OUT/abort"
  case $? in
    0) return 0 ;;
    # Another guest's program failed (host.sh wrote abort): nobody else will come.
    2) echo "# barrier $1: the suite was aborted"; return 1 ;;
    *) return 1 ;;
  esac
}

# volume_state NAME: the replication state of a volume's status line.
volume_state() { dmsetup status "$1" | awk '{ print $17 }'; }

# wait_state NAME STATE SECONDS
wait_state() {
  t=0
  while [ "$(volume_state "$1")" != "$2" ]; do
    sleep 1; t=$((t + 1)); [ $t -lt "$3" ] || return 1
  done
}

# owner_round K: the owner's half of kill round K (node 1): a write-back volume with one
# peer on the shared disk, and the ack writer running until the host kills this guest
# (at a random moment after its 100th acknowledged write). Even rounds cache on a flash
# pool (16 MiB of a RAM disk, lost with the guest as a dead host's SSD is), odd ones on
# the RAM pool: the peer's replicas must hold every acknowledged write either way.
owner_round() {
  k=$1
  disk=$(cluster_shared_disk)
  pool=cp
  if [ $((k % 2)) = 0 ]; then
    pool=fp$k
    dmsetup create fvp_fp$k --table "0 32768 linear $(fvp_devno /dev/ram0) 0" || return 1
    fvpctl pool create "$pool" --flash /dev/mapper/fvp_fp$k --force >/dev/null || return 1
    echo "# round $k: flash pool $pool"
  fi
  fvp_dm_create "own$k" "0 $((16 * 2048)) fvp $(fvp_devno "$disk") $pool write-back peers=1" || return 1
  # For host.sh's report: the pool the round ran on, as the kernel has it.
  fvpctl pool list | grep -E "pool $pool[: ]" >"$OUT/pool-$k"
  wait_state "own$k" protected 120 || { cluster_debug; return 1; }
  barrier "round$k-ready"
  python3 "$FVP_REPO/tests/selftests/lib/ackwriter.py" "/dev/mapper/own$k" "$OUT/acks-$k.log" \
    "$OUT/writing-$k" 4096 300 $((k * 10000000)) 100 4
  # Not killed within 300 s: the host gave up on this round.
  return 1
}

# peer_round K: a surviving host's half: wait until node 1 is fenced and every replica
# of it was written to the shared disk.
peer_round() {
  k=$1
  barrier "round$k-ready" || return 1
  t=0
  # Every 2 s: each look starts fvpctl and jq (~0.3 s of CPU each in these guests), and
  # the owner's replication needs the CPU meanwhile.
  until [ "$(cluster_json '.hosts[] | select(.id == 1) | "\(.state) \(.replica_blocks)"')" = "fenced 0" ]; do
    sleep 2; t=$((t + 2))
    [ ! -e "$OUT/abort" ] || { cluster_debug; return 1; }
    if [ $t -ge 600 ]; then cluster_debug; return 1; fi
  done
  dmesg | grep "recovered volume" | tail -1 | sed 's/^/# /'
  barrier "round$k-recovered"
}
