"""Every features folder of the repository passes in the simulated world.

The step library's own features and each example's: specs are tests, and CI runs
them here. Scenarios tagged for live runs only are skipped in the world with a reason,
never passed, so a folder passes when nothing failed.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from mailsim.steps.runner import run_features

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = [ROOT / "features", *sorted(ROOT.glob("examples/*/features"))]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: str(f.relative_to(ROOT)))
def test_the_features_pass_in_the_world(folder: Path) -> None:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        result = run_features([folder], out=output)
    failed = [r for r in result.records if r.status == "failed"]
    assert not failed, output.getvalue()
    assert result.records, f"no scenario ran in {folder}"
    assert not result.undefined, output.getvalue()
