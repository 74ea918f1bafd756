"""docs/tutorial: every chapter runs as a student would run it (``python docs/tutorial/0N_*.py``), in a fresh
process, within a time budget; each chapter asserts its own numbers, so a chapter whose text no longer matches
what minidl computes fails here."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "docs" / "tutorial").glob("0*.py"))
FASHION = (Path(os.environ["MINIDL_DATA"]) / "fashion-mnist" if os.environ.get("MINIDL_DATA")
           else REPO.parent / "shared" / "data" / "fashion-mnist")
BUDGET_SECONDS = 600  # per chapter, on CI's 2 cores; chapter 5 trains for about a minute


def test_there_are_five_chapters():
    assert [c.name[:3] for c in CHAPTERS] == ["01_", "02_", "03_", "04_", "05_"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_runs_and_its_numbers_hold(chapter, tmp_path):
    if chapter.name.startswith("05_") and not FASHION.is_dir():
        pytest.skip(f"chapter 5 reads Fashion-MNIST, which is not in {FASHION}")
    env = {**os.environ, "MINIDL_TUTORIAL_OUT": str(tmp_path), "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(chapter)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=BUDGET_SECONDS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"{chapter.name}: {time.perf_counter() - start:.1f} s")
    if chapter.name.startswith("02_"):
        assert (tmp_path / "02_graph.png").stat().st_size > 0
    if chapter.name.startswith("05_"):
        assert (tmp_path / "05_training_curve.png").stat().st_size > 0
