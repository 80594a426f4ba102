"""Fixtures for the tests that run web/sona.js and the example server in Node.

The scripts load Pyodide in-process from the built distribution
(``dist/pyodide``, or ``$SONA_PYODIDE_DIR``); tests skip when it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_TESTS_DIR = Path(__file__).resolve().parent
SERVER_SCRIPT = REPO_ROOT / "examples" / "node-server" / "server.mjs"
DEFAULT_PYODIDE_DIR = REPO_ROOT / "dist" / "pyodide"

# Loading Pyodide and numpy takes about 3 s; the limits leave room for a
# busy two-core machine.
NODE_TIMEOUT_S = 180
SERVER_START_TIMEOUT_S = 120
LISTENING_LINE = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


@pytest.fixture(scope="session")
def node() -> str:
    """Return the path of Node 20 or newer, or skip."""
    path = shutil.which("node")
    if path is None:
        pytest.skip("node not found on PATH")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(version.strip().lstrip("v").split(".")[0])
    if major < 20:
        pytest.skip(f"Node {version.strip()} is older than 20")
    return path


@pytest.fixture(scope="session")
def pyodide_dir() -> Path:
    """Return the built Pyodide distribution with the sona-web wheel, or skip."""
    path = Path(os.environ.get("SONA_PYODIDE_DIR", DEFAULT_PYODIDE_DIR)).resolve()
    if not (path / "pyodide.asm.wasm").is_file() or not list(path.glob("sona_web-*.whl")):
        pytest.skip(f"Pyodide distribution not found at {path}: run build_scripts/build_site.py")
    return path


def _run_node_script(node: str, script: Path, *args: str, timeout: float = NODE_TIMEOUT_S) -> dict[str, Any]:
    result = subprocess.run(
        [node, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{script.name} exited with {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        pytest.fail(f"{script.name} printed nothing; stderr:\n{result.stderr[-4000:]}")
    return json.loads(lines[-1])


@pytest.fixture(scope="session")
def run_node(node: str):
    """Return a function that runs a Node script and returns the JSON object it prints last.

    The script runs from the repository root; a non-zero exit fails the test
    with the script's output.
    """
    def run(script: Path, *args: str, timeout: float = NODE_TIMEOUT_S) -> dict[str, Any]:
        return _run_node_script(node, script, *args, timeout=timeout)

    return run


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


class ServerClient:
    """Sends JSON requests to a running example server with urllib."""

    def __init__(self, base_url: str):
        self.base_url = base_url

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        data = raw
        if data is None and body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers or {})
        if data is not None and "Content-Type" not in (headers or {}):
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return Response(reply.status, json.loads(reply.read() or b"null"), dict(reply.headers))
        except urllib.error.HTTPError as error:
            return Response(error.code, json.loads(error.read() or b"null"), dict(error.headers))

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None, **kwargs) -> Response:
        return self.request("POST", path, body, **kwargs)


class ServerProcess:
    """The example server running as a child process on a free 127.0.0.1 port."""

    def __init__(self, node: str, pyodide_dir: Path, args: list[str]):
        command = [node, str(SERVER_SCRIPT), "--port", "0", "--pyodide-dir", str(pyodide_dir), *args]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL,
        )
        self.stderr_lines: list[str] = []
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self.client = ServerClient(self._wait_for_url())

    def _drain_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr_lines.append(line.rstrip("\n"))

    def _wait_for_url(self) -> str:
        found: list[str] = []

        def read_stdout() -> None:
            for line in self.process.stdout:
                match = LISTENING_LINE.search(line)
                if match:
                    found.append(match.group(1) + "/")
                    return

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        reader.join(SERVER_START_TIMEOUT_S)
        if not found:
            self.stop()
            raise RuntimeError(
                f"server did not report its port within {SERVER_START_TIMEOUT_S} s; "
                f"stderr:\n" + "\n".join(self.stderr_lines[-40:])
            )
        return found[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


@pytest.fixture(scope="session")
def start_server(node: str, pyodide_dir: Path) -> Iterator:
    """Return a function that starts the example server with extra CLI arguments.

    Every server started through it is stopped at the end of the session.
    """
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(node, pyodide_dir, list(args))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
