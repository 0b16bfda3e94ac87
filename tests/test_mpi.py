"""Data-parallel training over MPI (`mpiexec -n 2`): the same model as one process, identical weights on
every rank, rank 0 alone printing and writing, and a failing rank ending the job with one message."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mpi_fit
from nbtrain import Sequential, layers
from nbtrain.model import load_network
from nbtrain.errors import DistributedError

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
TIMEOUT = 300  # seconds; a launch on an empty compile cache compiles the MPI versions of the epoch, about 30 s


def have_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return MPIEXEC is not None


needs_mpi = pytest.mark.skipif(not have_mpi(), reason="needs the mpi extra: pip install 'nbtrain[mpi]'")


def mpiexec(*ranks, cwd=None):
    """Run one or more programs under mpiexec (MPMD with ':' between them); returns the CompletedProcess."""
    command = [MPIEXEC]
    for i, (count, argv) in enumerate(ranks):
        command += ([":"] if i else []) + ["-n", str(count)] + [str(a) for a in argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)


@needs_mpi
def test_two_ranks_give_the_one_process_model(tmp_path):
    """Plain, dropout and batchnorm fits (uneven shares, a partial last batch, batches of one row)."""
    result = mpiexec((2, [sys.executable, Path(mpi_fit.__file__), tmp_path]))
    assert result.returncode == 0, result.stderr[-2000:]
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    for key in ranks[0].files:
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)  # identical on every rank
    for case in mpi_fit.CASES:
        history, weights = mpi_fit.fit(case)
        for key, values in history.items():
            np.testing.assert_allclose(ranks[0][f"{case}/history/{key}"], values, rtol=1e-5, err_msg=f"{case} {key}")
        for i, w in enumerate(weights):
            np.testing.assert_allclose(ranks[0][f"{case}/weight/{i}"], w, rtol=1e-4, atol=1e-6, err_msg=case)


@needs_mpi
def test_a_second_mpi_run_takes_the_epoch_from_the_compile_cache(tmp_path):
    """MPI_Allreduce is called through an address read at run time, so the MPI epoch is cached like the rest: the
    run after a first one (which fills the cache, or finds it filled) compiles train_epoch on no rank."""
    import json
    script = Path(__file__).resolve().parent / "mpi_cache.py"
    runs = []
    for run in range(2):
        (tmp_path / str(run)).mkdir()
        result = mpiexec((2, [sys.executable, script, tmp_path / str(run)]))
        assert result.returncode == 0, result.stderr[-2000:]
        runs.append([json.loads((tmp_path / str(run) / f"rank{r}.json").read_text()) for r in range(2)])
    assert all(r["misses"] == 0 and r["hits"] >= 1 for r in runs[1]), runs


def table(path, rows=240):
    """A CSV with a string category, missing cells and a numeric target."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.uniform(0, 10, rows),
                          "kind": rng.choice(["x", "y", "z"], rows)})
    frame["target"] = frame["a"] * 2 + frame["b"] / 3 + frame["kind"].map({"x": 0, "y": 1, "z": -1})
    frame.loc[rng.random(rows) < 0.05, "b"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "kind"] = np.nan
    frame.to_csv(path, index=False)
    return path


FIT = ["-t", "target", "--layers", "16,16", "--dropout", "0.2", "--batchnorm", "--epochs", "6", "--batch-size", "32",
       "--patience", "0"]


