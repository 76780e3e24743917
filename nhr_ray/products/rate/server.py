"""The rating server: the standard library's ThreadingHTTPServer, one static page and a small JSON API.

Routes (a fixed table: nothing is looked up on disk from a request path):
  GET  /                          the page (page.html)
  GET  /api/state[?rater=R]       run id, simulated roles, default rater; with a rater: the items (id and
                                  instruction only: no kind, no judge scores) and R's ratings
  GET  /img/<position>/<side>     a checked, cached image; side is `source` or `edited`
  POST /api/rate                  {"rater", "item", "adherence", "aesthetics"}, scores integers 1..5
  POST /api/undo                  {"rater", "item"}

Security. Bound to 127.0.0.1 by default; then every request must name a loopback Host (a page on
another site cannot reach the server by DNS rebinding) and POSTs must be `application/json` (a
cross-site form cannot send it, a cross-site fetch needs a CORS preflight this server never grants)
with no foreign Origin. On any other address a token is made at start, printed once by the CLI and
required on every request (a cookie set by visiting /?token=T); it is never logged, and neither is
any query string. POST bodies are capped at 4 KiB and must be a JSON object with exactly the
expected fields naming a known item. Every refusal is answered with its reason and counted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import tempfile
import threading
from collections import Counter
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from nhr_ray.products.rate.sample import Sample, build_sample
from nhr_ray.products.rate.store import RatingsStore

log = logging.getLogger(__name__)
RATER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
IMAGE_ROUTE = re.compile(r"/img/(\d{1,7})/(source|edited)")
FIELDS = {"/api/rate": {"rater", "item", "adherence", "aesthetics"}, "/api/undo": {"rater", "item"}}
MAX_BODY = 4096
COOKIE = "nhr_rate_token"


class Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str = ""):
        super().__init__(reason)
        self.status, self.reason, self.detail = status, reason, detail


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _csp(page: str) -> str:
    """Only the page's own inline script and style may run (by hash); images and calls only from here."""
    h = {t: base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()
         for t, m in ((t, re.search(f"<{t}>(.*?)</{t}>", page, re.S).group(1)) for t in ("script", "style"))}  # fmt: skip
    return (f"default-src 'none'; script-src 'sha256-{h['script']}'; style-src 'sha256-{h['style']}'; "
            "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")  # fmt: skip


