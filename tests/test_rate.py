"""`nhr-ray rate` on a real (small) simulation run: the seeded sample, the HTTP API and its refusals,
the ratings file (resume, restart, other runs), the token off loopback, `calibrate --run` on what it
wrote, and a person rating with the keyboard in a real headless Chromium.

The browser test needs `chromium` on PATH (`apt-get install -y chromium`) and drives it with the
`playwright` package (the `test` extra; never `playwright install`): without chromium it is skipped
with that reason, and everything it checks below the page is covered by the HTTP tests."""

import http.client
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import small_config
from nhr_ray.cli import main
from nhr_ray.products.rate.sample import REJECTED, SampleError, build_sample
from nhr_ray.products.rate.server import RateServer
from nhr_ray.products.rate.store import StoreError

EVIL = '<img src=x onerror="document.title=\'pwned\'"><b>bold</b> & "quoted" '
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)")


def _png_bomb(w=100_000, h=100_000) -> bytes:
    """A small PNG claiming w x h pixels: must be refused before any pixel is decoded."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _encoded(struct_, fmt) -> dict:
    buf = io.BytesIO()
    Image.open(io.BytesIO(struct_["bytes"])).convert("RGB").save(buf, format=fmt)
    return {"bytes": buf.getvalue(), "path": None}


@pytest.fixture(scope="module")
def rate_run(ray_local, shared_run, tmp_path_factory):
    """A finished run whose every instruction carries markup, with a few images replaced: [1] edited by
    garbage, [2] source as JPEG, [3] source as BMP, [4] edited by a decompression bomb."""
    out = shared_run("small", small_config(), copy_to=tmp_path_factory.mktemp("rate") / "run")[0]  # mined once per session
    (path,) = sorted((out / "data").glob("triplets-*.parquet"))
    rows = pq.read_table(path).to_pylist()
    for r in rows:
        r["edit_instruction"] = EVIL + r["edit_instruction"]
    rows[1]["edited_image"] = {"bytes": b"not an image", "path": None}
    rows[2]["source_image"] = _encoded(rows[2]["source_image"], "JPEG")
    rows[3]["source_image"] = _encoded(rows[3]["source_image"], "BMP")
    rows[4]["edited_image"] = {"bytes": _png_bomb(), "path": None}
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(path)), path)
    return out, {r["sample_id"]: r for r in rows}


def _attempts(run_dir):
    return {r["attempt_id"]: r for r in pq.read_table(sorted((run_dir / "data").glob("attempts-*.parquet")),
                                                          columns=["attempt_id", "kept", "adherence"]).to_pylist()}  # fmt: skip


def call(server, method, path, body=None, headers=None, raw=None):
    """-> (status, headers, body bytes); sends exactly the path and headers given."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    h = {"Host": f"127.0.0.1:{server.port}", **(headers or {})}
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None and "Content-Type" not in h:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    c.close()
    return out


def _json(resp):
    return json.loads(resp[2])


def _file_rows(path):
    return pq.read_table(path).to_pylist()


def test_sample_is_seeded_mixed_and_checked(rate_run, tmp_path):
    run_dir, trip = rate_run
    a = build_sample(run_dir, 12, 7, 0.25, tmp_path / "a")
    b = build_sample(run_dir, 12, 7, 0.25, tmp_path / "b")
    c = build_sample(run_dir, 12, 8, 0.25, tmp_path / "c")
    assert [i.id for i in a.items] == [i.id for i in b.items] != [i.id for i in c.items]
    assert sum(i.kind == REJECTED for i in a.items) == 3 and len(a.items) == 12
    att = _attempts(run_dir)
    for it in a.items:
        if it.kind == REJECTED:  # a judged attempt that was not kept
            assert it.id in att and not att[it.id]["kept"] and att[it.id]["adherence"] is not None
        else:
            assert it.id in trip and it.kind == trip[it.id]["kind"] and it.attempt_id == trip[it.id]["attempt_id"]
    # every triplet asked for: the two with bad images are passed over by reason, the rest are served
    full = build_sample(run_dir, len(trip), 0, 0.0, tmp_path / "full")
    ids = list(trip)
    assert dict(full.skipped) == {"edited_image_not_an_image": 1, "edited_image_too_large": 1}
    assert full.shortfall == {"triplets": 2} and {ids[1], ids[4]}.isdisjoint(i.id for i in full.items)
    by_id = {i.id: i for i in full.items}
    jpeg, bmp = by_id[ids[2]].images["source"], by_id[ids[3]].images["source"]
    assert jpeg[1] == "image/jpeg" and open(jpeg[0], "rb").read() == trip[ids[2]]["source_image"]["bytes"]
    assert bmp[1] == "image/png"  # not a format we serve as is: re-encoded, same pixels
    assert np.array_equal(np.asarray(Image.open(bmp[0])), np.asarray(Image.open(io.BytesIO(trip[ids[3]]["source_image"]["bytes"]))))
    with pytest.raises(SampleError, match="fraction"):
        build_sample(run_dir, 5, 0, 1.5, tmp_path / "x")