@needs_mpi
def test_cli_over_two_ranks_matches_one_process(tmp_path):
    data = table(tmp_path / "data.csv")
    nbtrain = [sys.executable, "-m", "nbtrain", "fit", data, *FIT]
    single = subprocess.run([str(a) for a in nbtrain + ["--out", tmp_path / "one"]], capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert single.returncode == 0, single.stderr
    result = mpiexec((2, nbtrain + ["--distributed", "mpi", "--out", tmp_path / "two"]))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("restoring the weights of epoch") == 1
    assert "data-parallel over 2 MPI ranks" in result.stdout
    one, two = (pd.read_csv(tmp_path / run / "history.csv") for run in ("one", "two"))
    pd.testing.assert_frame_equal(two, one, rtol=1e-5)
    models = [load_network(tmp_path / run / "model.nbt") for run in ("one", "two")]
    assert models[0].metadata["preprocessing"] == models[1].metadata["preprocessing"]
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


@needs_mpi
@pytest.mark.parametrize("size", [2, 3])
def test_ranks_reading_their_shares_prepare_as_one_process(tmp_path, size, monkeypatch):
    """Medians, quartiles, means, categories, labels and counts merged from the shares equal one process's exactly (a
    text column, gaps, a column of numbers with a word in one share, CSV and Parquet; standard and robust scaling),
    and so do the arrays (with a test split held out: its rows too)."""
    import mpi_prepare
    from nbtrain.tabular import tablefile
    from nbtrain.tabular.streaming import prepare_file
    from test_streaming import shop
    frame = shop(157)
    frame.to_csv(tmp_path / "shop.csv", index=False)
    paths = [(tmp_path / "shop.csv", "y", 0.0, "standard"), (tmp_path / "shop.csv", "price", 0.2, "robust")]
    if have_parquet():
        frame.assign(b=frame["b"].astype(str)).to_parquet(tmp_path / "shop.parquet", row_group_size=20)
        paths.append((tmp_path / "shop.parquet", "c", 0.15, "robust"))
    monkeypatch.setattr(tablefile, "CHUNK_ROWS", 7)
    for path, target, test_split, scaling in paths:
        out = tmp_path / f"{path.suffix[1:]}-{target}"
        out.mkdir()
        result = mpiexec((size, [sys.executable, Path(mpi_prepare.__file__), path, target, out, test_split, scaling]))
        assert result.returncode == 0, result.stderr[-2000:]
        one = mpi_prepare.arrays(prepare_file(path, target, scaling=scaling, test_split=test_split)[1])
        assert ("x_test" in one) == bool(test_split)
        for rank in range(size):
            got = np.load(out / f"rank{rank}.npz")
            for key, value in one.items():
                np.testing.assert_array_equal(got[key], value, err_msg=f"{path.name} {target} rank {rank} {key}")


@needs_mpi
def test_a_damaged_line_in_one_share_stops_every_rank_with_one_message(tmp_path):
    data = table(tmp_path / "data.csv")
    with open(data, "a") as handle:
        handle.write("1,2,x,4,5,6\n")  # too many fields, in the last rank's share only
    result = mpiexec((2, [sys.executable, "-m", "nbtrain", "fit", data, *FIT, "--distributed", "mpi", "--out",
                          tmp_path / "run"]))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: rank 1: ") and "not a readable CSV table" in errors[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def have_parquet():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


@needs_mpi
def test_a_failing_rank_ends_the_job_with_one_message(tmp_path):
    data = table(tmp_path / "data.csv")
    fit = [sys.executable, "-m", "nbtrain", "fit"]
    rest = [*FIT, "--distributed", "mpi", "--out", tmp_path / "run"]
    result = mpiexec((1, fit + [data, *rest]), (1, fit + [tmp_path / "absent.csv", *rest]))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: rank 1: file not found: {tmp_path / 'absent.csv'}"]
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_missing_mpi_extra_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    model = Sequential([layers.Dense(1, input_shape=[2])])
    model.compile(loss="mae", device="cpu")
    with pytest.raises(DistributedError, match=r"pip install 'nbtrain\[mpi\]'"):
        model.fit(np.zeros((4, 2)), np.zeros(4), distribute="mpi", verbose=0)
    with pytest.raises(ValueError, match="distribute must be None or 'mpi'"):
        model.fit(np.zeros((4, 2)), np.zeros(4), distribute="nccl", verbose=0)


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_shares_of_a_table_read_as_the_whole(tmp_path, size):
    """What each rank reads (CSV byte ranges cut at line ends, Parquet runs of row groups) concatenates to the
    table one process reads, index column, quoted delimiters and a BOM included."""
    from nbtrain.tabular.reading import check_table, read_table
    from nbtrain.tabular.tablefile import TableFile
    frame = pd.read_csv(table(tmp_path / "plain.csv"))
    frame["note"] = [f"a, {i}" for i in range(len(frame))]  # quoted fields with the delimiter inside
    frame.to_csv(tmp_path / "indexed.csv", encoding="utf-8-sig")  # an unnamed index column and a BOM
    paths = [tmp_path / "plain.csv", tmp_path / "indexed.csv"]
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "data.parquet", row_group_size=50)
    paths.append(tmp_path / "data.parquet")
    for path in paths:
        parts = [chunk for rank in range(size) for chunk in TableFile(path, share=(rank, size)).chunks()]
        pd.testing.assert_frame_equal(check_table(pd.concat(parts, ignore_index=True), str(path)), read_table(path))