class RateApp:
    """What the handlers share: the sample, the ratings store, the access rule and refusal counts."""

    def __init__(self, sample: Sample, store: RatingsStore, host: str, default_rater: str | None = None):
        if default_rater is not None and not RATER.fullmatch(default_rater):
            raise ValueError(f"--rater {default_rater!r}: use 1-64 letters, digits or . _ - @")
        self.sample, self.store, self.default_rater = sample, store, default_rater
        self.loopback = is_loopback(host)
        self.token = None if self.loopback else secrets.token_urlsafe(24)
        self.refused: Counter = Counter()
        self._count = threading.Lock()
        self.page = resources.files("nhr_ray.products.rate").joinpath("page.html").read_text()
        self.csp = _csp(self.page)
        self.known = {it.id for it in sample.items}
        self.cookie = COOKIE  # RateServer adds the port: cookies do not tell ports apart, tokens do

    def count(self, reason: str) -> None:
        with self._count:
            self.refused[reason] += 1

    def check_access(self, h: BaseHTTPRequestHandler) -> None:
        if self.token is not None:
            c = SimpleCookie()
            try:
                c.load(h.headers.get("Cookie", ""))
            except Exception:
                pass
            given = c[self.cookie].value if self.cookie in c else ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                raise Refused(401, "token_required", "open the URL with ?token= that `nhr-ray rate` printed at start")
            return
        host = h.headers.get("Host", "")
        name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        if not is_loopback(name):
            raise Refused(421, "host_not_loopback", "this server answers only to 127.0.0.1, localhost or [::1]")

    def state(self, rater: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"run_id": self.sample.identity["run_id"], "n": len(self.sample.items),
                               "simulated_roles": self.sample.identity["simulated_roles"],
                               "default_rater": self.default_rater}  # fmt: skip
        if rater is not None:
            out.update(rater=rater, items=[{"id": it.id, "instruction": it.instruction} for it in self.sample.items],
                       ratings=self.store.ratings(rater))  # fmt: skip
        return out

    def post(self, route: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Refused(400, "not_an_object")
        if set(body) != FIELDS[route]:
            extra, missing = sorted(set(body) - FIELDS[route]), sorted(FIELDS[route] - set(body))
            raise Refused(400, "unknown_field" if extra else "missing_field", f"unknown {extra}, missing {missing}")
        rater, item = body["rater"], body["item"]
        if not isinstance(rater, str) or not RATER.fullmatch(rater):
            raise Refused(400, "bad_rater", "1-64 letters, digits or . _ - @")
        if not isinstance(item, str) or item not in self.known:
            raise Refused(404, "unknown_item", "not an item of this sample")
        if route == "/api/undo":
            removed, rated = self.store.remove(rater, item)
            return {"ok": True, "removed": removed, "rated": rated}
        for axis in ("adherence", "aesthetics"):
            v = body[axis]
            if type(v) is not int:  # bool, float, text: not on the grid
                raise Refused(422, "score_not_integer", f"{axis} must be a whole number 1-5")
            if not 1 <= v <= 5:
                raise Refused(422, "score_out_of_range", f"{axis} must be 1-5")
        return {"ok": True, "rated": self.store.put(rater, item, body["adherence"], body["aesthetics"])}


class Handler(BaseHTTPRequestHandler):
    app: RateApp  # set on the subclass RateServer makes
    server_version = "nhr-ray-rate"
    timeout = 30  # a client that stalls mid-request releases its thread

    def log_request(self, code="-", size="-") -> None:
        log.info("%s %s %s", self.command, urlsplit(self.path).path, code)  # never the query: a token may be in it

    def log_message(self, format, *args) -> None:  # noqa: A002  (errors only; the request line is never logged)
        log.debug("rate server: " + format, *args)

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _guard(self, fn) -> None:
        try:
            fn(urlsplit(self.path))
        except Refused as e:
            self.app.count(e.reason)
            self._send(e.status, _json({"error": e.reason, "detail": e.detail}), "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in {"Content-Type": ctype, "Content-Length": str(len(body)), "X-Content-Type-Options": "nosniff",
                     "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", **(headers or {})}.items():  # fmt: skip
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _get(self, url) -> None:
        q = parse_qs(url.query, max_num_fields=4)
        if url.path == "/" and self.app.token is not None and "token" in q:
            return self._login(q)
        self.app.check_access(self)
        if url.path in ("/", "/index.html"):
            return self._send(200, self.app.page.encode(), "text/html; charset=utf-8", {"Content-Security-Policy": self.app.csp})
        if url.path == "/favicon.ico":  # browsers ask; an empty answer keeps their consoles clean
            return self._send(204, b"", "image/x-icon")
        if url.path == "/api/state":
            rater = q.get("rater", [None])[0]
            if rater is not None and not RATER.fullmatch(rater):
                raise Refused(400, "bad_rater", "1-64 letters, digits or . _ - @")
            return self._send(200, _json(self.app.state(rater)), "application/json; charset=utf-8")
        m = IMAGE_ROUTE.fullmatch(url.path)
        if m and int(m.group(1)) < len(self.app.sample.items):
            path, ctype = self.app.sample.items[int(m.group(1))].images[m.group(2)]
            return self._send(200, Path(path).read_bytes(), ctype, {"Cache-Control": "private, max-age=86400"})
        raise Refused(404, "not_found")

    def _login(self, q) -> None:
        if not hmac.compare_digest(q["token"][0].encode(), self.app.token.encode()):
            raise Refused(401, "bad_token")
        rater = q.get("rater", [""])[0]
        to = "/?rater=" + rater if RATER.fullmatch(rater) else "/"
        self._send(303, b"", "text/plain", {"Location": to,
                                            "Set-Cookie": f"{self.app.cookie}={self.app.token}; HttpOnly; SameSite=Strict; Path=/"})  # fmt: skip

    def _post(self, url) -> None:
        if url.path not in FIELDS:
            raise Refused(404, "not_found")
        self.app.check_access(self)
        if self.headers.get_content_type() != "application/json":
            raise Refused(415, "json_only", "send Content-Type: application/json")
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            raise Refused(403, "cross_origin")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise Refused(411, "length_required") from None
        if not 0 < length <= MAX_BODY:
            raise Refused(413, "body_too_large", f"at most {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "bad_json") from None
        self._send(200, _json(self.app.post(url.path, body)), "application/json; charset=utf-8")


def _json(obj: Any) -> bytes:
    # < > & escaped too: model text inside JSON stays inert even if something rendered the body as HTML
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


class RateServer:
    """A sample, its ratings store and the HTTP server, for the CLI and for tests (`start`, `close`)."""

    def __init__(self, run_dir, out, n: int = 300, seed: int = 0, include_rejected: float = 0.0,
                 host: str = "127.0.0.1", port: int = 8765, rater: str | None = None):  # fmt: skip
        self._cache = tempfile.TemporaryDirectory(prefix="nhr-rate-")
        self.store = None
        try:
            self.sample = build_sample(run_dir, n, seed, include_rejected, self._cache.name)
            self.store = RatingsStore(out, self.sample)
            self.app = RateApp(self.sample, self.store, host, rater)
            server_cls = type("Server", (ThreadingHTTPServer,), {"daemon_threads": True,
                              "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})  # fmt: skip
            self.httpd = server_cls((host.strip("[]"), port), type("BoundHandler", (Handler,), {"app": self.app}))
        except BaseException:
            self._release()
            raise
        self.host, self.port = host, self.httpd.server_address[1]
        self.app.cookie = f"{COOKIE}_{self.port}"
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> RateServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="nhr-rate", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()
        self._release()

    def _release(self) -> None:
        if self.store is not None:
            self.store.close()
        self._cache.cleanup()
