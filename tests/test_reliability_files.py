"""Nothing of the user's is deleted or replaced (issue 23): --overwrite replaces only a run folder's own files, a
folder that appears at --out during a run is kept, leftover cleaning deletes only what is provably dead (never
another container's or host's work), outputs are written through what is at their path, and sweeps stop on
SIGTERM and Ctrl-C as fits do, their workers with them."""
import os
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nbtrain import files
from nbtrain.errors import InputError
from nbtrain.files import FolderClaim, atomic_write
from nbtrain.model import load_network
from nbtrain.tabular import fit as tabular_fit
from nbtrain.tabular.runfolder import claim_run_folder
from test_reliability import TINY, assert_fails, fitted, listing, run, table  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent
HOUSES = ROOT / "data" / "houses.csv"
SWEEP = ["-t", "price_k", "--drop", "house_id", "--workers", "1", "--epochs", "2", "-q"]


def no_training(monkeypatch):
    """Make any training fail the test: a refusal must come before it."""
    def train(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(tabular_fit, "train", train)


def during_training(monkeypatch, action):
    """Run action() once training has begun, then train as usual: what another process does meanwhile."""
    train = tabular_fit.train

    def train_after(*args, **kwargs):
        action()
        return train(*args, **kwargs)
    monkeypatch.setattr(tabular_fit, "train", train_after)


def users_project(folder):
    """The issue's project folder: the data, notes and a subfolder of the user's."""
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("notes")
    (folder / "sub" / "thesis.tex").write_text("x")
    return folder


# ------------------------------------------------------------------------------------ --overwrite owns only its own
@pytest.mark.parametrize("command", ["fit", "sweep"])
def test_overwrite_refuses_a_folder_holding_files_nbtrain_did_not_write(table, tmp_path, monkeypatch, command):
    project = users_project(tmp_path / "proj")
    (project / "data.csv").write_bytes(table.read_bytes())
    (project / "model.nbt").write_text("an earlier model")  # nbtrain's own name: not what is refused
    before = listing(tmp_path)
    no_training(monkeypatch)
    args = (["fit", project / "data.csv", "-t", "y", *TINY] if command == "fit" else
            ["sweep", HOUSES, *SWEEP, "--trials", "1"])
    result = run(*args, "--out", project, "--overwrite")
    assert_fails(result, f"the run folder {project} holds data.csv, which nbtrain did not write; --overwrite "
                         "replaces only a run folder's own files")
    assert listing(tmp_path) == before


def test_overwrite_names_a_foreign_entry_inside_best(tmp_path):
    out = tmp_path / "sweep"
    (out / "best").mkdir(parents=True)
    (out / "leaderboard.csv").write_text("trial\n")
    (out / "best" / "model.nbt").write_text("m")
    (out / "best" / "mine.py").write_text("x")
    with pytest.raises(InputError, match=r"holds best/mine.py, which nbtrain did not write"):
        claim_run_folder(out, overwrite=True)
    (out / "best" / "mine.py").unlink()
    (out / "model.nbt").mkdir()  # a folder where nbtrain writes a file is not its own either
    with pytest.raises(InputError, match=r"holds model.nbt/, which nbtrain did not write"):
        claim_run_folder(out, overwrite=True)


def test_overwrite_replaces_a_run_folder_of_nbtrain_files_only(fitted, table, tmp_path):
    out = tmp_path / "run"
    result = run("fit", table, "-t", "y", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    (out / "leaderboard.csv").write_text("a sweep's file: nbtrain's too")
    result = run("fit", table, "-t", "y", *TINY, "--seed", "3", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "learning_curves.png", "model.nbt"]
    assert load_network(out / "model.nbt").metadata["training"]["options"]["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_overwrite_onto_an_unwritable_folder_fails_before_training(fitted, table, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.nbt").write_bytes((fitted / "model.nbt").read_bytes())
    fit = [sys.executable, "-m", "nbtrain", "fit", str(table), "-t", "y", "--layers", "4", "--epochs", "2", "-q",
           "--out", str(out), "--overwrite"]
    if os.geteuid() == 0:  # root writes anywhere: the folder becomes a read-only mount, as a volume can be
        fit = ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && '
               'exec "$@"', str(out), *fit]
    else:
        out.chmod(0o555)
    before = listing(tmp_path)
    result = subprocess.run(fit, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"Error: cannot replace the files of the run folder {out}: {out} is not writable"
    assert listing(tmp_path) == before


# ------------------------------------------------------------------------------ a folder appearing during the run
def test_a_folder_created_at_out_during_the_fit_is_kept_and_the_run_saved_beside_it(table, tmp_path, monkeypatch):
    out = tmp_path / "run"
    during_training(monkeypatch, lambda: users_project(out))
    result = run("fit", table, "-t", "y", *TINY, "--out", out)
    assert_fails(result, f"{out} appeared while this run was written, so it was left as it is; this run was saved "
                         f"to {out}.new instead")
    assert listing(out) == {"notes.txt": b"notes", "sub": None, "sub/thesis.tex": b"x"}
    assert load_network(tmp_path / "run.new" / "model.nbt").metadata["training"]["epochs_run"] >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.new"]  # no staging folder, no lock


def test_a_file_added_to_the_old_run_folder_during_an_overwrite_is_kept(fitted, table, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert run("fit", table, "-t", "y", *TINY, "--out", out).exit_code == 0
    during_training(monkeypatch, lambda: (out / "notes.txt").write_text("notes"))
    before = listing(out)
    (tmp_path / "run.new").mkdir()  # a name already taken: the next free one is used
    result = run("fit", table, "-t", "y", *TINY, "--out", out, "--overwrite")
    assert_fails(result, f"{out} holds notes.txt, which nbtrain did not write, so it was left as it is; this run "
                         f"was saved to {out}.new-2 instead")
    assert listing(out) == {**before, "notes.txt": b"notes"}
    assert (tmp_path / "run.new-2" / "model.nbt").exists()


def test_an_old_run_folder_replaced_by_another_during_an_overwrite_is_kept(table, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert run("fit", table, "-t", "y", *TINY, "--out", out).exit_code == 0

    def replace_it():
        (out / "model.nbt").rename(tmp_path / "moved.nbt")
        (out / "history.csv").unlink()
        (out / "learning_curves.png").unlink()
        out.rmdir()
        out.mkdir()
        (out / "model.nbt").write_text("someone else's")
    during_training(monkeypatch, replace_it)
    result = run("fit", table, "-t", "y", *TINY, "--out", out, "--overwrite")
    assert_fails(result, f"{out} was replaced by another folder while this run was written, so it was left as it")
    assert (out / "model.nbt").read_text() == "someone else's"


def test_a_folder_appearing_between_the_check_and_the_rename_is_not_replaced(tmp_path):
    claim = FolderClaim(tmp_path / "run")
    (Path(claim.stage) / "model.nbt").write_text("new")
    (tmp_path / "run").mkdir()  # empty: a plain rename would replace it without a word
    with pytest.raises(files.FolderChanged) as info:
        claim.commit()
    assert info.value.kept == f"{tmp_path / 'run'}.new" and list((tmp_path / "run").iterdir()) == []


def test_an_old_run_folder_removed_during_an_overwrite_is_simply_replaced(tmp_path):
    (tmp_path / "run").mkdir()
    claim = claim_run_folder(tmp_path / "run", overwrite=True)
    (Path(claim.stage) / "model.nbt").write_text("new")
    (tmp_path / "run").rmdir()
    claim.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and (tmp_path / "run" / "model.nbt").exists()


# ---------------------------------------------------------------------------- leftovers: only the provably dead
def dead_pid():
    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_leftover_cleaning_removes_only_this_hosts_and_namespaces_dead_writers(tmp_path):
    pid = dead_pid()
    dead = tmp_path / f".nbtrain-{pid}-{files.origin()}-abc.tmp"
    other_container = tmp_path / f".nbtrain-{pid}-0123456789ab-def.tmp"  # another PID namespace, host or boot
    unknown = tmp_path / f".nbtrain-{pid}-ghi.tmp"  # a name without its origin: cannot be proven dead
    for folder in (dead, other_container, unknown):
        folder.mkdir()
        (folder / "model.nbt").write_text("half a run")
    claim_run_folder(tmp_path / "run").abandon()
    atomic_write(tmp_path / "file.txt", lambda tmp: Path(tmp).write_text("x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["file.txt", other_container.name, unknown.name])


def test_a_writer_in_another_pid_namespace_keeps_its_staging_folder(tmp_path):
    """Issue 23's case 2 for real: a claim taken in a new PID namespace (where the writer's pid, 3999991, is no
    process here) survives the leftover cleaning of a claim in the same folder from this namespace, and commits."""
    writer = ("import sys; from nbtrain.files import FolderClaim; from pathlib import Path\n"
              f"claim = FolderClaim({str(tmp_path / 'theirs')!r}); print(claim.stage, flush=True)\n"
              "sys.stdin.readline(); (Path(claim.stage) / 'model.nbt').write_text('theirs'); claim.commit()\n")
    command = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "sh", "-c",
               f'echo 3999990 > /proc/sys/kernel/ns_last_pid && "$0" -c "$1"; exit $?', sys.executable, writer]
    try:
        other = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    except FileNotFoundError:
        pytest.skip("no unshare here")
    stage = other.stdout.readline().strip()
    if not stage:
        pytest.skip(f"cannot make a PID namespace here: {other.communicate()[1].strip()}")
    pid = Path(stage).name.split("-")[1]
    assert pid != "1" and not Path(f"/proc/{pid}").exists()  # no process of that pid here
    ours = claim_run_folder(tmp_path / "ours")  # cleans the leftovers beside it
    (Path(ours.stage) / "model.nbt").write_text("ours")
    ours.commit()
    assert Path(stage).is_dir()
    _, errors = other.communicate("go\n", timeout=60)
    assert other.returncode == 0, errors
    assert (tmp_path / "theirs" / "model.nbt").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours", "theirs"]


# ------------------------------------------------------------------------- outputs written through their path
def write_text(text):
    return lambda tmp: Path(tmp).write_text(text)


def test_an_existing_output_keeps_its_mode(tmp_path):
    path = tmp_path / "private.csv"
    path.write_text("old")
    path.chmod(0o600)
    atomic_write(path, write_text("new"))
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_output_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.nbt"
    target.write_text("old")
    link = tmp_path / "latest.nbt"
    link.symlink_to(target)
    atomic_write(link, write_text("new"))
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.nbt", "real"]  # the temporary was beside the target
    dangling = tmp_path / "next.nbt"
    dangling.symlink_to(tmp_path / "real" / "next.nbt")
    atomic_write(dangling, write_text("first"))
    assert dangling.is_symlink() and (tmp_path / "real" / "next.nbt").read_text() == "first"


def test_a_fifo_output_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader at the other end, as `cat pipe` would be
    try:
        atomic_write(fifo, write_text("through the pipe"))
        assert os.read(reader, 100) == b"through the pipe"  # a FIFO replaced by a file would read nothing here
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_device_output_is_written_into_not_replaced(fitted, table, tmp_path):
    """As root, on private copies of /dev/null and /dev/full (code that replaces a device would replace the
    system's otherwise, as the issue's did); as anyone else, on the system's own, which they cannot replace."""
    null, full = Path("/dev/null"), Path("/dev/full")
    if os.geteuid() == 0:
        null, full = tmp_path / "null", tmp_path / "full"
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    before = os.stat(null)
    result = run("predict", fitted / "model.nbt", table, "-o", null)
    assert result.exit_code == 0, result.output
    after = os.stat(null)
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert not [p for p in null.parent.iterdir() if p.name.startswith(".nbtrain-")]
    assert_fails(run("predict", fitted / "model.nbt", table, "-o", full), f"No space left on device: {full}")
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_export_to_a_pipe_or_standard_output_writes_the_model_there(fitted, tmp_path):
    pytest.importorskip("onnx")
    to_file = subprocess.run([sys.executable, "-m", "nbtrain", "export", str(fitted / "model.nbt"), "--onnx",
                              str(tmp_path / "m.onnx")], capture_output=True, timeout=120)
    assert to_file.returncode == 0, to_file.stderr
    to_stdout = subprocess.run([sys.executable, "-m", "nbtrain", "export", str(fitted / "model.nbt"), "--onnx",
                                "-"], capture_output=True, timeout=120)
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout == (tmp_path / "m.onnx").read_bytes() and not Path("-").exists()


# ------------------------------------------------------------------------------------ stop messages that are true
def test_a_second_ctrl_c_while_saving_says_nothing_was_saved_and_exits_130(fitted, table, tmp_path, monkeypatch):
    from nbtrain.tabular import runfolder
    out = tmp_path / "run"
    assert run("fit", table, "-t", "y", *TINY, "--out", out).exit_code == 0
    before = listing(tmp_path)

    def interrupted(*args):
        raise KeyboardInterrupt  # what Ctrl-C raises once the fit's own handler is gone
    monkeypatch.setattr(runfolder, "history_frame", interrupted)
    result = run("fit", table, "-t", "y", *TINY, "--out", out, "--overwrite")
    assert result.exit_code == 130
    assert result.stderr.strip() == "Training interrupted at once: nothing of this run was saved"
    assert listing(tmp_path) == before


# ---------------------------------------------------------------------------------- sweeps stop as fits stop
def sweep_process(tmp_path, epochs=400):
    """A real `nbtrain sweep` of 50 trials of up to `epochs` epochs on 2 workers, in its own process group."""
    space = tmp_path / "space.toml"
    space.write_text("layers = 1\nunits = 8\nbatch_size = 32\nlr = [0.001, 0.002]\n")
    command = [sys.executable, "-m", "nbtrain", "sweep", str(HOUSES), "-t", "price_k", "--drop", "house_id",
               "--trials", "50", "--workers", "2", "--space", str(space), "--epochs", str(epochs), "--patience",
               "0", "--out", str(tmp_path / "run")]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0)


def first_trial_ended(sweep):
    """Wait for a trial to end (there is something to save)."""
    for line in sweep.stdout:
        if line.startswith("Trial "):
            return
    raise AssertionError(sweep.communicate()[1])


def test_sigterm_during_a_sweep_saves_the_finished_trials_and_exits_143(tmp_path):
    sweep = sweep_process(tmp_path)
    try:
        first_trial_ended(sweep)
        sweep.send_signal(signal.SIGTERM)  # to the sweep's process alone, as docker stop or SLURM send it
        rest, errors = sweep.communicate(timeout=120)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
    assert sweep.returncode == 143, errors
    assert "Sweep terminated after" in rest and "Traceback" not in errors and "Saved leaderboard.csv" in rest
    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
    assert 1 <= (board["status"] == "done").sum() < 50
    assert (tmp_path / "run" / "best" / "model.nbt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "space.toml"]  # no staging folder, no lock


def pool_workers(pid):
    """The pids of a process's pool workers, once there are two (the sweep starts them all at once)."""
    while True:
        workers = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    workers.append(int(child))
        if len(workers) == 2:
            return workers
        time.sleep(0.1)


def test_a_sweeps_workers_end_with_its_process_even_when_it_is_killed(tmp_path):
    sweep = sweep_process(tmp_path, epochs=1_000_000)  # trials that would run for hours
    try:
        workers = [os.pidfd_open(pid) for pid in pool_workers(sweep.pid)]
        os.kill(sweep.pid, signal.SIGKILL)  # the main process alone; nothing of it can stop the pool
        sweep.wait()
        for worker in workers:  # wait for each to end: a worker left running never ends this wait
            assert select.select([worker], [], [], 30)[0], "a worker outlived its sweep"
            os.close(worker)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)


def test_a_sweep_trial_is_refused_when_its_network_would_not_fit_in_memory(monkeypatch):
    import numpy as np
    from nbtrain.monitor import Monitor
    from nbtrain.sweeps.trial import SweepData, run_trial
    from nbtrain.tabular import recipe
    from nbtrain.tabular.options import FitOptions
    monkeypatch.setattr(recipe, "available_memory", lambda: 1 << 20)
    data = SweepData(np.zeros((8, 3), np.float32), np.zeros(8, np.float32), np.zeros((2, 3), np.float32),
                     np.zeros(2, np.float32), "regression", 1.0, FitOptions(epochs=1), Monitor("val_loss"))
    params = {"layers": 2, "units": 512, "dropout": 0.0, "batchnorm": False, "batch_size": 8, "optimizer": "adam",
              "lr": 0.001}
    row, history, model = run_trial(data, {"index": 0, "seed": 0, "params": params})
    assert row["status"] == "failed" and model is None
    assert row["reason"].startswith("--layers 512,512 on 3 inputs needs about") and "memory available" in row["reason"]


def test_a_sweep_whose_every_trial_failed_exits_2_with_their_reasons(tmp_path, monkeypatch):
    from nbtrain.sweeps import pool

    def every_trial_fails(data, trials, workers, board):
        for trial in trials:
            board.queue(trial)
            board.finish(trial["index"], {"status": "failed", "reason": "too big" if trial["index"] else "NaN"})
    monkeypatch.setattr(pool, "run_local", every_trial_fails)
    result = run("sweep", HOUSES, *SWEEP, "--trials", "3", "--out", tmp_path / "run")
    assert_fails(result, "every trial failed (trial 0: NaN; trial 1, 2: too big)")
    assert "install matplotlib" not in result.output


def test_no_matplotlib_hint_when_it_is_installed_and_nothing_varies(tmp_path):
    pytest.importorskip("matplotlib")
    space = tmp_path / "space.toml"
    space.write_text("layers = 1\nunits = 4\n")
    result = run("sweep", HOUSES, *SWEEP, "--trials", "1", "--space", space, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "Sweep done: 1 trial" in result.stdout and "install matplotlib" not in result.output

