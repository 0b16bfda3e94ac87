"""What a model compiles (issue 24): only the kernels its configuration uses, once per machine.

Counts, not times: each case runs tests/compiles.py in a fresh process on an empty cache folder of its own and
reads the names Numba's event API saw compiled. The budgets are written here; a change that makes every model
compile more (a kernel every configuration types whether or not it uses it) fails them.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
# Most compilations each model may make on an empty cache, itself first (README's first command) and then after the
# models before it (the course's models share README's kernels and add their configurations' walkers). Measured
# with numba 0.68.1: 53, 13, 13 and 24 since README's command trains the default recipe (a piecewise-linear
# encoding, a cosine schedule), whose configuration the course's red wine model no longer shares; 48, 2, 20 and 27
# with the course's 3x512 (84 for README's command before configurations); the margin of two absorbs Numba's own
# helpers changing between releases.
BUDGET = {"readme": 55, "red-wine": 15, "ionosphere": 22, "multiclass": 29}


def compiled(tmp_path, models, cache=None, env=None):
    """{model: {"names", "key"}} from a fresh process fitting `models` in order on the cache folder `cache` (None:
    NUMBA_CACHE_DIR unset, nbtrain's own per-user folder)."""
    out = tmp_path / "compiled.json"
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    environment.update({"NUMBA_CACHE_DIR": str(cache)} if cache else {}, **(env or {}))
    subprocess.run([sys.executable, str(ROOT / "tests" / "compiles.py"), str(out), *models], cwd=ROOT,
                   env=environment, check=True)
    return json.loads(out.read_text())


def test_compile_budget_of_readme_and_the_course_models(tmp_path):
    models = ["readme"] + (["red-wine", "ionosphere", "multiclass"] if os.environ.get("NBTRAIN_DATA_DIR") else [])
    found = compiled(tmp_path, models, tmp_path / "cache")
    counts = {model: len(found[model]["names"]) for model in models}
    over = {model: f"{counts[model]} > {BUDGET[model]}" for model in models if counts[model] > BUDGET[model]}
    assert not over, f"over the compile budget: {over}; compiled: {found}"


def test_a_configuration_compiles_once_and_a_new_activation_compiles_only_its_configuration(tmp_path):
    cache = tmp_path / "cache"
    first = compiled(tmp_path, ["small"], cache)
    assert first["small"]["names"], "an empty cache compiled nothing: the count cannot be trusted"
    again = compiled(tmp_path, ["small", "small-tanh"], cache)
    assert again["small"]["names"] == [], "the same configuration compiled again in a new process"
    key = again["small-tanh"]["key"]
    assert key != again["small"]["key"]
    # Numba's own helpers (implementations of np.zeros, min, ... named "<locals>") are typed again inside each new
    # function; nbtrain's shared kernels must come from the cache
    shared = [name for name in again["small-tanh"]["names"] if not name.endswith(f"__{key}") and "<locals>" not in name]
    assert shared == [], f"a new activation recompiled kernels every configuration shares: {shared}"


def test_the_cache_survives_a_reinstall_and_a_read_only_package(tmp_path):
    """The kernels cache in the per-user folder: a reinstall of the same source (new files, new time stamps) into a
    read-only folder starts warm, and nothing is written beside the package."""
    site, package = tmp_path / "site", tmp_path / "site" / "nbtrain"

    def install():
        if package.exists():
            shutil.rmtree(package)
        shutil.copytree(ROOT / "nbtrain", package, ignore=shutil.ignore_patterns("__pycache__"))
        for folder, _, files in os.walk(package):
            os.chmod(folder, 0o555)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o444)

    def writable():
        for folder, _, _ in os.walk(package):
            os.chmod(folder, 0o755)

    env = {"PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp_path / "user-cache")}
    try:
        install()
        first = compiled(tmp_path, ["small"], env=env)
        assert first["small"]["names"], "an empty per-user cache compiled nothing"
        writable()
        install()
        again = compiled(tmp_path, ["small"], env=env)
        assert again["small"]["names"] == [], "a reinstall of the same source compiled again"
        assert not list(package.rglob("*.nbi")), "a cache index was written beside the package"
        assert list((tmp_path / "user-cache" / "nbtrain").rglob("*.nbi"))
    finally:
        writable()


def test_the_command_line_compiles_at_level_1_and_import_nbtrain_leaves_numba_alone():
    """NUMBA_OPT=1 only in processes the command line owns (bench/RESULTS.md: less compiling, the same speed), a level
    the user set kept, and a plain `import nbtrain` never changing Numba for the user's other code."""
    def level(code, **env):
        environment = {k: v for k, v in os.environ.items() if k != "NUMBA_OPT"}
        done = subprocess.run([sys.executable, "-c", f"{code}\nimport numba; print(int(numba.config.OPT))"],
                              env={**environment, **env}, cwd=ROOT, capture_output=True, text=True, check=True)
        return int(done.stdout.split()[-1])

    assert level("import nbtrain.cli") == 1
    assert level("import nbtrain.cli", NUMBA_OPT="2") == 2
    assert level("import nbtrain, nbtrain.engine.cpu") == 3
