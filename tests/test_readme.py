"""README.md's examples run as written: the first command (less its `pip install`), the console session under
"A session" (its commands in a copy of the project folder, the output checked for its shape: the same lines with
the figures left out, since README quotes them from the machine that made them), the bash blocks of nbtrain
commands, and every python block that is a whole program (not a fragment of the one before), its printed lines
checked against the `# ...` lines that README shows after a print. Blocks that read the course data need
NBTRAIN_DATA_DIR; blocks that import an optional package need it installed. Slow: minutes on two cores."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
COURSE_FILES = ("red-wine.csv", "ion.csv")
COLUMNS = "120"  # the width the session was recorded at (rich wraps its tables to it)

pytestmark = pytest.mark.slow


def blocks(kind):
    """(line number, text) of README's fenced blocks of `kind`."""
    return [(README[:m.start()].count("\n") + 1, m.group(1))
            for m in re.finditer(rf"```{kind}\n(.*?)```", README, re.S)]


def shell(command, folder):
    """`command` run by bash in `folder` with standard error in place, nbtrain being this checkout's."""
    prelude = f'nbtrain() {{ "{sys.executable}" -m nbtrain "$@"; }}; '
    env = {**os.environ, "COLUMNS": COLUMNS, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    return subprocess.run(["bash", "-c", prelude + "{ " + command + "; } 2>&1"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=900).stdout


def new_project(folder):
    """A copy of the project folder's data (and the course files, where NBTRAIN_DATA_DIR names them)."""
    shutil.copytree(ROOT / "data", folder / "data")
    course = os.environ.get("NBTRAIN_DATA_DIR")
    for name in COURSE_FILES if course else ():
        if (Path(course) / name).exists():
            (folder / name).symlink_to(Path(course) / name)
    return folder


def shape(line):
    """A line without its figures: numbers as #, table rules and padding collapsed, a CSV row as its width, how
    a fit ended as what it restored (how many epochs it ran is a figure too)."""
    line = line.strip()
    if "," in line and " " not in line:
        return f"<csv row of {line.count(',') + 1} fields>"
    if line.startswith("Training ") and "; restoring" in line:
        line = "Training ..." + line[line.index("; restoring"):]
    line = re.sub(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?", "#", line)
    line = re.sub(r"([━─═]+)", "━", line)
    return re.sub(r"\s+", " ", line)


def kept(line):
    """Whether a line of output counts: not the epoch lines (how many there are is a figure), nor README's '...'."""
    return line != "..." and not line.startswith("Epoch ")


def transcript(text):
    """{command: its output lines} of a console block, as kept."""
    runs, command = {}, None
    for line in text.splitlines():
        if line.startswith("$ "):
            command = line[2:]
            runs[command] = []
        elif kept(line):
            runs[command].append(line)
    return runs


def test_the_first_command_gives_what_it_promises(tmp_path):
    """README's first command trains on the bundled houses and writes the model and its history, and the learning
    curves where matplotlib is installed, else says how to get them."""
    [(_, quick)] = [block for block in blocks("bash") if "nbtrain fit" in block[1] and "pip install ." in block[1]]
    command = quick.strip().split(" && ", 1)[1]
    output = shell(command, new_project(tmp_path))
    [run] = (tmp_path / "runs").iterdir()
    assert {"model.nbt", "history.csv"} <= {p.name for p in run.iterdir()}
    if importlib.util.find_spec("matplotlib"):
        assert (run / "learning_curves.png").exists()
    else:
        assert "No learning_curves.png: install matplotlib" in output


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """README's console session, run in a new project folder: (what README shows, what ran, the folder)."""
    start = README.index("### A session")
    [(_, text)] = [block for block in blocks("console") if README.index(block[1]) > start][:1]
    folder = new_project(tmp_path_factory.mktemp("session"))
    shown = transcript(text)
    ran = {command: [line for line in shell(command, folder).splitlines() if kept(line)] for command in shown}
    return shown, ran, folder


def test_the_console_session_runs_and_prints_what_readme_shows_but_the_figures(session):
    shown, ran, _ = session
    assert len(shown) >= 10
    for command, lines in shown.items():
        assert [shape(line) for line in ran[command]] == [shape(line) for line in lines], command


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """A project folder where README's bash blocks of nbtrain commands have run (the ONNX export's model, say)."""
    folder = new_project(tmp_path_factory.mktemp("examples"))
    for _, text in blocks("bash"):
        lines = [line for line in text.splitlines() if line.strip()]
        if all(line.startswith("nbtrain ") and "[" not in line for line in lines):
            for line in lines:
                assert "Error" not in shell(line, folder), line
    return folder


def programs():
    """README's python blocks that are whole programs (they begin with an import, or are a >>> session)."""
    return [pytest.param(text, id=f"line-{line}") for line, text in blocks("python")
            if re.match(r"(import |from |>>> )", text)]


def needs(text):
    """Skip a block whose course data or optional imports are not here."""
    if any(name in text for name in COURSE_FILES) and not os.environ.get("NBTRAIN_DATA_DIR"):
        pytest.skip("NBTRAIN_DATA_DIR is not set")
    for module in re.findall(r"^(?:>>> )?(?:from|import) ([\w.]+)", text, re.M):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{module} is not installed")


def expected_prints(text):
    """The lines README shows a block printing: the `# ...` comment lines right after a print(...) line."""
    lines, shown, after_print = text.splitlines(), [], False
    for line in lines:
        if line.startswith("print(") or (after_print and line.startswith("# ")):
            after_print = True
            if line.startswith("# "):
                shown.append(line[2:])
        else:
            after_print = False
    return shown


def words(line):
    return re.findall(r"[A-Za-z_]+", line)


@pytest.mark.parametrize("text", programs())
def test_a_python_block_runs_and_prints_what_readme_shows_but_the_figures(text, examples, tmp_path):
    needs(text)
    if text.startswith(">>> "):  # a session: its statements, the last one's value printed, then its output
        source = [line[4:] for line in text.splitlines() if line.startswith(">>> ")]
        script = "\n".join(source[:-1] + [f"print({source[-1]})"])
        shown = [line for line in text.splitlines() if not line.startswith(">>> ")]
    else:
        script, shown = text, expected_prints(text)
    path = tmp_path / "example.py"
    path.write_text(script)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(path)], cwd=examples, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout.strip().splitlines()
    if shown:
        assert [words(line) for line in printed[-len(shown):]] == [words(line) for line in shown], result.stdout
    elif "print(" in text:
        assert printed, "the block prints nothing"
