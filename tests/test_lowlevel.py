import numpy as np

from nhr_ray.config import load_config
from nhr_ray.stages.lowlevel import lowlevel_check

CFG = load_config().lowlevel


def _img(h=200, w=300, v=100):
    return np.full((h, w, 3), v, np.uint8)


def test_clean_local_edit_passes():
    a, b = _img(), _img()
    b[50:90, 60:120] = 230
    keep, reason, s = lowlevel_check(a, b, CFG)
    assert keep and reason == "ok" and s["components"] == 1 and s["changed_pixels"] == 40 * 60


def test_threshold_is_strictly_greater_than_40():
    a, b = _img(), _img()
    b[:10, :10] = 140  # |d| = 40: not changed
    keep, reason, _ = lowlevel_check(a, b, CFG)
    assert (keep, reason) == (False, "no_change")
    b[:10, :10] = 141  # 41: changed
    assert lowlevel_check(a, b, CFG)[0]


def test_no_change_and_size_mismatch():
    a = _img()
    noisy = np.clip(a.astype(int) + np.random.default_rng(0).integers(-5, 6, a.shape), 0, 255).astype(np.uint8)
    assert lowlevel_check(a, noisy, CFG)[1] == "no_change"
    assert lowlevel_check(a, _img(208, 300), CFG)[1] == "size_mismatch"


def test_scattered_noise_is_dropped():
    a, b = _img(), _img()
    # isolated pixels on a lattice: every component has one pixel, each < 0.5 % of the changed ones
    b[::4, ::4] = 255
    keep, reason, s = lowlevel_check(a, b, CFG)
    assert (keep, reason) == (False, "scattered_noise") and s["largest_component"] == 1


def test_four_connectivity_keeps_diagonals_apart():
    a, b = _img(), _img()
    idx = np.arange(150)
    b[idx, idx] = 255  # a diagonal line: 150 components under 4-connectivity, 1 under 8
    keep, reason, s = lowlevel_check(a, b, CFG)
    assert s["components"] == 150 and (keep, reason) == (True, "ok")  # 1/150 = 0.67 % >= 0.5 %
    cfg8 = CFG.model_copy(update={"connectivity": 8})
    assert lowlevel_check(a, b, cfg8)[2]["components"] == 1
