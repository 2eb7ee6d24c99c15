#!/bin/sh
# Every guest reaches every other guest over the test network (10.77.0.N/24).
. ../lib/ktap.sh
ktap_plan $((FVP_NODES - 1))
n=1
while [ $n -le "$FVP_NODES" ]; do
  if [ $n -ne "$FVP_NODE" ]; then
    # Peers boot at slightly different times: retry for up to a minute.
    ok=0
    for try in $(seq 1 60); do
      if busybox ping -c 1 -W 1 10.77.0.$n >/dev/null 2>&1; then ok=1; break; fi
    done
    rtt=$(busybox ping -c 3 -W 1 10.77.0.$n 2>/dev/null | sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1/p')
    [ $ok = 1 ] && ktap_pass "node $FVP_NODE reaches node $n (avg rtt ${rtt:-?} ms)" \
      || ktap_fail "node $FVP_NODE reaches node $n"
  fi
  n=$((n + 1))
done
ktap_finish
