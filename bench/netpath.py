"""A real network path between local processes: namespaces, links, and a delay of each way.

``NetPath(["alpha", "beta"], delay_ms=20)`` gives every site a network namespace of its own
(``mgfed<tag>-<site>``) with one veth link to a hub namespace that routes between them; this
process (the root namespace) is linked to the hub too, so it reaches each site at
``path.address(site)``. Addresses come from a 10.x.0.0/16 that no interface here uses yet
(``path.network``, the entry a node's ``[network] allow`` needs). Links have a 65,000-byte MTU.

The delay: ``tc qdisc ... netem delay`` where the kernel has netem. Where it has not (kernels
built without ``sch_netem``, as in some micro-VMs), the hub sends every packet that crosses it
through a TUN device whose reader (this module run as ``--delay-line``, in the hub namespace, at
nice -10 as netem runs in the kernel) writes it back after ``delay_ms``. In both cases each
crossing of the hub, client to site or site to site, takes ``delay_ms`` more, so a round trip
takes ``2 * delay_ms`` more.

Everything is made on entry and removed on exit (processes in the namespaces must be stopped
first); names carry a random tag, so concurrent runs do not collide. Needs root and ``ip``.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import ipaddress
import os
import secrets
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["NetPath", "unavailable"]

PREFIX = "mgfed"
MTU = 65000
_TABLE = "100"
_TUNSETIFF = 0x400454CA
_IFF_TUN, _IFF_NO_PI = 0x0001, 0x1000
_MAX_QUEUE = 20_000  # packets held by the delay line; more are dropped, as a full queue would


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no ``ip``, no TUN), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"{PREFIX}{secrets.token_hex(3)}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if not Path("/dev/net/tun").exists() and not _has_netem():
        return "neither netem nor /dev/net/tun is available for the delay"
    return None


def _run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


def _has_netem() -> bool:
    """Whether this kernel has the netem qdisc (tried on a scratch veth)."""
    name = f"{PREFIX}{secrets.token_hex(3)}n"
    if subprocess.run(["ip", "link", "add", name, "type", "dummy"], capture_output=True).returncode:
        return False
    try:
        tried = subprocess.run(
            ["tc", "qdisc", "add", "dev", name, "root", "netem", "delay", "1ms"],
            capture_output=True,
        )
        return tried.returncode == 0
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def _free_network() -> ipaddress.IPv4Network:
    """A 10.x.0.0/16 that no address or route of this namespace overlaps."""
    used = subprocess.run(
        ["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    used += subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    taken = {ipaddress.ip_network(w, strict=False) for w in _addresses(used)}
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{secrets.randbelow(190) + 64}.0.0/16")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError("no free 10.x.0.0/16 network for the namespaces")


def _addresses(text: str) -> list[str]:
    found = []
    for word in text.split():
        with contextlib.suppress(ValueError):
            if word[0].isdigit() and "." in word:
                ipaddress.ip_network(word, strict=False)
                found.append(word)
    return found


class NetPath:
    """Sites in namespaces of their own, routed through a hub, with an optional delay."""

    def __init__(self, sites: Sequence[str], delay_ms: float = 0.0) -> None:
        self.sites = list(sites)
        self.delay_ms = delay_ms
        self.tag = secrets.token_hex(3)
        self.hub = f"{PREFIX}{self.tag}-hub"
        self.namespaces = {s: f"{PREFIX}{self.tag}-{s}" for s in self.sites}
        self.network = _free_network()
        self.method = ""
        self._base = str(self.network.network_address).rsplit(".", 2)[0]
        self._made: list[str] = []
        self._delay_line: subprocess.Popen[bytes] | None = None

    def address(self, site: str) -> str:
        """The site's address, reachable from this process and from the other sites."""
        return f"{self._base}.{self.sites.index(site) + 1}.2"

    def wrap(self, site: str, cmd: Sequence[str]) -> list[str]:
        """``cmd`` run inside the site's namespace."""
        return ["ip", "netns", "exec", self.namespaces[site], *cmd]

    def __enter__(self) -> NetPath:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _hub(self, *cmd: str) -> None:
        _run("ip", "netns", "exec", self.hub, *cmd)

    def _build(self) -> None:
        _run("ip", "netns", "add", self.hub)
        self._made.append(self.hub)
        for key in ("all", "default"):
            self._hub("sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0")
        self._hub("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._hub("ip", "link", "set", "lo", "up")
        hub_links = []
        for i, site in enumerate(self.sites, start=1):
            ns = self.namespaces[site]
            _run("ip", "netns", "add", ns)
            self._made.append(ns)
            here, there = f"{PREFIX}{self.tag}h{i}", f"{PREFIX}{self.tag}s{i}"
            _run(
                "ip", "link", "add", here, "netns", self.hub, "type", "veth", "peer", "name", there
            )
            _run("ip", "link", "set", there, "netns", ns)
            self._hub("ip", "addr", "add", f"{self._base}.{i}.1/24", "dev", here)
            self._hub("ip", "link", "set", here, "mtu", str(MTU), "up")
            inside = ["ip", "netns", "exec", ns]
            _run(*inside, "ip", "link", "set", "lo", "up")
            _run(*inside, "ip", "addr", "add", f"{self.address(site)}/24", "dev", there)
            _run(*inside, "ip", "link", "set", there, "mtu", str(MTU), "up")
            _run(*inside, "ip", "route", "add", "default", "via", f"{self._base}.{i}.1")
            hub_links.append((here, inside, there))
        # this process's own link to the hub
        here, root = f"{PREFIX}{self.tag}hc", f"{PREFIX}{self.tag}c"
        _run("ip", "link", "add", here, "netns", self.hub, "type", "veth", "peer", root)
        self._made.append(f"link:{root}")
        self._hub("ip", "addr", "add", f"{self._base}.250.1/24", "dev", here)
        self._hub("ip", "link", "set", here, "mtu", str(MTU), "up")
        _run("ip", "addr", "add", f"{self._base}.250.2/24", "dev", root)
        _run("ip", "link", "set", root, "mtu", str(MTU), "up")
        _run("ip", "route", "add", str(self.network), "via", f"{self._base}.250.1")
        hub_links.append((here, [], root))
        if self.delay_ms > 0:
            self._delay([h for h, _, _ in hub_links], hub_links)
        self._wait_reachable()

    def _delay(self, hub_ifaces: list[str], links: list[tuple[str, list[str], str]]) -> None:
        if _has_netem():
            self.method = "netem"
            for _, inside, iface in links:  # each end's egress: one crossing, one delay
                cmd = ["tc", "qdisc", "add", "dev", iface, "root", "netem"]
                _run(*inside, *cmd, "delay", f"{self.delay_ms:g}ms", "limit", "100000")
            return
        self.method = "tun delay line"
        tun = f"{PREFIX}{self.tag}d"
        self._hub("ip", "tuntap", "add", "mode", "tun", "name", tun)
        cmd = ["ip", "netns", "exec", self.hub, sys.executable, __file__, "--delay-line", tun]
        # netem runs in the kernel, ahead of every process: the line runs at a high priority,
        # not at the (often niced) priority of the run that made it
        self._delay_line = subprocess.Popen([*cmd, f"{self.delay_ms:g}"])
        os.setpriority(os.PRIO_PROCESS, self._delay_line.pid, -10)  # ip netns exec execs it
        self._hub("ip", "link", "set", tun, "mtu", str(MTU), "up")
        self._hub("ip", "route", "add", "default", "dev", tun, "table", _TABLE)
        for iface in hub_ifaces:  # what comes in from a link goes through the line first
            self._hub("ip", "rule", "add", "iif", iface, "lookup", _TABLE, "priority", "100")

    def _wait_reachable(self) -> None:
        """Until every site answers from this process (a refused TCP connection answers)."""
        for site in self.sites:
            for _ in range(50):
                if self._delay_line is not None and self._delay_line.poll() is not None:
                    raise RuntimeError("the delay line exited")
                with socket.socket() as probe:
                    probe.settimeout(1.0)
                    try:
                        probe.connect((self.address(site), 9))  # discard: nobody listens
                        break
                    except ConnectionRefusedError:
                        break
                    except OSError:
                        time.sleep(0.1)
            else:
                raise RuntimeError(f"{site} is not reachable at {self.address(site)}")

    def close(self) -> None:
        """Remove the delay line, the namespaces and the links (best effort, every step tried)."""
        if self._delay_line is not None:
            self._delay_line.terminate()
            try:
                self._delay_line.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._delay_line.kill()
                self._delay_line.wait()
            self._delay_line = None
        for made in reversed(self._made):
            if made.startswith("link:"):
                subprocess.run(["ip", "link", "del", made[5:]], capture_output=True)
            else:  # deleting a namespace deletes its links and their peers
                subprocess.run(["ip", "netns", "del", made], capture_output=True)
        self._made.clear()


def delay_line(name: str, delay_ms: float, lifetime: float = 6 * 3600.0) -> None:
    """Write every packet read from TUN device ``name`` back to it ``delay_ms`` later, in order.

    Runs until the device goes away, the process is stopped, or ``lifetime`` seconds pass.
    """
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    delay = delay_ms / 1000.0
    queue: collections.deque[tuple[float, bytes]] = collections.deque()
    ready = threading.Condition()
    stop = time.monotonic() + lifetime

    def write() -> None:
        while time.monotonic() < stop:
            with ready:
                if not queue:
                    ready.wait(timeout=1.0)
                    continue
                due, packet = queue.popleft()
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            with contextlib.suppress(OSError):
                os.write(fd, packet)

    threading.Thread(target=write, daemon=True).start()
    while time.monotonic() < stop:
        if not select.select([fd], [], [], 1.0)[0]:
            continue
        try:
            packet = os.read(fd, MTU + 100)
        except OSError:
            return
        with ready:
            if len(queue) < _MAX_QUEUE:
                queue.append((time.monotonic() + delay, packet))
                ready.notify()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--delay-line":
        delay_line(sys.argv[2], float(sys.argv[3]))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} --delay-line TUN-NAME DELAY-MS")
