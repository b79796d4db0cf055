"""The text the chapters generated, in the run the site was built from: no empty slot, and every decimal
number it prints is a value of the chapter's own tables or of the quoted reference tables, at the precision
printed (ashlib.book.prose), but for the configuration constants listed here."""
from __future__ import annotations

from pathlib import Path

import pytest

from ashlib.book import prose

RUN = Path(__file__).resolve().parents[1] / "book" / "run"  # as `python -m ashlib book` copied it

#: Numbers a chapter prints that are settings, not results, each with where it comes from.
CONSTANTS = {
    "05_nac": {"0.001": "alpha of the official NAC configuration (layer2, layer1)",
               "0.005": "alpha in the official search grid (layer1)"},
    "08_transformer": {"0.001": "the ViT's AdamW learning rate (vit_recipe)",
                       "−0.17": "GELU's minimum, a property of the function"},
}


def _notebooks() -> list[Path]:
    return sorted(RUN.glob("*.ipynb"))


def test_the_site_was_built_from_a_run_with_tables():
    assert _notebooks() and list(RUN.glob("*.csv")), f"no executed notebooks and tables in {RUN}: build the site first"


@pytest.mark.parametrize("notebook", _notebooks(), ids=lambda p: p.stem)
def test_the_generated_text_has_no_empty_slot_and_quotes_its_tables(notebook):
    values = prose.table_values(prose.chapter_tables(RUN, notebook.stem))
    found = prose.problems(notebook, values, CONSTANTS.get(notebook.stem, {}))
    assert not found, "\n".join(found)