def test_rate_over_http_resume_and_file(rate_run, tmp_path):
    run_dir, trip = rate_run
    out = tmp_path / "ratings.parquet"
    srv = RateServer(run_dir, out, n=8, seed=3, include_rejected=0.25, port=0).start()
    try:
        st = _json(call(srv, "GET", "/api/state?rater=alice"))
        items = [i["id"] for i in st["items"]]
        assert st["ratings"] == {} and len(items) == 8 and st["simulated_roles"]
        assert set(st["items"][0]) == {"id", "instruction"}  # blind: no kind, no judge scores
        assert st["items"][0]["instruction"].startswith(EVIL) or items[0] not in trip
        for k, (adh, aes) in enumerate([(4, 5), (2, 3), (5, 5)]):
            r = call(srv, "POST", "/api/rate", {"rater": "alice", "item": items[k], "adherence": adh, "aesthetics": aes})
            assert r[0] == 200 and _json(r) == {"ok": True, "rated": k + 1}
        assert _json(call(srv, "POST", "/api/rate", {"rater": "alice", "item": items[0], "adherence": 1, "aesthetics": 2}))["rated"] == 3
        assert _json(call(srv, "POST", "/api/undo", {"rater": "alice", "item": items[2]})) == {"ok": True, "removed": True, "rated": 2}
        status, headers, body = call(srv, "GET", "/img/0/edited")
        assert status == 200 and headers["Content-Type"] in ("image/png", "image/jpeg")
        assert body == open(srv.sample.items[0].images["edited"][0], "rb").read()
        status, headers, page = call(srv, "GET", "/")
        assert status == 200 and "script-src 'sha256-" in headers["Content-Security-Policy"] and b"Backspace" in page
    finally:
        srv.close()
    rows = _file_rows(out)  # what a crash at this point would leave: complete, current
    assert [(r["triplet"], r["adherence"], r["aesthetics"]) for r in rows] == [(items[1], 2, 3), (items[0], 1, 2)]
    srv = RateServer(run_dir, out, n=8, seed=3, include_rejected=0.25, port=0).start()  # a restart resumes
    try:
        assert _json(call(srv, "GET", "/api/state?rater=alice"))["ratings"] == {items[0]: [1, 2], items[1]: [2, 3]}
        assert _json(call(srv, "GET", "/api/state?rater=bob"))["ratings"] == {}
        call(srv, "POST", "/api/rate", {"rater": "bob", "item": items[0], "adherence": 3, "aesthetics": 3})
    finally:
        srv.close()
    meta = srv.sample.identity
    for r in _file_rows(out):
        it = next(i for i in srv.sample.items if i.id == r["triplet"])
        assert (r["kind"], r["attempt_id"], r["source_id"], r["category"]) == (it.kind, it.attempt_id, it.source_id, it.category)
        assert r["run_id"] == meta["run_id"] and r["sample_seed"] == 3 and r["position"] == items.index(r["triplet"])
    assert {(r["rater"], r["triplet"]) for r in _file_rows(out)} == {("alice", items[1]), ("alice", items[0]), ("bob", items[0])}


