"""`nhr-ray rate`: its arguments and its main loop (light to import: the server loads on use)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections import Counter


def register(sub) -> None:
    p = sub.add_parser("rate", help="rate a seeded sample of a run's triplets in a local web page (for calibrate)")
    p.add_argument("run_dir", help="a finished run's --out directory")
    p.add_argument("--out", required=True, help="the ratings Parquet file (created, or resumed if it exists)")
    p.add_argument("--n", type=int, default=300, help="items in the sample (default 300)")
    p.add_argument("--include-rejected", type=float, default=0.0, metavar="FRACTION",
                   help="share of the sample drawn from rejected attempts, so ratings cover low scores too (default 0)")
    p.add_argument("--seed", type=int, default=0, help="sample seed: the same seed gives the same items in the same order")
    p.add_argument("--rater", help="rater name the page uses when its URL names none (?rater=NAME)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; any other needs the printed token)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.set_defaults(func=cmd_rate)


def _stop(signum, frame):
    raise KeyboardInterrupt


def cmd_rate(args: argparse.Namespace) -> int:
    from nhr_ray.products.rate.server import RateServer
    from nhr_ray.products.tables import InputError

    try:
        server = RateServer(args.run_dir, args.out, n=args.n, seed=args.seed, include_rejected=args.include_rejected,
                            host=args.host, port=args.port, rater=args.rater)  # fmt: skip
    except (InputError, ValueError, OSError, OverflowError) as e:  # bad arguments, port taken or out of range
        print(f"nhr-ray rate: {e}", file=sys.stderr)
        return 2
    s = server.sample
    kinds = Counter(it.kind for it in s.items)
    print(f"{len(s.items)} items of run {s.identity['run_id']} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})"
          + (f"; passed over {dict(s.skipped)}" if s.skipped else "")
          + (f"; the run had too few: {s.shortfall} short" if s.shortfall else ""))  # fmt: skip
    if s.identity["simulated_roles"]:
        print(f"SIMULATED RUN: roles {', '.join(s.identity['simulated_roles'])} ran on the simulation backend")
    url = server.url
    if server.app.token is not None:
        print(f"WARNING: listening on {args.host}, not loopback: anyone who can reach port {server.port} and has the "
              "token below can rate, over plain (unencrypted) HTTP. Prefer the default 127.0.0.1 with an SSH tunnel "
              "(ssh -L 8765:127.0.0.1:8765 host).", file=sys.stderr)  # fmt: skip
        url += f"?token={server.app.token}"  # printed once, here; never logged
    print(f"rating page: {url}  (ratings -> {server.store.path}; Ctrl-C to stop)", flush=True)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        by_rater = Counter(j for j, _ in server.store.rows)
        per_item = Counter(t for _, t in server.store.rows)
        refused = dict(server.app.refused)
        server.close()
    print(f"stopped; {server.store.path}: {sum(by_rater.values())} ratings by {dict(by_rater) or 'nobody yet'}"
          + (f"; refused requests by reason: {refused}" if refused else ""), flush=True)  # fmt: skip
    if by_rater:
        print(f"{sum(k >= 2 for k in per_item.values())} of {len(s.items)} items have 2 or more raters (the protocol: "
              "2-4 per item; with one rater `calibrate` cannot de-bias)", flush=True)  # fmt: skip
    return 0
