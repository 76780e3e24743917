"""The static HTML run report: content, escaping of model text, and a real headless Chromium that
loads it without console errors, renders every image and paints a non-blank page.

The browser tests need `chromium` on PATH (`apt-get install -y chromium`); without it they are
skipped with that reason, and the content and escaping tests still run."""

import re
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import small_config
from nhr_ray.cli import main

EVIL_INSTRUCTION = '<script>document.title="pwned"</script>Remove the <b>cat</b> & "dog"'
EVIL_RAW = '<img src=x onerror="document.title=\'pwned\'"> {"adherence": 2}'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)")


def _poison(path, column, value, where):
    t = pq.read_table(path)
    vals = t.column(column).to_pylist()
    i = next(k for k, r in enumerate(t.to_pylist()) if where(r))
    vals[i] = value
    pq.write_table(t.set_column(t.schema.get_field_index(column), column, pa.array(vals, t.schema.field(column).type)), path)


@pytest.fixture(scope="module")
def report(ray_local, shared_run, tmp_path_factory):
    # small_config()'s run, mined once per session (conftest.shared_run): this module's own copy
    out = shared_run("small", small_config(), copy_to=tmp_path_factory.mktemp("rep") / "run")[0]
    # model text is untrusted: plant markup in an instruction and in a judge's raw answer
    _poison(sorted((out / "data").glob("triplets-*.parquet"))[0], "edit_instruction", EVIL_INSTRUCTION, lambda r: True)
    _poison(sorted((out / "data").glob("attempts-*.parquet"))[0], "validation_raw", EVIL_RAW,
            lambda r: r["final_stage"] == "validation" and not r["kept"])  # fmt: skip
    html = out / "report.html"
    assert main(["report", str(out), "--out", str(html)]) == 0
    return out, html


def test_content_and_escaping(report):
    out, html = report
    text = html.read_text()
    assert "<script" not in text.lower() and "onerror=" not in text.replace("onerror=&quot;", "")
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;Remove the &lt;b&gt;cat&lt;/b&gt; &amp;" in text
    assert "&lt;img src=x onerror=" in text
    for needle in ("plausibility gate", "backward consistency", "Cost by role", "editor", "Success rate by category",
                   "<svg", "Kept triplets", "Rejects by reason", "validation: low_adherence",
                   "Aspect buckets", "drawn: paper", "target %", "reserved GPU-hours (the bill)"):  # fmt: skip
        assert needle in text, needle
    # every role of this run is simulated: a visible banner before anything else says so
    banner = text.split("<body>", 1)[1].split("<h1>", 1)[0]
    assert banner.startswith('<p class="simulated"><b>SIMULATED DATA, NOT FOR TRAINING.</b>')
    assert "designer, t2i, gate, editor, prefilter, validator, inverter" in banner
    assert "validator (simulated: estimated GPU-hours)" in text
    # self-contained: no reference to anything outside the file
    srcs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_banner_escapes_role_names_and_is_absent_for_an_all_real_run():
    from nhr_ray.products.report import simulated_banner

    assert simulated_banner({"simulated_roles": []}) == ""
    assert "&lt;script&gt;x" in simulated_banner({"simulated_roles": ["<script>x"]})
    assert "<script" not in simulated_banner({"simulated_roles": ["<script>x"]})


def _chromium(*args, timeout=90):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=1",
                           *args], capture_output=True, text=True, timeout=timeout)  # fmt: skip


@needs_browser
def test_loads_without_console_errors_and_every_image_renders(report, tmp_path):
    out, html = report
    r = _chromium("--dump-dom", html.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    assert "<title>nhr-ray run report" in r.stdout and "pwned" not in r.stdout.split("</title>")[0]
    assert not re.search(r"CONSOLE|Uncaught", r.stderr), [ln for ln in r.stderr.splitlines() if "CONSOLE" in ln][:5]
    # a copy with a probe script counts images that failed to decode once the page has loaded, and logs
    # one console line (which also shows console messages would have been caught above)
    probe = ('<script>addEventListener("load",()=>{const b=[...document.images].filter(i=>!(i.complete&&i.naturalWidth>0));'
             'document.body.dataset.broken=b.length;document.body.dataset.images=document.images.length;'
             'console.log("probe-ran")})</script></body>')  # fmt: skip
    check = tmp_path / "check.html"
    check.write_text(html.read_text().replace("</body>", probe))
    r = _chromium("--dump-dom", check.as_uri())
    body = re.search(r"<body([^>]*)>", r.stdout).group(1)
    n_img = html.read_text().count("<img ")
    assert n_img > 10 and f'data-images="{n_img}"' in body and 'data-broken="0"' in body, body
    assert "probe-ran" in r.stderr


@needs_browser
def test_screenshot_is_not_blank(report, tmp_path):
    out, html = report
    shot = tmp_path / "shot.png"
    r = _chromium(f"--screenshot={shot}", "--window-size=1200,1600", html.as_uri())
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    px = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert px.shape[:2] == (1600, 1200)
    assert px.std() > 20  # text, bars and thumbnails, not a blank page
    assert (np.abs(px - [74, 120, 181]).sum(axis=2) < 30).sum() > 1000  # the funnel's bars were painted