BAD_POSTS = [  # (body or raw bytes, extra headers, status, reason)
    ({"rater": "a", "item": "ITEM", "adherence": 0, "aesthetics": 3}, {}, 422, "score_out_of_range"),
    ({"rater": "a", "item": "ITEM", "adherence": 3, "aesthetics": 6}, {}, 422, "score_out_of_range"),
    ({"rater": "a", "item": "ITEM", "adherence": 3.5, "aesthetics": 3}, {}, 422, "score_not_integer"),
    ({"rater": "a", "item": "ITEM", "adherence": "4", "aesthetics": 3}, {}, 422, "score_not_integer"),
    ({"rater": "a", "item": "ITEM", "adherence": True, "aesthetics": 3}, {}, 422, "score_not_integer"),
    ({"rater": "a", "item": "ghost", "adherence": 3, "aesthetics": 3}, {}, 404, "unknown_item"),
    ({"rater": "a", "item": "ITEM", "adherence": 3, "aesthetics": 3, "x": 1}, {}, 400, "unknown_field"),
    ({"rater": "a", "item": "ITEM", "adherence": 3}, {}, 400, "missing_field"),
    ({"rater": "../etc", "item": "ITEM", "adherence": 3, "aesthetics": 3}, {}, 400, "bad_rater"),
    ({"rater": "a" * 65, "item": "ITEM", "adherence": 3, "aesthetics": 3}, {}, 400, "bad_rater"),
    ([1, 2], {}, 400, "not_an_object"),
    (b"{not json", {}, 400, "bad_json"),
    (b"\xff\xfe", {}, 400, "bad_json"),
    (b"x" * 5000, {}, 413, "body_too_large"),
    ({"rater": "a", "item": "ITEM", "adherence": 3, "aesthetics": 3}, {"Content-Type": "text/plain"}, 415, "json_only"),
    ({"rater": "a", "item": "ITEM", "adherence": 3, "aesthetics": 3}, {"Origin": "http://evil.example"}, 403, "cross_origin"),
    ({"rater": "a", "item": "ITEM", "adherence": 3, "aesthetics": 3}, {"Host": "evil.example:80"}, 421, "host_not_loopback"),
]
BAD_GETS = ["/img/../../etc/passwd", "/img/0/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/img/99999/source",
            "/img/0/mask", "/img/-1/source", "/page.html", "/../pyproject.toml", "/static/../cli.py"]  # fmt: skip


def test_bad_requests_are_refused_with_the_reason_and_counted(rate_run, tmp_path):
    run_dir, _ = rate_run
    out = tmp_path / "r.parquet"
    srv = RateServer(run_dir, out, n=5, seed=0, port=0).start()
    try:
        item = srv.sample.items[0].id
        for body, headers, status, reason in BAD_POSTS:
            if isinstance(body, dict):
                body = {k: (item if v == "ITEM" else v) for k, v in body.items()}
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            r = call(srv, "POST", "/api/rate", raw=raw, headers=headers)
            assert (r[0], _json(r)["error"]) == (status, reason), (body, headers)
        for path in BAD_GETS:
            r = call(srv, "GET", path)
            assert r[0] == 404 and b"root:" not in r[2] and b"[project]" not in r[2], path
        assert call(srv, "GET", "/api/state?rater=%3Cscript%3E")[0] == 400
        assert not out.exists()  # nothing refused was written
        refused = dict(srv.app.refused)
    finally:
        srv.close()
    want: dict = {}
    for *_, reason in BAD_POSTS:
        want[reason] = want.get(reason, 0) + 1
    want["not_found"], want["bad_rater"] = len(BAD_GETS), want["bad_rater"] + 1
    assert refused == want


