#!/usr/bin/env python3
"""Minimal QMP client for fault injection in fvp's guest tests.

Usage: qmp.py SOCKET COMMAND [ARG]
  kill            quit QEMU (it drains first: I/O it queued, throttled writes included,
                  completes before it exits; for a power cut, kill -9 the process)
  pause | resume  stop / continue the guest's CPUs
  link-down | link-up   unplug / replug the guest's NIC (netdev net0)
  throttle-shared IOPS  limit the guest's writes to the shared disk to IOPS per second
  throttle-shared-bps BPS  limit them to BPS bytes per second (below one write a second)
  unthrottle-shared     lift that limit
  raw JSON        send one QMP command, print the reply
"""
import json
import socket
import sys


def qmp(path, command, arguments=None):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    stream = sock.makefile("rw")
    json.loads(stream.readline())  # greeting
    for cmd, args in (("qmp_capabilities", None), (command, arguments)):
        msg = {"execute": cmd}
        if args is not None:
            msg["arguments"] = args
        stream.write(json.dumps(msg) + "\n")
        stream.flush()
        while True:
            line = stream.readline()
            if not line:  # QEMU exited (quit)
                return {"return": {}}
            reply = json.loads(line)
            if "event" not in reply:
                break
        if "error" in reply:
            raise SystemExit(f"qmp {cmd}: {reply['error']}")
    return reply


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    path, verb = sys.argv[1], sys.argv[2]
    simple = {
        "kill": ("quit", None),
        "pause": ("stop", None),
        "resume": ("cont", None),
        "link-down": ("set_link", {"name": "net0", "up": False}),
        "link-up": ("set_link", {"name": "net0", "up": True}),
    }
    if verb in simple:
        print(json.dumps(qmp(path, *simple[verb])))
    elif verb in ("throttle-shared", "throttle-shared-bps", "unthrottle-shared"):
        iops_wr = int(sys.argv[3]) if verb == "throttle-shared" else 0
        bps_wr = int(sys.argv[3]) if verb == "throttle-shared-bps" else 0
        limits = {"bps": 0, "bps_rd": 0, "bps_wr": bps_wr, "iops": 0, "iops_rd": 0, "iops_wr": iops_wr}
        print(json.dumps(qmp(path, "block_set_io_throttle", {"device": "shared", **limits})))
    elif verb == "raw":
        msg = json.loads(sys.argv[3])
        print(json.dumps(qmp(path, msg["execute"], msg.get("arguments"))))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
