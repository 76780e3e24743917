"""openai_server judge against a real HTTP server on 127.0.0.1 that speaks POST /v1/chat/completions.
The server records what the SDK sent; the assertions are on that."""

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from nhr_ray.roles import BackendContext, BackendUnavailable, VLMRequest, build_backend


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        text = body["messages"][-1]["content"][-1]["text"]
        if "FAIL" in text:
            self.send_response(400)
            payload = {"error": {"message": "bad request (simulated)", "type": "invalid_request_error"}}
        else:
            self.send_response(200)
            payload = {
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": f"yes ({text[:12]})"}}],
                "usage": {"prompt_tokens": 321, "completion_tokens": 2, "total_tokens": 323},
            }  # fmt: skip
        data = json.dumps(payload).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.seen = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _judge(server, **extra):
    ctx = BackendContext(role="prefilter", run_seed=0, num_gpus=0.0)
    opts = {"base_url": f"http://127.0.0.1:{server.server_address[1]}/v1", "model": "qwen-vl", "temperature": 0.0,
            "max_retries": 0, **extra}  # fmt: skip
    j = build_backend("prefilter", "openai_server", opts, ctx)
    j.preflight(j.options, ctx)
    j.setup()
    return j


def _decode(uri: str) -> np.ndarray:
    head, b64 = uri.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def test_two_images_as_data_uris_then_the_prompt_with_temperature(server):
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (40, 72, 3), dtype=np.uint8), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    schema = {"type": "object", "properties": {"adherence": {"type": "number"}}}
    j = _judge(server)
    ans = j.ask([VLMRequest("r1", "edit_scores", "Score this edit please.", [a, b], json_schema=schema)])[0]
    j.teardown()
    assert ans.error is None and ans.text == "yes (Score this e)"
    assert ans.usage == {"api_calls": 1.0, "input_tokens": 321.0, "output_tokens": 2.0}
    (seen,) = server.seen
    body = seen["body"]
    assert seen["path"] == "/v1/chat/completions" and body["model"] == "qwen-vl" and body["temperature"] == 0.0
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"] and parts[2]["text"] == "Score this edit please."
    assert np.array_equal(_decode(parts[0]["image_url"]["url"]), a) and np.array_equal(_decode(parts[1]["image_url"]["url"]), b)
    assert body["response_format"]["json_schema"]["schema"] == schema


def test_http_errors_and_bad_images_are_item_errors(server):
    img = np.zeros((8, 8, 3), np.uint8)
    j = _judge(server, temperature=0.3)
    answers = j.ask(
        [
            VLMRequest("ok", "aesthetics", "Pleasing?", [img]),
            VLMRequest("fail", "aesthetics", "FAIL please", [img]),
            VLMRequest("empty", "aesthetics", "Pleasing?", [np.zeros((0, 8, 3), np.uint8)]),
        ]
    )
    j.teardown()
    assert answers[0].error is None and answers[0].text.startswith("yes")
    assert "BadRequestError" in answers[1].error and answers[1].text is None
    assert "sides must be" in answers[2].error
    assert len(server.seen) == 2 and {s["body"]["temperature"] for s in server.seen} == {0.3}


def test_preflight_names_the_missing_key_variable(monkeypatch, server):
    monkeypatch.delenv("NHR_TEST_KEY", raising=False)
    ctx = BackendContext(role="validator", run_seed=0, num_gpus=0.0)
    with pytest.raises(BackendUnavailable, match="NHR_TEST_KEY"):
        j = build_backend("validator", "openai_server", {"api_key_env": "NHR_TEST_KEY"}, ctx)
        j.preflight(j.options, ctx)
    monkeypatch.setenv("NHR_TEST_KEY", "sk-test")
    j = _judge(server, api_key_env="NHR_TEST_KEY")
    j.ask([VLMRequest("k", "aesthetics", "Pleasing?", [np.zeros((8, 8, 3), np.uint8)])])
    j.teardown()
    assert server.seen[-1]["auth"] == "Bearer sk-test"
