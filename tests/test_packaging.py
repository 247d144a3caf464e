"""The three code folders install as clicktune.plugin / .adapters / .scheduler, editable and as a wheel."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

from shared_homes import REPO_ROOT

MODULES = ("clicktune.plugin", "clicktune.adapters", "clicktune.scheduler")


def test_editable_install_maps_the_folders() -> None:
    import clicktune.adapters
    import clicktune.plugin
    import clicktune.scheduler

    for module, folder in zip(
        (clicktune.plugin, clicktune.adapters, clicktune.scheduler), ("plugin", "adapters", "scheduler"), strict=True
    ):
        assert Path(module.__file__).parent == REPO_ROOT / folder


def test_wheel_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO_ROOT)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = dist.glob("clicktune-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "clicktune/plugin/__init__.py" in names
    assert "clicktune/adapters/registry/store.py" in names
    assert not any(n.split("/")[0] in {"plugin", "adapters", "scheduler", "tests"} for n in names)
    # The bundled SciFact travels in the wheel, so the demo and the offline tools run from it.
    assert {"clicktune/scheduler/data/scifact/corpus.jsonl.gz", "clicktune/scheduler/data/scifact/qrels/test.tsv",
            "clicktune/scheduler/data/scifact/SOURCE.md"} <= set(names)

    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    py = target / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True)
    # Dependencies come from this venv's site-packages as a plain path entry: its .pth files (among
    # them the editable finder) are not processed, so only the wheel can provide `clicktune`.
    site = Path(sysconfig.get_paths()["purelib"])
    fresh_site = Path(
        subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       check=True, capture_output=True, text=True).stdout.strip()
    )
    (fresh_site / "zz_deps.pth").write_text(str(site) + "\n")
    code = (
        "import importlib, pathlib\n"
        f"for name in {MODULES!r}:\n"
        "    mod = importlib.import_module(name)\n"
        f"    assert pathlib.Path(mod.__file__).is_relative_to({str(fresh_site)!r}), mod.__file__\n"
        "from clicktune.plugin import ClicktuneEmbeddings\n"
        "for top in ('plugin', 'adapters', 'scheduler'):\n"
        "    try:\n"
        "        importlib.import_module(top)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    raise AssertionError(f'top-level {top} is importable')\n"
        "from importlib.metadata import entry_points\n"
        "from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset\n"
        f"assert BUNDLED_SCIFACT.is_relative_to({str(fresh_site)!r}), BUNDLED_SCIFACT\n"
        "data = BeirDataset.load(BUNDLED_SCIFACT)\n"
        "assert len(data.corpus) == 5183 and len(data.qrels['test']) == 300, (len(data.corpus), len(data.qrels))\n"
        "(store,) = entry_points(group='clicktune.stores', name='default')\n"
        "assert store.load() is importlib.import_module('clicktune.plugin').ClicktuneVectorStore\n"
        "print('ok')\n"
    )
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
