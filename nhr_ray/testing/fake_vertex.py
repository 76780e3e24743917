"""A local HTTP server speaking the parts of Vertex AI a Gemini tuning job uses, for tests only.

Binds 127.0.0.1 and records every request as the client sent it:
    POST /token                                              OAuth2 token endpoint (for ADC credentials
                                                             whose token_uri points here)
    POST /{v}/projects/{p}/locations/{l}/tuningJobs          create a job (state JOB_STATE_PENDING)
    GET  /{v}/projects/{p}/locations/{l}/tuningJobs/{id}     the job, one state further along `states`
    POST /{v}/projects/{p}/locations/{l}/endpoints/{e}:generateContent   the tuned model answering

A job walks through `states` one GET at a time; ending in JOB_STATE_SUCCEEDED it carries a tuned
model and endpoint, ending in JOB_STATE_FAILED an error with `fail_message`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qs

from nhr_ray.testing.fake_api import FakeAPIServer


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeVertex(FakeAPIServer):
    """FakeAPIServer's HTTP plumbing (127.0.0.1, threads, start and stop) with Vertex's routes."""

    def __init__(self, states=("JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"),
                 responder: Callable[[Call], str] = lambda call: '{"adherence": 4.8, "aesthetics": 4.9}',
                 fail_message: str = "dataset rejected"):  # fmt: skip
        super().__init__("gemini")  # base_url: the bare root, as Vertex clients take it
        self.states, self.answer, self.fail_message = list(states), responder, fail_message
        self.calls: list[Call] = []
        self.tokens_issued: list[str] = []
        self.jobs: dict[str, dict] = {}

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        method = h.command
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}  # the token endpoint's form
        call = Call(method, h.path, {k.lower(): v for k, v in h.headers.items()}, body)
        with self._lock:
            self.calls.append(call)
            status, payload = self._route(call)
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _route(self, call: Call) -> tuple[int, dict]:
        if call.path == "/token":
            token = f"ya29.fake-{len(self.tokens_issued)}"
            self.tokens_issued.append(token)
            return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        m = re.fullmatch(r"/v1\w*/(projects/[^/]+/locations/[^/]+)/tuningJobs(?:/(\d+))?", call.path)
        if m and call.method == "POST" and m.group(2) is None:
            name = f"{m.group(1)}/tuningJobs/{4200 + len(self.jobs)}"
            self.jobs[name] = {"step": 0, "parent": m.group(1), "request": call.body}
            return 200, self._job(name)
        if m and call.method == "GET" and m.group(2):
            name = f"{m.group(1)}/tuningJobs/{m.group(2)}"
            if name not in self.jobs:
                return 404, {"error": {"code": 404, "message": f"{name} not found", "status": "NOT_FOUND"}}
            self.jobs[name]["step"] = min(self.jobs[name]["step"] + 1, len(self.states) - 1)
            return 200, self._job(name)
        if call.method == "POST" and call.path.endswith(":generateContent"):
            text = self.answer(call)
            return 200, {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
                         "usageMetadata": {"promptTokenCount": 600, "candidatesTokenCount": 20, "totalTokenCount": 620}}  # fmt: skip
        return 404, {"error": {"code": 404, "message": f"no route {call.method} {call.path}", "status": "NOT_FOUND"}}

    def _job(self, name: str) -> dict:
        job = self.jobs[name]
        state = self.states[job["step"]]
        req = job["request"] or {}
        out = {"name": name, "state": state, "baseModel": req.get("baseModel"), "createTime": "2026-11-30T10:00:00Z"}
        if state == "JOB_STATE_SUCCEEDED":
            out["tunedModel"] = {"model": f"{job['parent']}/models/77{name[-2:]}", "endpoint": f"{job['parent']}/endpoints/99{name[-2:]}"}
        elif state == "JOB_STATE_FAILED":
            out["error"] = {"code": 3, "message": self.fail_message}
        return out
