#!/bin/sh
# fvp.ko loads and unloads cleanly three times, registers its dm target and control
# device, and refuses to unload while a target or the control device is in use.
. ../lib/ktap.sh
. ../lib/fvp.sh
ktap_plan 6

fvp_unload
ok=1
for i in 1 2 3; do
  insmod "$FVP_KO" || { ok=0; break; }
  [ -c /dev/fvp-control ] || { ktap_info "no /dev/fvp-control after load $i"; ok=0; }
  dmsetup targets | grep -q '^fvp ' || { ktap_info "no fvp dm target after load $i"; ok=0; }
  rmmod fvp || { ok=0; break; }
  [ ! -e /sys/module/fvp ] || { ktap_info "fvp still present after unload $i"; ok=0; }
  [ ! -e /dev/fvp-control ] || { ktap_info "control device left after unload $i"; ok=0; }
done
[ $ok = 1 ] && ktap_pass "load and unload 3 times" || ktap_fail "load and unload 3 times"

insmod "$FVP_KO"
mode=$(stat -c %a /dev/fvp-control)
[ "$mode" = 600 ] && ktap_pass "control device mode is 0600" || ktap_fail "control device mode is 0600 (got $mode)"

dev=$(fvp_private_disk)
fvp_pool_create ml 1M
dmsetup create fvp_busy --table "0 8 fvp $(fvp_devno "$dev") ml write-through"
if rmmod fvp 2>/dev/null; then ktap_fail "unload refused while a target exists"; insmod "$FVP_KO"
else ktap_pass "unload refused while a target exists"; fi
dmsetup remove fvp_busy
fvp_pool_destroy ml

# Hold the control device open while trying to unload.
exec 3</dev/fvp-control
if rmmod fvp 2>/dev/null; then ktap_fail "unload refused while the control device is open"; insmod "$FVP_KO"
else ktap_pass "unload refused while the control device is open"; fi
exec 3<&-

ktap_check "unload after the last user is gone" rmmod fvp
ktap_check "no fvp target left registered" sh -c '! dmsetup targets | grep -q "^fvp "'
ktap_finish
