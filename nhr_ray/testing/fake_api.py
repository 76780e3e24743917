"""Local HTTP servers that speak the OpenAI and Gemini wire protocols, with injectable faults.

For tests and benchmarks only: they bind 127.0.0.1, record every request as the SDK sent it
(path, headers, JSON body, a server-side sequence id, arrival time) and answer from a `responder`
callback, unless the fault plan says otherwise for that request:

    "429"        429 with Retry-After (seconds: `retry_after`)
    "500"        500 with an error body
    "slow"       sleeps `slow_s` before answering (past the client's timeout)
    "malformed"  200 whose body is not JSON
    "safety"     OpenAI: finish_reason content_filter; Gemini: promptFeedback.blockReason SAFETY
    "refusal"    OpenAI: message.refusal; Gemini: finishReason RECITATION
    "empty"      OpenAI: empty content; Gemini: no candidates
    "truncated"  finish_reason length / finishReason MAX_TOKENS, half the text
    "auth_echo"  401 whose message echoes the key the client sent (as some servers do)
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

FAULTS = ("429", "500", "slow", "malformed", "safety", "refusal", "empty", "truncated", "auth_echo")


@dataclass
class Record:
    seq: int
    t: float
    path: str
    headers: dict[str, str]
    body: Any
    fault: str | None = None


def random_faults(rate: float, kinds: tuple[str, ...] = ("429", "500", "slow"), seed: int = 0) -> Callable[[Record], str | None]:
    rng = random.Random(seed)
    lock = threading.Lock()

    def plan(rec: Record) -> str | None:
        with lock:
            return rng.choice(kinds) if rng.random() < rate else None

    return plan


def prompt_text(rec: Record) -> str:
    """All text the client sent in one request, whatever the protocol."""
    return "\n".join(re.findall(r'"(?:text|content)":\s*"((?:[^"\\]|\\.)*)"', json.dumps(rec.body)))


def sim_world_answer(rec: Record) -> str:
    """What the API roles answer in the simulation world's language, so the simulated T2I and editor
    can draw it: the designer (asked for "exactly N items") writes N scenes; a judge (images
    inline) scores high; the inverter writes one instruction."""
    import numpy as np

    from nhr_ray.backends.sim.text import as_json_item, design_scene

    text = prompt_text(rec)
    asked = re.search(r"exactly (\d+) items", text)
    if asked:
        rng = np.random.default_rng(rec.seq)
        labelled = '"category"' in text or '\\"category\\"' in text
        return json.dumps([as_json_item(design_scene(rng, int(rng.integers(1, 4)), "mixed", rng), labelled, rng, 0.0)
                           for _ in range(int(asked.group(1)))])  # fmt: skip
    if "inlineData" in json.dumps(rec.body) or "image_url" in json.dumps(rec.body):
        return '{"adherence": 4.9, "aesthetics": 4.8}'
    return "Place a small red cup on the left of the table."


class FakeAPIServer:
    def __init__(
        self,
        protocol: str,  # "openai" | "gemini"
        responder: Callable[[Record], str] = lambda rec: '{"adherence": 4.8, "aesthetics": 4.9}',
        faults: Callable[[Record], str | None] | None = None,
        latency_s: float = 0.0,
        slow_s: float = 2.0,
        retry_after: float = 0.05,
    ):
        assert protocol in ("openai", "gemini")
        self.protocol, self.responder, self.faults = protocol, responder, faults
        self.latency_s, self.slow_s, self.retry_after = latency_s, slow_s, retry_after
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # ----- lifecycle
    def __enter__(self) -> "FakeAPIServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                server._handle(self)

            def do_GET(self):  # a subclass's protocol may poll (fake_vertex.py)
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.request_queue_size = 256
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """What the SDK's base_url takes: .../v1 for OpenAI, the bare root for Gemini."""
        root = f"http://127.0.0.1:{self.port}"
        return root + "/v1" if self.protocol == "openai" else root

    # ----- one request
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode("latin-1")
        with self._lock:
            rec = Record(len(self.records), time.monotonic(), h.path, {k.lower(): v for k, v in h.headers.items()}, body)
            self.records.append(rec)
        rec.fault = self.faults(rec) if self.faults else None
        if self.latency_s:
            time.sleep(self.latency_s)
        try:
            status, payload, headers = self._answer(rec)
        except Exception as e:  # a bug in a test's responder must show up, not hang the client
            status, payload, headers = 599, json.dumps({"error": {"message": repr(e)}}), {}
        data = payload.encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def _error(self, status: int, message: str, gstatus: str) -> str:
        if self.protocol == "openai":
            return json.dumps({"error": {"message": message, "type": "error", "code": None}})
        return json.dumps({"error": {"code": status, "message": message, "status": gstatus}})

    def _answer(self, rec: Record) -> tuple[int, str, dict[str, str]]:
        f = rec.fault
        if f == "429":
            return 429, self._error(429, "Rate limit reached", "RESOURCE_EXHAUSTED"), {"Retry-After": str(self.retry_after)}
        if f == "500":
            return 500, self._error(500, "Internal error", "INTERNAL"), {}
        if f == "auth_echo":
            key = rec.headers.get("x-goog-api-key") or rec.headers.get("authorization", "").removeprefix("Bearer ")
            return 401, self._error(401, f"Incorrect API key provided: {key}", "UNAUTHENTICATED"), {}
        if f == "malformed":
            return 200, '{"choices": [ {"message": oops', {}
        if f == "slow":
            time.sleep(self.slow_s)
        text = self.responder(rec)
        return 200, (self._openai(rec, text, f) if self.protocol == "openai" else self._gemini(rec, text, f)), {}

    def _openai(self, rec: Record, text: str, f: str | None) -> str:
        finish, refusal = "stop", None
        if f == "safety":
            text, finish = None, "content_filter"
        elif f == "refusal":
            text, refusal = None, "I can't help with that."
        elif f == "empty":
            text = ""
        elif f == "truncated":
            text, finish = text[: len(text) // 2], "length"
        body = rec.body if isinstance(rec.body, dict) else {}
        return json.dumps({
            "id": f"chatcmpl-{rec.seq}", "object": "chat.completion", "created": 0, "model": body.get("model", "?"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": refusal}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
        })  # fmt: skip

    def _gemini(self, rec: Record, text: str, f: str | None) -> str:
        usage = {"promptTokenCount": 600, "candidatesTokenCount": 20, "thoughtsTokenCount": 10, "totalTokenCount": 630}
        if f == "safety":
            return json.dumps({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage})
        if f == "empty":
            return json.dumps({"candidates": [], "usageMetadata": usage})
        finish = {"refusal": "RECITATION", "truncated": "MAX_TOKENS"}.get(f or "", "STOP")
        if f == "truncated":
            text = text[: len(text) // 2]
        parts = [] if f == "refusal" else [{"text": text}]
        return json.dumps({
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
            "usageMetadata": usage, "modelVersion": "fake",
        })  # fmt: skip
