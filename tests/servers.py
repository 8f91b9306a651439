"""Real servers for the tests: PostgreSQL, Mosquitto and influxd on ephemeral loopback ports."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s")


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def need(binary: str, package: str) -> str:
    path = shutil.which(binary) or next(iter(glob.glob(f"/usr/lib/postgresql/*/bin/{binary}")), None)
    if path is None:
        raise RuntimeError(f"{binary} not found: install the Debian package {package} (the test command does)")
    return path


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_all(processes: list[subprocess.Popen[bytes]], seconds: float = 30) -> None:
    """SIGTERM every process that still runs, then wait for each (killed after ``seconds``): houqin
    processes stopping side by side hand their leases back to each other as they go."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Postgres:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A throw-away cluster; as root it runs as the `postgres` system user (PostgreSQL refuses root)."""
    initdb, postgres = need("initdb", "postgresql"), need("postgres", "postgresql")
    as_root = os.geteuid() == 0
    workdir = Path(tempfile.mkdtemp(prefix="houqin-pg-"))
    prefix: list[str] = []
    if as_root:
        account = pwd.getpwnam("postgres")
        os.chown(workdir, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = workdir / "data"
    subprocess.run(
        [
            *prefix,
            initdb,
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "houqin",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = subprocess.Popen(
        [*prefix, postgres, "-D", str(data), "-p", str(port), "-k", str(workdir),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
         "-c", "full_page_writes=off", "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        pg_isready = need("pg_isready", "postgresql")
        wait_until(
            lambda: (
                subprocess.run([pg_isready, "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode == 0
            ),
            "postgres",
            process,
        )
        yield Postgres("127.0.0.1", port, "houqin")
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Mosquitto:
    port: int
    workdir: Path
    config: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = need("mosquitto", "mosquitto")
        self.process = subprocess.Popen([binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)  # fmt: skip
        wait_until(lambda: port_open(self.port), "mosquitto", self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)  # SIGTERM: a persistent broker saves its sessions first
            self.process = None


@contextlib.contextmanager
def mosquitto_server(
    users: dict[str, str] | None = None,
    persistence: bool = False,
    password_file_text: str | None = None,
    acl: str | None = None,
) -> Iterator[Mosquitto]:
    """A Mosquitto broker; with ``users`` (or a ready ``password_file_text``) it demands a username and
    password; with ``acl`` it applies those access rules; with ``persistence`` it keeps sessions and
    queued messages across a restart (``stop()`` then ``start()``)."""
    workdir = Path(tempfile.mkdtemp(prefix="houqin-mqtt-"))
    os.chmod(workdir, 0o777)  # the broker drops root for the mosquitto user and writes its database here
    port = free_port()
    lines = [f"listener {port} 127.0.0.1", "log_dest stderr", "max_queued_messages 100000"]
    if persistence:
        lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 1"]
    else:
        lines.append("persistence false")
    if users or password_file_text:
        password_file = workdir / "passwd"
        if password_file_text:
            password_file.write_text(password_file_text)
        else:
            password_file.write_text("".join(f"{name}:{password}\n" for name, password in (users or {}).items()))
            subprocess.run([need("mosquitto_passwd", "mosquitto"), "-U", str(password_file)], check=True,
                           capture_output=True)  # fmt: skip
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines.append("allow_anonymous true")
    if acl is not None:
        (workdir / "acl").write_text(acl)
        lines.append(f"acl_file {workdir / 'acl'}")
    for name in ("passwd", "acl"):  # the broker drops root for the mosquitto user and must read them
        path = workdir / name
        if path.exists():
            if os.geteuid() == 0:
                shutil.chown(path, "mosquitto")
            os.chmod(path, 0o600)
    config = workdir / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    broker = Mosquitto(port, workdir, config)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Influxd:
    port: int
    config: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pinged(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False

    def start(self) -> None:
        binary = need("influxd", "influxdb")
        self.process = subprocess.Popen(
            [binary, "-config", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self.pinged, "influxd", self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def query(self, database: str, influxql: str) -> list[dict[str, Any]]:
        """The series of an InfluxQL query's first result, timestamps in nanoseconds."""
        response = httpx.post(f"{self.url}/query", data={"db": database, "q": influxql, "epoch": "ns"}, timeout=30)
        response.raise_for_status()
        result = response.json()["results"][0]
        assert "error" not in result, result["error"]
        series: list[dict[str, Any]] = result.get("series", [])
        return series


@contextlib.contextmanager
def influxd_server(data_options: str = "", keep: Path | None = None) -> Iterator[Influxd]:
    """influxd (1.x, Debian's package) with its data in a temporary directory (or in ``keep``, left there);
    ``stop()`` and ``start()`` restart it on the same port with the same data. ``data_options``: more lines
    of its ``[data]`` section."""
    workdir = keep or Path(tempfile.mkdtemp(prefix="houqin-influx-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port, rpc_port = free_port(), free_port()
    config = workdir / "influxdb.conf"
    config.write_text(
        f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
{data_options}
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
"""
    )
    server = Influxd(port, config)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
