"""bench/contention.py times nothing it has not validated, and stops the busy processes it starts."""
import numpy as np
import pytest

from bench import contention, workloads


def tiny(check_epochs):
    rng = np.random.default_rng(0)
    X, Xv = rng.random((64, 5), dtype=np.float32), rng.random((32, 5), dtype=np.float32)
    data = (X, (X[:, 0] > 0.5).astype(np.float32)), (Xv, (Xv[:, 0] > 0.5).astype(np.float32))
    return contention.Workload("tiny", data, workloads.ION_4_4_1, "bce", 16, check_epochs, 2)


def test_a_fit_that_learns_nothing_yet_is_not_validated():
    pytest.importorskip("torch")
    with pytest.raises(SystemExit, match="^not validated .*tiny: validation loss after 1 epochs"):
        contention.validate(tiny(1))


def test_the_busy_processes_run_until_killed():
    children = contention.spinning(2)
    try:
        assert [child.poll() for child in children] == [None, None]
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert all(child.returncode is not None for child in children)


def test_small_work_is_reported_as_left_alone():
    assert tiny(1).untouched()
    assert not contention.Workload("wide", contention.wide_data(rows=512), workloads.WINE_3X512, "mae", 256, 1,
                                   1).untouched()
