"""The live API fuzzed against its own OpenAPI schema by schemathesis, as staff and as a student: no 5xx,
no status the schema does not declare, no body outside its declared shape. The demo runs as a user runs
it (its own process, port and data); the fuzzer is a client houqin did not write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.live_demo import houqin_serving, served_url

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance")  # fmt: skip
SCHEMATHESIS = Path(sys.executable).parent / "st"


def test_the_api_answers_fuzzed_requests_within_its_schema(tmp_path: Path) -> None:
    with houqin_serving("demo", "--port", "0", data=tmp_path, pipe_stderr=True) as process:
        url = served_url(process, log=tmp_path / "served.log")
        logins = json.loads((tmp_path / "data" / "demo" / "demo-logins.json").read_text())
        for who in ("staff", "student"):
            token = httpx.post(f"{url}/api/v1/auth/token", data={"username": who, "password": logins[who]}).json()
            done = subprocess.run(
                [str(SCHEMATHESIS), "run", f"{url}/openapi.json", "--checks", CHECKS,
                 "-H", f"Authorization: Bearer {token['access_token']}",
                 "--max-examples", "15", "--workers", "2", "--seed", "20261201", "--no-color"],
                capture_output=True, text=True, timeout=600, cwd=tmp_path,
            )  # fmt: skip
            assert done.returncode == 0, f"as {who}:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
