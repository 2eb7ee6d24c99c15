#!/usr/bin/env bash
# Host-side helpers to boot fvp test guests under QEMU. Sourced by scripts.
#
# Each guest gets: the test kernel and initramfs; the host root read-only over 9p
# ("hostroot") and a writable results directory ("out"); a private virtio disk
# (serial fvp-private0); optionally the disk shared by all guests (serial fvp-shared,
# share-rw); one NIC on an L2 segment shared by all guests of the run (QEMU multicast
# socket on loopback); a serial console log, a second serial port for test output, and
# a QMP socket for fault injection (tests/lib/qmp.py).
#
# QEMU_ACCEL=kvm opts into KVM (nested KVM hangs on some hosts; TCG is the default).

QEMU_ACCEL=${QEMU_ACCEL:-tcg}
QEMU_MEM=${QEMU_MEM:-512}
QEMU_SMP=${QEMU_SMP:-2}
GUEST_DISK_MB=${GUEST_DISK_MB:-256}

# guest_precise_clock: kernel parameters that give the guest a nanosecond clock. The
# test kernel has no ACPI, so the guest finds no HPET or PM timer to calibrate its TSC
# against and falls back to jiffies (4 ms steps): fine for timeouts, useless for
# latency percentiles. Under TCG the guest's TSC counts at the host's TSC rate, so the
# host's calibrated rate is passed in. Benchmarks only (GUEST_CMDLINE_EXTRA): the test
# suites keep the clock that slows down with a starved guest rather than one that
# fences it for being slow.
guest_precise_clock() {
  local mhz
  mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' | tail -1)
  [ -n "$mhz" ] || mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Detected \([0-9.]*\) MHz processor.*/\1/p' | tail -1)
  [ -n "$mhz" ] || mhz=$(sed -n 's/^cpu MHz[^:]*: *\([0-9.]*\).*/\1/p' /proc/cpuinfo | head -1)
  [ -n "$mhz" ] || return 0
  echo "tsc_early_khz=$(awk -v m="$mhz" 'BEGIN { printf "%d", m * 1000 }') tsc=reliable clocksource=tsc"
}

# guest_start RUN_DIR NODE NODES SUITES [SHARED_IMG]
# Boots guest NODE (1-based) in the background; its files live in RUN_DIR/nodeN.
guest_start() {
  local run=$1 node=$2 nodes=$3 suites=$4 shared=${5:-}
  local dir=$run/node$node
  mkdir -p "$dir/out"
  truncate -s "${GUEST_DISK_MB}M" "$dir/private0.img"
  # RDRAND: the guest's RNG is ready at boot; without it every python3 (the ack writer)
  # spun in the kernel's jitter entropy loop for 30 s or more after each boot.
  local accel=(-accel tcg -cpu qemu64,+rdrand)
  [ "$QEMU_ACCEL" = kvm ] && accel=(-accel kvm -cpu host)
  local shared_args=()
  if [ -n "$shared" ]; then
    shared_args=(-drive "if=none,id=shared,file=$shared,format=raw,cache=none,file.locking=off"
      -device "virtio-blk-pci,drive=shared,serial=fvp-shared,share-rw=on")
  fi
  qemu-system-x86_64 "${accel[@]}" -smp "${GUEST_SMP:-$QEMU_SMP}" -m "$QEMU_MEM" \
    -nodefaults -display none -no-reboot \
    -kernel "$FVP_KERNEL_IMAGE" -initrd "$FVP_INITRAMFS" \
    -append "console=ttyS0 panic=-1 loglevel=${GUEST_LOGLEVEL:-6} io_delay=none brd.rd_nr=4 brd.rd_size=262144 fvpnode=$node fvpnodes=$nodes fvpsuites=$suites fvprepo=$FVP_REPO ${GUEST_CMDLINE_EXTRA:-}" \
    -serial "file:$dir/console.log" -serial "file:$dir/tests.log" \
    -qmp "unix:$dir/qmp.sock,server=on,wait=off" \
    -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap" \
    -device "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot" \
    -fsdev "local,id=out,path=$dir/out,security_model=none" \
    -device "virtio-9p-pci,fsdev=out,mount_tag=out" \
    -drive "if=none,id=private0,file=$dir/private0.img,format=raw,cache=none" \
    -device "virtio-blk-pci,drive=private0,serial=fvp-private0" \
    "${shared_args[@]}" \
    -netdev "socket,id=net0,mcast=230.0.0.1:$FVP_NET_PORT,localaddr=127.0.0.1" \
    -device "virtio-net-pci,netdev=net0,mac=52:54:00:77:00:$(printf %02x "$node")" \
    >"$dir/qemu.log" 2>&1 &
  echo $! >"$dir/qemu.pid"
}

# guest_wait RUN_DIR NODE TIMEOUT_S: waits for the guest to power off; kills it after
# the timeout. Returns non-zero on timeout.
guest_wait() {
  local dir=$1/node$2 limit=$3 pid
  pid=$(cat "$dir/qemu.pid")
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge "$limit" ]; then
      echo "guest $2: timed out after ${limit}s, killing" >&2
      kill -9 "$pid" 2>/dev/null
      return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  wait "$pid" 2>/dev/null
  return 0
}

# Kernel reports that fail a run, whatever the tests said.
KERNEL_REPORT_RE='Oops|BUG:|WARNING:|UBSAN:|Kernel panic|general protection fault|INFO: (task .* blocked|possible|trying to register non-static key|lockdep is turned off)|DEBUG_LOCKS_WARN_ON|soft lockup|hard LOCKUP|list_(add|del) corruption|Call Trace|sleeping function called from invalid context'

# guest_reports DIR: prints the kernel reports in a guest's console log.
guest_reports() {
  # console-*.log: earlier lives of a guest that a test killed and restarted.
  grep -E -n "$KERNEL_REPORT_RE" "$1"/console*.log 2>/dev/null | head -40
}

# guest_prepare FLAVOR: builds (or finds cached) the kernel of that flavor, fvp.ko
# against it, fvpctl and the initramfs, and exports what guest_start needs.
# For `make demo` and `make bench`; `make test` does the same steps one by one.
guest_prepare() {
  local kdir
  kdir=$(scripts/kernel/build.sh "$1")
  make -s module KDIR="$kdir"
  cargo build --release --locked -p fvpctl
  guest_helpers
  scripts/build-initramfs.sh build/initramfs.cpio.gz
  export FVP_KERNEL_IMAGE=$kdir/arch/x86/boot/bzImage
  export FVP_INITRAMFS=$FVP_REPO/build/initramfs.cpio.gz
  export FVP_NET_PORT=$(( 20000 + RANDOM % 20000 ))
}

# guest_helpers: builds the C helpers the guest programs run into build/bin (on their
# PATH). Run from the repository's top.
guest_helpers() {
  mkdir -p build/bin &&
    gcc -O2 -Wall -Werror -I include/uapi -o build/bin/fvp_ioctl_abuse tests/selftests/fvp/ioctl_abuse.c &&
    gcc -O2 -Wall -Werror -o build/bin/fvp_wait_file tests/selftests/lib/wait_file.c
}

# guest_finished_ok DIR MARKER: prints the guest's test output; fails on a kernel
# report in its log or if MARKER (an "ok" line) is missing.
guest_finished_ok() {
  local reports
  cat "$1/tests.log"
  reports=$(guest_reports "$1" || true)
  if [ -n "$reports" ]; then
    echo "kernel reports in $1/console.log:"; echo "$reports"; return 1
  fi
  grep -q "^$2" "$1/tests.log"
}
