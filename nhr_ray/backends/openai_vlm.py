"""Judges behind an OpenAI-compatible chat-completions endpoint (`vllm serve`, SGLang, TGI, a hosted
API) through the official `openai` SDK. Images go as PNG data URIs, in order, before the prompt text.
The endpoint's own GPUs are not this actor's: gpu_seconds follows the actor's num_gpus (usually 0)."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from pydantic import Field

from nhr_ray.backends._common import CallTimer, error_text, image_error, require
from nhr_ray.backends.api.common import api_key
from nhr_ray.roles import Answer, BackendOptions, BackendUnavailable, VisionJudge, VLMRequest


class OpenAIServerOptions(BackendOptions):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="Endpoint root, ending in /v1.")
    model: str = Field("Qwen/Qwen2.5-VL-72B-Instruct", description="Model name the server serves (`--served-model-name`).")
    api_key_env: str | None = Field(
        None, description="Name of the API key: an environment variable, or a key of the node's secrets file "
        "(NHR_SECRETS_FILE); None: no key (local servers take any)."
    )
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(32, ge=1, description="Answer budget per request.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(2, ge=0, description="SDK retries on 429/5xx and connection errors.")
    concurrency: int = Field(8, ge=1, description="Requests in flight per actor.")
    image_format: Literal["png", "jpeg"] = Field("png", description="Data-URI encoding of images (png: lossless).")
    structured_output: bool = Field(
        True, description="Send response_format json_schema where the request has a schema (vLLM supports it)."
    )
    system_prompt: str | None = Field(None, description="System message; None: none sent.")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Extra JSON fields sent with every request.")


def data_uri(img: np.ndarray, fmt: str = "png") -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt.upper(), **({"quality": 95} if fmt == "jpeg" else {}))
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAIServerJudge(VisionJudge):
    """Judge behind an OpenAI-compatible chat-completions endpoint (e.g. `vllm serve`)."""

    name = "openai_server"
    Options = OpenAIServerOptions
    options: OpenAIServerOptions

    @classmethod
    def preflight(cls, options, context) -> None:
        require("openai", "pip install 'openai>=1.50'")
        if options.api_key_env and not api_key((options.api_key_env,)):
            raise BackendUnavailable(f"the API key {options.api_key_env} is set neither in the environment nor in the "
                                     "node's secrets file (NHR_SECRETS_FILE)")

    def setup(self) -> None:
        from openai import OpenAI

        o = self.options
        key = (api_key((o.api_key_env,)) or "") if o.api_key_env else "EMPTY"
        self.client = OpenAI(base_url=o.base_url, api_key=key, timeout=o.timeout_s, max_retries=o.max_retries)
        self.pool = ThreadPoolExecutor(max_workers=o.concurrency, thread_name_prefix="nhr-openai")

    def teardown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def messages(self, req: VLMRequest) -> list[dict]:
        fmt = self.options.image_format
        parts: list[dict] = [
            {"type": "image_url", "image_url": {"url": data_uri(req.images[x], fmt)}} if isinstance(x, int) else {"type": "text", "text": x}
            for x in req.content()
        ]  # fmt: skip
        msgs = [{"role": "user", "content": parts}]
        if self.options.system_prompt is not None:
            msgs.insert(0, {"role": "system", "content": self.options.system_prompt})
        return msgs

    def _one(self, req: VLMRequest) -> Answer:
        o = self.options
        err = next((e for e in (image_error(im) for im in req.images) if e), None)
        if err:
            return Answer(error=err)
        kw: dict[str, Any] = dict(model=o.model, messages=self.messages(req), temperature=o.temperature,
                                max_tokens=req.max_tokens or o.max_tokens)
        if o.structured_output and req.json_schema:
            kw["response_format"] = {"type": "json_schema", "json_schema": {"name": req.question or "answer", "schema": req.json_schema}}
        if o.extra_body:
            kw["extra_body"] = dict(o.extra_body)
        try:
            resp = self.client.chat.completions.create(**kw)
        except Exception as e:  # noqa: BLE001  (HTTP and API errors are this item's error)
            return Answer(error=error_text(e, [self.client.api_key]), usage={"api_calls": 1.0})
        ans = Answer(usage={"api_calls": 1.0})
        if not resp.choices:
            ans.error = "endpoint returned no choices"
            return ans
        ans.text = resp.choices[0].message.content
        if ans.text is None:
            ans.error = "endpoint returned no text"
        ans.meta["finish_reason"] = resp.choices[0].finish_reason
        if resp.usage is not None:
            ans.usage.update(input_tokens=float(resp.usage.prompt_tokens or 0), output_tokens=float(resp.usage.completion_tokens or 0))
        return ans

    def ask(self, requests: list[VLMRequest]) -> list[Answer]:
        timer = CallTimer(self.context)
        answers = list(self.pool.map(self._one, requests))
        return timer.charge(answers)
