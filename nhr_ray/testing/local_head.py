"""A real Ray head on this machine, started with `ray start --head --block` and stopped by SIGTERM to
that one process: for tests and demos that go through `ray job submit` as a user would.

Ray binds the head's GCS, raylet, object manager, workers, agents and client server to every
interface of the host, so the head runs with Ray's token authentication: a fresh random token per
head, handed to the processes this class starts (`ray start`, `ray job submit`, the HTTP calls
below) through RAY_AUTH_MODE and RAY_AUTH_TOKEN; `auth_env()` gives it to any other process that
should reach the head (a driver started with it can `ray.init(address=head.gcs_address)`),
`auth_headers()` to an HTTP client. The dashboard and job API listen on 127.0.0.1 only.

Never `ray stop` here: it stops every Ray on the machine, including other people's. Every port the
head opens by default at a fixed number (GCS 6379, client server 10001, dashboard 8265, dashboard
agent 52365) gets a free one instead, so several heads can share a host.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_ip() -> str:
    """The address Ray registers this host under (it binds the GCS there, not on 127.0.0.1)."""
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


def ray_bin() -> str:
    """The `ray` CLI next to this Python (a venv need not be activated)."""
    here = Path(sys.executable).parent / "ray"
    return str(here) if here.exists() else (shutil.which("ray") or "ray")


@dataclass
class LocalHead:
    """`with LocalHead(...) as head:` starts a head, waits until its job API answers, stops it after."""

    num_cpus: int = 2
    num_gpus: int = 0
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 90.0
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    temp_dir: str = ""
    proc: subprocess.Popen | None = None
    log_path: str = ""
    token: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gcs_address(self) -> str:
        return f"{node_ip()}:{self.gcs_port}"

    def auth_env(self) -> dict[str, str]:
        """The environment a process needs to reach this head (Ray's CLI, `ray.init`, the job SDK)."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
        env.update(self.auth_env())
        return env

    def get_json(self, path: str, timeout_s: float = 10.0):
        """GET one job/state API path of this head, authenticated."""
        req = urllib.request.Request(f"{self.dashboard_url}{path}", headers=self.auth_headers())
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return json.loads(r.read())

    def start(self) -> "LocalHead":
        """Start the head; once more if `ray start` gave up waiting for its own raylet to register
        (a fixed 30 s inside Ray, which a loaded machine can exceed)."""
        try:
            return self._start_once()
        except RuntimeError as e:
            if "timed out during startup" not in str(e):
                raise
        self._stop_leftovers()  # what the first try left running, then the same ports again
        time.sleep(2.0)
        return self._start_once()

    def _start_once(self) -> "LocalHead":
        # short path: Ray's unix sockets live under it and socket paths are limited to ~107 bytes
        self.temp_dir = self.temp_dir or tempfile.mkdtemp(prefix="nhrh", dir="/tmp")
        self.log_path = os.path.join(self.temp_dir, "ray-start.log")
        cmd = [
            ray_bin(), "start", "--head", "--block",
            "--port", str(self.gcs_port),
            # the dashboard (and with it the job API) listens on loopback only
            "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(self.dashboard_port),
            "--dashboard-agent-listen-port", str(free_port()),
            "--ray-client-server-port", str(free_port()),
            "--num-cpus", str(self.num_cpus),
            "--num-gpus", str(self.num_gpus),
            "--temp-dir", self.temp_dir,
            "--disable-usage-stats",
            *self.extra_args,
        ]  # fmt: skip
        env = self._env()
        env.update(self.env)
        log = open(self.log_path, "w")
        # own session: a Ctrl-C in the terminal does not hit it; we stop exactly this process later
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:  # the dashboard can answer before `ray start` has its node up (or gives up on it)
                if "Ray runtime started" in self.log_tail(100_000) and self.get_json("/api/version", timeout_s=2).get("ray_version"):
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the head's job API did not answer within {self.start_timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM to our `ray start` process only; it shuts down the processes it started."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stop_leftovers()

    def _stop_leftovers(self) -> None:
        """Processes still naming our private temp dir on their command line (e.g. the raylet of a
        fake autoscaler node launched while the head shut down) are ours: SIGTERM them by pid."""
        if not self.temp_dir or not os.path.isdir("/proc"):
            return
        me = os.getpid()
        for pid_s in os.listdir("/proc"):
            if not pid_s.isdigit() or int(pid_s) == me:
                continue
            try:
                cmdline = Path(f"/proc/{pid_s}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if self.temp_dir + "/" in cmdline or cmdline.rstrip().endswith(self.temp_dir):
                try:
                    os.kill(int(pid_s), signal.SIGTERM)
                except OSError:
                    pass

    def log_tail(self, n: int = 4000) -> str:
        try:
            return Path(self.log_path).read_text()[-n:]
        except OSError:
            return ""

    def submit(self, entrypoint: list[str], working_dir: str | None, runtime_env: dict | None = None,
               timeout_s: float = 300.0, extra_args: list[str] | None = None) -> subprocess.CompletedProcess:
        """`ray job submit` (waits for the job, streams its logs into the result's stdout). With a
        `--submission-id` in extra_args, a submission the job API dropped before it created the
        job (seen on a loaded machine while the head's agent starts) is sent again, twice at most."""
        cmd = [ray_bin(), "job", "submit", "--address", self.dashboard_url]
        if working_dir:
            cmd += ["--working-dir", working_dir]
        if runtime_env:
            cmd += ["--runtime-env-json", json.dumps(runtime_env)]
        cmd += [*(extra_args or []), "--", *entrypoint]
        args = extra_args or []
        sid = args[args.index("--submission-id") + 1] if "--submission-id" in args else None
        for attempt in range(3):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=self._env())
            if r.returncode == 0 or sid is None or attempt == 2 or self._job_exists(sid):
                return r
            time.sleep(2.0)
        return r

    def _job_exists(self, submission_id: str) -> bool:
        try:
            self.get_json(f"/api/jobs/{submission_id}")
            return True
        except urllib.error.HTTPError as e:
            return e.code != 404
        except OSError:  # the job API is gone: nothing to send again to
            return True

    def job_status(self, submission_id: str) -> str:
        return self.get_json(f"/api/jobs/{submission_id}")["status"]

    def __enter__(self) -> "LocalHead":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