def test_refuses_other_runs_samples_files_and_a_second_server(rate_run, tmp_path, capsys):
    run_dir, _ = rate_run
    out = tmp_path / "r.parquet"
    srv = RateServer(run_dir, out, n=5, seed=0, port=0)
    try:
        srv.store.put("alice", srv.sample.items[0].id, 3, 4)
        with pytest.raises(StoreError, match="in use by another"):
            RateServer(run_dir, out, n=5, seed=0, port=0)
    finally:
        srv.close()
    with pytest.raises(StoreError, match="another sample"):
        RateServer(run_dir, out, n=5, seed=1, port=0)
    other = tmp_path / "other_run"
    shutil.copytree(run_dir, other)
    m = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**m, "started": "2001-01-01T00:00:00+00:00"}))
    assert main(["rate", str(other), "--n", "5", "--out", str(out), "--port", "0"]) == 2
    assert "holds ratings of another run" in capsys.readouterr().err
    (tmp_path / "notours.parquet").write_bytes(b"PAR1 nonsense")
    with pytest.raises(StoreError, match="not a Parquet file"):
        RateServer(run_dir, tmp_path / "notours.parquet", n=5, port=0)
    (other / "manifest.json").unlink()
    with pytest.raises(SampleError, match="not a finished run"):
        RateServer(other, tmp_path / "x.parquet", n=5, port=0)
    assert _file_rows(out)[0]["adherence"] == 3  # refused starts left the file alone


def test_off_loopback_every_request_needs_the_token_and_it_is_never_logged(rate_run, tmp_path, caplog, capfd):
    run_dir, _ = rate_run
    caplog.set_level("DEBUG")
    srv = RateServer(run_dir, tmp_path / "r.parquet", n=4, host="0.0.0.0", port=0).start()
    try:
        token = srv.app.token
        assert token and len(token) >= 32
        for path in ("/", "/api/state?rater=a", "/img/0/source"):
            r = call(srv, "GET", path)
            assert (r[0], _json(r)["error"]) == (401, "token_required"), path
        assert call(srv, "GET", "/?token=wrong")[0] == 401
        r = call(srv, "GET", f"/?token={token}&rater=alice")
        assert r[0] == 303 and r[1]["Location"] == "/?rater=alice" and "HttpOnly" in r[1]["Set-Cookie"]
        cookie = {"Cookie": r[1]["Set-Cookie"].split(";")[0]}
        assert call(srv, "GET", "/api/state?rater=alice", headers=cookie)[0] == 200
        body = {"rater": "alice", "item": srv.sample.items[0].id, "adherence": 5, "aesthetics": 4}
        assert call(srv, "POST", "/api/rate", body)[0] == 401
        assert call(srv, "POST", "/api/rate", body, headers=cookie)[0] == 200
    finally:
        srv.close()
    logged = caplog.text + "".join(capfd.readouterr())
    assert "/api/state" in logged and token not in logged  # requests are logged, the token is not


