"""API backend throughput against local wire servers with a fixed simulated latency.

Three runs of the Gemini validator backend (real google-genai SDK, real HTTP on 127.0.0.1):
  unlimited   no rate limit: calls/s is bounded by concurrency / latency
  limited     requests_per_minute set below that: calls/s achieved vs the configured limit
  storm       the same limit with 30 % injected failures (429, 500, timeouts): retries per success
Prints one JSON object as the last line.

    python benchmarks/api_throughput.py [--calls 400] [--latency 0.05] [--concurrency 16] [--rpm 6000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from nhr_ray.config import ApiConfig  # noqa: E402
from nhr_ray.roles import BackendContext, VLMRequest, build_backend  # noqa: E402
from nhr_ray.runtime.ratelimit import reset_local  # noqa: E402
from nhr_ray.testing.fake_api import FakeAPIServer, random_faults  # noqa: E402


def run(calls: int, latency: float, concurrency: int, rpm: float | None, fault_rate: float) -> dict:
    reset_local()
    faults = random_faults(fault_rate, ("429", "500", "slow"), seed=1) if fault_rate else None
    with FakeAPIServer("gemini", faults=faults, latency_s=latency, slow_s=1.0, retry_after=0.05) as srv:
        api = ApiConfig.model_validate({"gemini": {
            "base_url": srv.base_url, "concurrency": concurrency, "requests_per_minute": rpm,
            "timeout_s": 0.5, "max_retries": 5, "backoff_initial_s": 0.05, "backoff_max_s": 1.0,
        }})  # fmt: skip
        ctx = BackendContext("validator", 0, 0, run_config=types.SimpleNamespace(api=api))
        b = build_backend("validator", "gemini", {}, ctx)
        b.setup()
        im = np.zeros((16, 16, 3), np.uint8)
        reqs = [VLMRequest(f"b{i}", "edit_scores", f"item {i}", [im, im]) for i in range(calls)]
        t0 = time.monotonic()
        answers = b.ask(reqs)
        wall = time.monotonic() - t0
        b.teardown()
        t = sorted(r.t for r in srv.records)
    ok = sum(a.error is None for a in answers)
    retries = sum(a.usage["retries"] for a in answers)
    burst = (rpm or 0) / 60.0
    steady = (len(t) - burst) / (t[-1] - t[0]) if rpm and len(t) > burst + 1 else len(t) / max(t[-1] - t[0], 1e-9)
    return {
        "calls": calls,
        "requests": len(t),
        "answered": ok,
        "failed": calls - ok,
        "wall_s": round(wall, 3),
        "calls_per_s": round(calls / wall, 2),
        "server_requests_per_s_after_burst": round(steady, 2),
        "limit_per_s": round(rpm / 60.0, 2) if rpm else None,
        "retries_per_success": round(retries / max(ok, 1), 3),
        "usd": round(sum(a.usage["usd"] for a in answers), 6),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--latency", type=float, default=0.05, help="simulated server latency per request (s)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rpm", type=float, default=6000.0, help="configured requests per minute for the limited runs")
    args = ap.parse_args()
    os.environ.setdefault("GEMINI_API_KEY", "AIzaBENCHMARKkeyNOTrealXXXXXXXXXX")
    result = {
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "unlimited": run(args.calls, args.latency, args.concurrency, None, 0.0),
        "limited": run(args.calls, args.latency, args.concurrency, args.rpm, 0.0),
        "storm_30pct": run(args.calls, args.latency, args.concurrency, args.rpm, 0.30),
    }
    for k in ("unlimited", "limited", "storm_30pct"):
        print(k, result[k], file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
