"""The README's examples run as printed (only the placeholder path is replaced by a real folder)."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).parents[1] / "README.md"


def _example(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(re.escape(marker) + r".*?\n```python\n(.*?)```", text, flags=re.S)
    assert match, f"no python block after {marker!r} in README.md"
    return match.group(1)


@pytest.mark.project_cache
def test_your_own_ood_set_example_prints_its_table(tmp_path):
    code = _example("<!-- README example: tests/test_readme.py runs this block -->")
    assert "path/to/my/images" in code and len(code.strip().splitlines()) <= 8  # "a few lines"
    folder = tmp_path / "my images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # small gray and colour images of different sizes
        size = (20 + 3 * i, 30 + i)
        array = rng.integers(0, 256, (*size, 3) if i % 2 else size, dtype=np.uint8)
        Image.fromarray(array).save(folder / f"img{i:02d}.png")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        exec(compile(code.replace("path/to/my/images", str(folder)), "README.md", "exec"), {})
    lines = out.getvalue().strip().splitlines()
    assert lines[0].split() == ["AUROC", "FPR95"] and lines[1].split() == ["method"]
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[2:]}
    assert list(rows) == ["Energy", "ReAct", "ASH-S@95"]
    assert all(len(v) == 2 and 0 <= v[0] <= 100 and 0 <= v[1] <= 100 for v in rows.values())
