"""The run's summary line prints reserved GPU-hours (what the cluster bills) beside busy GPU-hours."""

from nhr_ray.cli import run_summary


def test_summary_prints_reserved_beside_busy():
    m = {"triplets": {"final_forward": 10, "final_inverse": 8, "forward": 10}, "wall_seconds": 12.34,
         "gpu_hours": {"busy_gpu_hours": 1.5, "reserved_gpu_hours": 2.0}}  # fmt: skip
    line = run_summary(m, "OUT")
    assert line == "18 triplets in OUT/data (12.3 s, 1.50 busy GPU-hours, 2.00 reserved GPU-hours)"


def test_summary_names_simulated_roles_and_labels_their_gpu_hours():
    m = {"triplets": {"final_forward": 2}, "wall_seconds": 1.0, "simulated_roles": ["designer", "editor"],
         "gpu_hours": {"busy_gpu_hours": 1.5, "reserved_gpu_hours": 2.0, "by_role_gpu_hours": {"editor": 0.5, "gate": 1.0}}}
    assert run_summary(m, "OUT") == ("2 triplets in OUT/data (1.0 s, 1.50 busy GPU-hours (0.50 of them simulated "
                                     "estimates), 2.00 reserved GPU-hours) (SIMULATED: designer, editor)")  # fmt: skip
    m["gpu_hours"]["by_role_gpu_hours"] = {"editor": 1.5}
    assert "1.50 busy GPU-hours (simulated estimate), " in run_summary(m, "OUT")
    m["simulated_roles"] = []  # an all-real run: nothing labelled
    assert run_summary(m, "OUT") == "2 triplets in OUT/data (1.0 s, 1.50 busy GPU-hours, 2.00 reserved GPU-hours)"


def test_summary_without_reservations():
    m = {"triplets": {}, "wall_seconds": 1.0, "gpu_hours": {"busy_gpu_hours": 0.0, "reserved_gpu_hours": 0.0}}
    assert run_summary(m, "OUT") == "0 triplets in OUT/data (1.0 s, 0.00 busy GPU-hours, 0.00 reserved GPU-hours)"
