#!/bin/sh
# Runs in each of three guests (`make bench-replication`). Node 1 measures 4 KiB random
# writes at QD1 and QD16 on, one after the other in this run: brd itself, fvp write-through,
# fvp write-back with peers=0, 1 and 2 (transport "authenticated"), peers=1 and 2 again
# with transport "encrypted", peers=1 with the baseline module of protocol version 5
# (messages carried only a CRC; built by scripts/bench-replication.sh, when present),
# and DRBD protocol C to node 2; and the TCP round trip to node 2. Every fvp volume and DRBD sit on brd (each host its own /dev/ram*), so
# the differences are the caching and replication paths, not a disk. Nodes 2 and 3 are
# the peers (node 2 is also DRBD's secondary and runs the TCP echo).
# Results: /tmp/out/bench/<config>-qd<N>.json, rtt.json.
. ../selftests/lib/ktap.sh
. ../selftests/lib/fvp.sh
. ../selftests/lib/cluster.sh
set -u
BENCH=$OUT/bench
mkdir -p "$BENCH"
RUNTIME=${BENCH_RUNTIME:-15}
WS=64M
DRBD=/usr/lib/drbd/drbdsetup-84
ktap_plan 1

# The device peers would recover to; brd here (the benchmark never recovers).
export CLUSTER_DEVICE=/dev/ram0
form() { # form: pool and cluster on this host, then wait for all three
  fvp_load && fvp_pool_create bp 256M && cluster_write_toml "$CLUSTER_SECRET" &&
    fvpctl cluster apply "$CLUSTER_TOML" --local-id "$FVP_NODE" >/dev/null &&
    cluster_wait_up 3 300
}
run() { # run CONFIG DEV QD
  fio --name="$1-qd$3" --filename="$2" --thread --direct=1 --ioengine=libaio --rw=randwrite \
    --bs=4k --iodepth="$3" --size=$WS --time_based --runtime="$RUNTIME" --ramp_time=2 \
    --randseed=42 --norandommap --group_reporting --lat_percentiles=1 --output-format=json \
    >"$BENCH/$1-qd$3.json" 2>/tmp/fio.err || sed 's/^/# /' /tmp/fio.err
  echo "# $1 qd$3 done"
}
both() { run "$1" "$2" 1; run "$1" "$2" 16; }
measure() { # measure NAME MODE PEERS: a volume over ram0, QD1 and QD16, removed after
  size=$(fvp_sectors /dev/ram0)
  fvp_dm_create "$1" "0 $size fvp $(fvp_devno /dev/ram0) bp $2 $3 sequential_cutoff=0"
  case $3 in peers=0) ;; *) wait_state "$1" protected 120 || cluster_debug ;; esac
  both "$1" "/dev/mapper/$1"
  dmsetup status "$1" | sed 's/^/# /'
  dmsetup remove "$1"
}

# The baseline (protocol version 5) first, on all three hosts, then unloaded.
BASE=$FVP_REPO/build/baseline/out
if [ -f "$BASE/fvp.ko" ]; then
  fvpctl() { "$BASE/fvpctl" "$@"; }
  FVP_KO=$BASE/fvp.ko
  if form; then
    barrier base-ready 600
    [ "$FVP_NODE" != 1 ] || measure v5-peers1 write-back peers=1
  else
    ktap_info "the baseline module did not form a cluster"
    barrier base-ready 600
  fi
  barrier base-done 1200
  fvp_pool_destroy bp; fvp_unload || ktap_info "cannot unload the baseline module"
  unset -f fvpctl
  FVP_KO=$FVP_REPO/fvp.ko
  barrier base-unloaded 600
fi

form || { ktap_fail "bench: the three hosts form a cluster"; ktap_finish; }

# DRBD 8.4 (the kernel's) between node 1 (primary) and node 2, on /dev/ram1. The
# modules are copied to build/modules by scripts/bench-replication.sh.
drbd_up() {
  { lsmod | grep -q '^drbd ' || { insmod "$FVP_REPO/build/modules/lru_cache.ko" && insmod "$FVP_REPO/build/modules/drbd.ko"; }; } &&
  yes | drbdmeta --force 0 v08 /dev/ram1 internal create-md >/tmp/drbd.log 2>&1 &&
  $DRBD new-resource r0 && $DRBD new-minor r0 0 0 &&
  $DRBD attach 0 /dev/ram1 /dev/ram1 internal &&
  $DRBD connect r0 "ipv4:10.77.0.$FVP_NODE:7789" "ipv4:10.77.0.$1:7789" --protocol=C
}
drbd_connected() { t=0; until grep -q "cs:Connected" /proc/drbd; do sleep 1; t=$((t + 1)); [ $t -lt 120 ] || return 1; done; }

