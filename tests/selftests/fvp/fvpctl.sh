#!/bin/sh
# fvpctl version/status against the loaded module, JSON output, and its errors when the
# module is missing or the caller lacks CAP_SYS_ADMIN.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 7

fvp_unload
out=$(fvpctl version 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "not loaded"; then
  ktap_pass "version without the module fails and says so"
else ktap_fail "version without the module fails and says so (rc=$rc: $out)"; fi

fvp_load
out=$(fvpctl version); rc=$?
ktap_info "$out"
if [ $rc -eq 0 ] && echo "$out" | grep -q "fvp module 0.4.0 (abi 9)"; then
  ktap_pass "version prints module and ABI version"
else ktap_fail "version prints module and ABI version"; fi

out=$(fvpctl version --json)
if echo "$out" | python3 -c '
import json, sys
v = json.load(sys.stdin)
m = v["module"]
assert m["abi_version"] == 9 and m["version"] == "0.4.0", v
assert "passthrough" in m["features"] and "ram-pool" in m["features"], v
assert "replication" in m["features"], v
'; then ktap_pass "version --json is valid and complete"; else ktap_fail "version --json is valid and complete ($out)"; fi

out=$(fvpctl status --json)
if echo "$out" | python3 -c 'import json, sys; v = json.load(sys.stdin); assert v["status"]["volumes"] == 0, v'; then
  ktap_pass "status --json reports no volumes"; else ktap_fail "status --json reports no volumes ($out)"; fi

dev=$(fvp_private_disk)
fvp_pool_create st 1M
dmsetup create fvp_st --table "0 8 fvp $(fvp_devno "$dev") st write-through"
dd if=/dev/mapper/fvp_st of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null
out=$(fvpctl status)
if echo "$out" | grep -q "volumes: 1"; then ktap_pass "status counts a volume"
else ktap_fail "status counts a volume ($out)"; fi
dmsetup remove fvp_st
fvp_pool_destroy st

out=$(setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin fvpctl version 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -qi "permission denied"; then
  ktap_pass "version without CAP_SYS_ADMIN fails with a clear message"
else ktap_fail "version without CAP_SYS_ADMIN fails with a clear message (rc=$rc: $out)"; fi

out=$(fvpctl --device /dev/nonexistent version 2>&1); rc=$?
[ $rc -ne 0 ] && ktap_pass "missing device node is an error" || ktap_fail "missing device node is an error ($out)"
ktap_finish
