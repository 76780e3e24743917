from nhr_ray.runtime.funnel import Funnel
from nhr_ray.runtime.progress import Progress


def test_progress_line_when_not_a_terminal(capsys):
    f = Funnel()
    f.tally("edit").keep(10)
    f.tally("validation").keep(3)
    f.tally("validation").drop("low_adherence", 4)
    p = Progress(enabled=True)  # pytest's captured stdout is not a TTY: one line every 10 s
    p.last = -1e9
    p.update(f, {"spent_gpu_hours": 1.5, "budget_gpu_hours": 4.0}, exhausted=False)
    out = capsys.readouterr().out
    assert "edit 10/10" in out and "validation 3/7" in out and "edits kept 3" in out and "GPU-h 1.50" in out
    p.update(f, {}, exhausted=False)  # rate-limited: nothing more within 10 s
    assert capsys.readouterr().out == ""


def test_progress_table_has_counts_and_budget():
    f = Funnel()
    f.tally("validation").keep(2)
    p = Progress(enabled=False)
    t = p._table(f, {"spent_gpu_hours": 0.5, "budget_gpu_hours": 2.0, "jobs_issued": 9}, exhausted=True)
    assert "edits kept so far" in t.caption and "0.50 / 2.00" in t.caption and "[budget spent]" in t.caption