def test_cli_prints_the_token_once_and_stops_cleanly(rate_run, tmp_path):
    run_dir, _ = rate_run
    out = tmp_path / "r.parquet"
    p = subprocess.Popen([sys.executable, "-m", "nhr_ray", "rate", str(run_dir), "--n", "4", "--out", str(out),
                          "--host", "0.0.0.0", "--port", "0", "--rater", "cli"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        lines = []
        while not lines or not lines[-1].startswith("rating page:"):
            line = p.stdout.readline()
            assert line, f"server exited: {p.stderr.read()}"
            lines.append(line)
        url = lines[-1].split()[2]
        port, token = int(url.split(":")[2].split("/")[0]), url.split("?token=")[1]
        srv = type("S", (), {"port": port})
        cookie = {"Cookie": call(srv, "GET", f"/?token={token}")[1]["Set-Cookie"].split(";")[0]}
        item = _json(call(srv, "GET", "/api/state?rater=cli", headers=cookie))["items"][0]["id"]
        assert call(srv, "POST", "/api/rate", {"rater": "cli", "item": item, "adherence": 2, "aesthetics": 2}, headers=cookie)[0] == 200
        assert call(srv, "POST", "/api/rate", {"rater": "cli", "item": item, "adherence": 9, "aesthetics": 2}, headers=cookie)[0] == 422
    finally:
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=60)
    stdout = "".join(lines) + rest
    assert p.returncode == 0, err
    assert "WARNING: listening on 0.0.0.0, not loopback" in err and "SIMULATED RUN" in stdout
    assert (stdout + err).count(token) == 1  # printed once, in the URL
    assert "1 ratings by {'cli': 1}" in rest and "refused requests by reason: {'score_out_of_range': 1}" in rest
    assert "0 of 4 items have 2 or more raters" in rest
    assert [(r["rater"], r["adherence"]) for r in _file_rows(out)] == [("cli", 2)]


def test_calibrate_against_the_run(rate_run, tmp_path, capsys):
    run_dir, _ = rate_run
    out = tmp_path / "r.parquet"
    srv = RateServer(run_dir, out, n=10, seed=5, include_rejected=0.5, port=0)
    rng = np.random.default_rng(0)
    try:
        for rater in ("alice", "bob", "carol"):
            for it in srv.sample.items:
                srv.store.put(rater, it.id, int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    finally:
        srv.close()
    assert main(["calibrate", str(out), "--run", str(run_dir), "--out", str(tmp_path / "c")]) == 0
    rep = json.loads((tmp_path / "c" / "calibration.json").read_text())
    assert rep["n_triplets"] == 10 and rep["n_raters"] == 3 and rep["excluded"]["ratings_without_prediction"] == 0
    assert any("validator scores recorded in" in n for n in rep["notes"])
    # an id the run does not hold is dropped and counted; a single rater is said out loud
    rows = [r for r in _file_rows(out) if r["rater"] == "alice"]
    ghost = pa.Table.from_pylist(rows + [dict(rows[0], triplet="ghost")])
    pq.write_table(ghost, tmp_path / "g.parquet")
    capsys.readouterr()
    assert main(["calibrate", str(tmp_path / "g.parquet"), "--run", str(run_dir), "--out", str(tmp_path / "c2")]) == 0
    printed = capsys.readouterr().out
    assert "dropped 1: ratings_unknown_triplet" in printed and "one rater only (alice)" in printed
    # ratings of another run are refused, naming both runs
    other = pa.Table.from_pylist([dict(r, run_id="0123456789abcdef") for r in rows])
    pq.write_table(other, tmp_path / "o.parquet")
    assert main(["calibrate", str(tmp_path / "o.parquet"), "--run", str(run_dir), "--out", str(tmp_path / "c3")]) == 2
    err = capsys.readouterr().err
    assert "another run: run_id {'0123456789abcdef': 10}" in err and srv.sample.identity["run_id"] in err


def test_calibrate_refuses_a_simulated_judge_on_images_the_simulation_did_not_make(rate_run, tmp_path, capsys):
    """The run's recorded validator scores are a simulated judge's. On the simulation's own run that is
    allowed and labelled; on a run whose editor was real (its manifest says so) it is refused with
    exit 2 unless --allow-simulated-judge, which the printed line and calibration.json then name."""
    run_dir, _ = rate_run
    ratings = tmp_path / "r.parquet"
    srv = RateServer(run_dir, ratings, n=6, seed=2, include_rejected=0.5, port=0)
    try:
        for rater in ("alice", "bob"):
            for k, it in enumerate(srv.sample.items):
                srv.store.put(rater, it.id, 1 + k % 5, 5 - k % 5)
    finally:
        srv.close()
    capsys.readouterr()
    assert main(["calibrate", str(ratings), "--run", str(run_dir), "--out", str(tmp_path / "own")]) == 0
    assert "SIMULATED validator (roles.validator.backend: sim) on data the simulation made" in capsys.readouterr().out
    rep = json.loads((tmp_path / "own" / "calibration.json").read_text())
    assert rep["judge"] == {"simulated_judge": True, "allow_simulated_judge": False, "made_by_simulation": True}
    mixed = tmp_path / "mixed"
    shutil.copytree(run_dir, mixed)
    m = json.loads((mixed / "manifest.json").read_text())
    m["simulated_roles"] = [r for r in m["simulated_roles"] if r != "editor"]  # as if a real editor made the edits
    (mixed / "manifest.json").write_text(json.dumps(m))
    assert main(["calibrate", str(ratings), "--run", str(mixed), "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert "refusing a SIMULATED judge" in err and "real editor" in err and "--allow-simulated-judge" in err
    assert not (tmp_path / "no").exists()
    assert main(["calibrate", str(ratings), "--run", str(mixed), "--out", str(tmp_path / "yes"), "--allow-simulated-judge"]) == 0
    assert "data the simulation did NOT make (--allow-simulated-judge)" in capsys.readouterr().out
    rep = json.loads((tmp_path / "yes" / "calibration.json").read_text())
    assert rep["judge"] == {"simulated_judge": True, "allow_simulated_judge": True, "made_by_simulation": False}


BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _keys(page, *keys):
    for k in keys:
        page.keyboard.press(k)
    page.wait_for_function("() => document.body.dataset.ready === '1' && document.body.dataset.busy !== '1'", timeout=30_000)
    return int(page.evaluate("document.body.dataset.index")), int(page.evaluate("document.body.dataset.rated"))


def _open(page, url):
    page.goto(url)
    return _keys(page)


@needs_browser
def test_a_person_rates_with_the_keyboard_in_chromium(rate_run, tmp_path):
    from playwright.sync_api import sync_playwright

    run_dir, _ = rate_run
    out, kw = tmp_path / "r.parquet", {"n": 10, "seed": 11, "include_rejected": 0.3}
    srv = RateServer(run_dir, out, port=0, **kw).start()
    port, sample = srv.port, srv.sample
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)  # a fresh profile per launch
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            assert _open(page, f"{srv.url}?rater=alice") == (0, 0)
            first = sample.items[0]
            assert page.text_content("#instruction") == first.instruction  # model text shown as text, markup inert
            assert page.locator("#instruction *").count() == 0 and page.title() == "nhr-ray rating"
            page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            assert "SIMULATED RUN" in page.text_content("#sim") and "Backspace" in page.text_content("#help")
            assert _keys(page, "4", "5", "3", "2", "5", "5") == (3, 3)
            assert _keys(page, "Backspace") == (2, 2)  # back one item, its rating deleted
            assert _keys(page, "1", "2") == (3, 3)  # rated again
            assert _keys(page, "2", "Backspace", "4", "4") == (4, 4)  # a half-entered score cleared
            assert _keys(page, "ArrowLeft", "ArrowLeft") == (2, 4)
            on = page.evaluate("[...document.querySelectorAll('.scale button.on')].map(b => b.textContent)")
            assert on == ["1", "2"]  # a rated item shows its scores
            assert _keys(page, "ArrowRight", "ArrowRight", "ArrowRight") == (4, 4)  # no passing the unrated item
            page.reload()
            assert _keys(page) == (4, 4)  # resumes at the first unrated item
            assert _keys(page, "3", "3", "2", "4") == (6, 6)
            srv.close()
            srv = RateServer(run_dir, out, port=port, **kw).start()  # the server restarts on the same address
            page.reload()
            assert _keys(page) == (6, 6)
            assert _keys(page, "5", "1") == (7, 7)
            other = browser.new_page()
            assert _open(other, f"{srv.url}?rater=bob") == (0, 0)  # same items, same order, own progress
            assert other.text_content("#instruction") == first.instruction
            assert _keys(other, "2", "2") == (1, 1)
            named = browser.new_page()
            named.goto(srv.url)  # no rater in the URL and no --rater: the page asks for a name
            named.fill("#name", "carol")
            named.press("#name", "Enter")
            assert _keys(named) == (0, 0) and named.text_content("#rater") == "carol"
        finally:
            browser.close()
            srv.close()
    assert problems == []  # no script error, no CSP violation
    rows = _file_rows(out)
    ids = [i.id for i in sample.items]
    got = {(r["rater"], ids.index(r["triplet"])): (r["adherence"], r["aesthetics"]) for r in rows}
    assert got == {("alice", 0): (4, 5), ("alice", 1): (3, 2), ("alice", 2): (1, 2), ("alice", 3): (4, 4),
                   ("alice", 4): (3, 3), ("alice", 5): (2, 4), ("alice", 6): (5, 1), ("bob", 0): (2, 2)}  # fmt: skip
    assert len(rows) == 8 and {r["position"] for r in rows if r["rater"] == "alice"} == set(range(7))
