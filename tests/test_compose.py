"""docker-compose.yml: valid for docker-compose (Debian's), every secret demanded from .env, every path it
mounts or the Dockerfile copies present in the repository, houqin's image unprivileged and health-checked."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (Debian package docker-compose; the test command installs it)")
    environment = {key: value for key, value in os.environ.items() if not key.isupper() or key in ("PATH", "HOME")}
    return subprocess.run([binary, "--env-file", str(env_file), "--project-directory", str(ROOT),
                           "-f", str(ROOT / "docker-compose.yml"), *args],
                          capture_output=True, text=True, env=environment, check=False)  # fmt: skip


def test_the_stack_is_valid_with_the_example_environment() -> None:
    answer = compose("--profile", "simulators", "--profile", "site", "config", env_file=ROOT / ".env.example")
    assert answer.returncode == 0, answer.stderr
    resolved = yaml.safe_load(answer.stdout)
    assert {"postgres", "influxdb", "mosquitto", "mqtt-config", "grafana", "houqin", "houqin-simulated"} <= set(
        resolved["services"]
    )
    simulated = resolved["services"]["houqin-simulated"]
    assert simulated["command"] == ["run", "--simulate"] and simulated["profiles"] == ["simulators"]
    assert resolved["services"]["houqin"]["profiles"] == ["site"]
    # A site runs two processes: one database and broker, their own MQTT ids in one shared group, no port twice.
    site = [resolved["services"][name] for name in ("houqin", "houqin-2")]
    assert all(service["profiles"] == ["site"] for service in site)
    assert len({service["environment"]["HOUQIN_MQTT_CLIENT_ID"] for service in site}) == 2
    assert {service["environment"]["HOUQIN_MQTT_SHARED_GROUP"] for service in site} == {"houqin"}
    assert len({service["environment"]["HOUQIN_DATABASE_URL"] for service in site}) == 1
    published = [str(port["published"]) for service in site for port in service["ports"]]
    assert len(published) == len(set(published)), published


def test_every_secret_must_come_from_the_environment(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    answer = compose("config", env_file=empty)
    assert answer.returncode != 0
    assert re.search(r"set [A-Z_]+ in \.env", answer.stderr), answer.stderr
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert not re.search(r"(PASSWORD|TOKEN|SECRET)\w*: (?!\$\{)", text), "a secret written into the compose file"


def test_every_mounted_path_exists_in_the_repository() -> None:
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
    for script in [ROOT / "docker" / "houqin-entrypoint.sh", *ROOT.glob("docker/*/initdb/*.sh")]:
        assert os.access(script, os.X_OK), f"{script} is not executable"


def test_the_houqin_image_is_unprivileged_and_checks_readiness() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
    final_stage = [line for line in dockerfile.splitlines() if line.startswith("FROM")][-1]
    assert "slim" in final_stage  # fmt: skip
