"""The built wheel installs into a fresh venv, maps the folders under `soundstage` and ships the recipes."""
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_in_fresh_venv_imports_and_finds_recipes(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(dist.glob("soundstage-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # dependencies come from the test's own environment; the package itself only from the wheel
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True, timeout=300)
    probe = (
        "import soundstage, soundstage.plugins, soundstage.data, soundstage.recipes;"
        "from soundstage.recipe import builtin_recipes, load_recipe;"
        "r = builtin_recipes(); print(sorted(r)); print(r['toy']);"
        "print(load_recipe('toy').stages['first'].plugin)"
    )
    out = subprocess.run([py, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "'toy'" in lines[0]
    assert lines[1].startswith(str(env_dir))  # the recipe came from the installed wheel, not the checkout
    assert lines[2] == "toy_regressor"
    console = subprocess.run([env_dir / "bin" / "soundstage", "plugins", "toy*"], capture_output=True, text=True, cwd=tmp_path)
    assert console.returncode == 0 and "toy_regressor" in console.stdout