if [ "$FVP_NODE" != 1 ]; then
  if [ "$FVP_NODE" = 2 ]; then
    drbd_up 1 || sed 's/^/# /' /tmp/drbd.log
    # For node 1's round-trip measurements: reads messages of the size the client
    # announces first (1 byte, then 4 KiB + 32 like a REPLICATE), answers each with 1 byte.
    python3 -c 'import socket, struct
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.2", 7799)); s.listen(2)
while True:
    c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    size = struct.unpack("<I", c.recv(4, socket.MSG_WAITALL))[0]
    while True:
        b = c.recv(size, socket.MSG_WAITALL)
        if len(b) < size: break
        c.sendall(b"k")' &
  fi
  barrier bench-ready 600
  barrier auth-done 3000
  CLUSTER_TRANSPORT=encrypted cluster_write_toml "$CLUSTER_SECRET"
  fvpctl cluster apply "$CLUSTER_TOML" --local-id "$FVP_NODE" >/dev/null
  barrier enc-ready 600
  barrier bench-done 3000
  ktap_pass "bench: node $FVP_NODE served as a peer"
  ktap_finish
fi

drbd_up 2 || sed 's/^/# /' /tmp/drbd.log
barrier bench-ready 600

# The TCP round trip to node 2 over the same link, now: 500 one-byte exchanges, and
# 500 of 4 KiB + 32 bytes answered by one byte (a REPLICATE and its ACK, without fvp).
python3 -c 'import json, socket, struct, sys, time
def rtt(size):
    s = socket.create_connection(("10.77.0.2", 7799)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(struct.pack("<I", size))
    msg, rtts = b"x" * size, []
    for i in range(500):
        t = time.perf_counter_ns(); s.sendall(msg); s.recv(1); rtts.append(time.perf_counter_ns() - t)
    s.close()
    rtts.sort()
    return {"p50": rtts[len(rtts) // 2], "p99": rtts[len(rtts) * 99 // 100], "n": len(rtts)}
json.dump({"tcp_rtt_ns": rtt(1), "tcp_4k_rtt_ns": rtt(4096 + 32)}, sys.stdout)' \
  >"$BENCH/rtt.json"
fvpctl cluster show --json >"$BENCH/cluster.json"

both brd /dev/ram2
measure write-through write-through peers=0
measure wb-peers0 write-back peers=0
measure wb-peers1 write-back peers=1
measure wb-peers2 write-back peers=2
barrier auth-done 600
# Transport "encrypted": every host applies it (connections restart with it).
CLUSTER_TRANSPORT=encrypted cluster_write_toml "$CLUSTER_SECRET"
fvpctl cluster apply "$CLUSTER_TOML" --local-id "$FVP_NODE" >/dev/null
barrier enc-ready 600
if cluster_wait_up 3 120; then
  fvpctl cluster show | sed 's/^/# /' | head -3
  measure wb-peers1-enc write-back peers=1
  measure wb-peers2-enc write-back peers=2
else
  ktap_info "the hosts did not reconnect with transport encrypted"
fi

if drbd_connected; then
  $DRBD new-current-uuid 0 --clear-bitmap=yes && $DRBD primary 0 &&
    sleep 2 && sed 's/^/# /' /proc/drbd && both drbd-c /dev/drbd0
else
  sed 's/^/# /' /proc/drbd /tmp/drbd.log
fi
ok=1
configs="brd write-through wb-peers0 wb-peers1 wb-peers2 wb-peers1-enc wb-peers2-enc drbd-c"
[ ! -f "$BASE/fvp.ko" ] || configs="$configs v5-peers1"
for f in $configs; do
  for q in 1 16; do [ -s "$BENCH/$f-qd$q.json" ] || { ktap_info "missing $f-qd$q"; ok=0; }; done
done
barrier bench-done 600
if [ $ok = 1 ]; then ktap_pass "bench: every configuration measured"; else ktap_fail "bench: every configuration measured"; fi
ktap_finish
