"""The dataset card's tables hold values from the run: a hostile one can neither break a table nor add
markup, and categories outside the known set are counted as `unknown`. Checked by rendering the card
with a real Markdown parser (markdown-it-py, with GFM tables, as the Hub renders cards)."""

from types import SimpleNamespace

from markdown_it import MarkdownIt

from conftest import small_config
from nhr_ray.products.card import cell, write_card

EVIL = "x | y\n<img src=x onerror=alert(1)>"


def test_hostile_cells_stay_one_cell_of_plain_text(tmp_path):
    run = SimpleNamespace(
        config=small_config(),
        funnel={"table": [{"stage": "edits", "model": "sim | <b>x</b>", "count": 3, "change_pct": 1.0, "paper_change_pct": None}]},
        manifest={"versions": {"nhr-ray": "0.1.0", "evil": "[click](javascript:alert(1))"}},
    )
    summary = {"subsets": {"data": 10}, "categories": {EVIL: 3, "removal": 5, "made_up": 2, "other": 1},
               "kinds": {"forward": 10}, "note\\|": "`code` <script>alert(1)</script>"}  # fmt: skip
    md = write_card(run, tmp_path, "nhr-edit", summary).read_text()
    html = MarkdownIt("commonmark").enable("table").render(md.split("---", 2)[-1])
    assert "<img" not in html and "<script" not in html and "<b>" not in html and "href=" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" not in md  # categories outside the known set are not shown at all
    for table in html.split("<table>")[1:]:
        rows = table.split("</table>")[0].split("<tr>")[1:]
        widths = {r.count("<td") + r.count("<th") for r in rows}
        assert len(widths) == 1, table  # every row has the header's number of cells
    assert "<td>unknown</td>\n<td>5</td>" in html and "<td>removal</td>\n<td>5</td>" in html
    assert "<td>sim | &lt;b&gt;x&lt;/b&gt;</td>" in html and "<td>[click](javascript:alert(1))</td>" in html


def test_cell_escapes():
    assert cell(EVIL) == "x \\| y &lt;img src=x onerror=alert(1)&gt;"
    assert cell("a\\") == "a\\\\" and cell(None) == "" and cell(4.5) == "4.5"
