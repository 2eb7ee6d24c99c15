#!/bin/sh
# Minimal KTAP output helpers for fvp's kselftest-style shell tests, with the
# kselftest exit codes. Source it, then: ktap_plan N; ktap_pass/ktap_fail/ktap_skip
# "description"; ktap_finish (exits 0 when all passed or skipped, 1 on any failure,
# 4 when everything was skipped).
KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4
_ktap_n=0 _ktap_pass=0 _ktap_fail=0 _ktap_skip=0

ktap_plan() { echo "TAP version 13"; echo "1..$1"; }
ktap_pass() { _ktap_n=$((_ktap_n + 1)); _ktap_pass=$((_ktap_pass + 1)); echo "ok $_ktap_n $*"; }
ktap_fail() { _ktap_n=$((_ktap_n + 1)); _ktap_fail=$((_ktap_fail + 1)); echo "not ok $_ktap_n $*"; }
ktap_skip() {
  # ktap_skip "description" "reason"
  _ktap_n=$((_ktap_n + 1)); _ktap_skip=$((_ktap_skip + 1)); echo "ok $_ktap_n $1 # SKIP $2"
}
ktap_info() { echo "# $*"; }
# ktap_check "description" command...: pass if the command succeeds.
ktap_check() {
  _d=$1; shift
  if "$@"; then ktap_pass "$_d"; else ktap_fail "$_d"; fi
}
ktap_finish() {
  echo "# totals: pass:$_ktap_pass fail:$_ktap_fail skip:$_ktap_skip"
  if [ "$_ktap_fail" -gt 0 ]; then exit $KSFT_FAIL; fi
  if [ "$_ktap_n" -gt 0 ] && [ "$_ktap_skip" -eq "$_ktap_n" ]; then exit $KSFT_SKIP; fi
  exit $KSFT_PASS
}
