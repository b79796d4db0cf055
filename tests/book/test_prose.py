"""ashlib.book.prose: empty slots and unquoted numbers in a chapter's generated text are found, and
text that quotes its tables passes."""
from __future__ import annotations

import json

from ashlib.book import prose


def _notebook(tmp_path, *texts):
    cells = [{"cell_type": "code", "source": "", "metadata": {}, "execution_count": 1,
              "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"text/markdown": t}}]}
             for t in texts]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_the_empty_slot_chapter_06_printed_is_found():
    text = "* **MSP vs MiSP** (log-softmax): MiSP's AUROC is higher on \n  out of 5 OOD sets (thesis: on SVHN)."
    assert prose.empty_slots(text)[0].startswith("a preposition with nothing after it")
    assert prose.empty_slots("MiSP's AUROC is higher on 0 of 5 OOD sets.") == []


def test_unfilled_slots_missing_values_and_empty_brackets_are_found_but_math_and_code_are_not():
    assert prose.empty_slots("ASH-S at p = {p_best} is best")  # an f-string that was not one
    assert prose.empty_slots("AUROC nan on faces") and prose.empty_slots("the sets () are")
    assert prose.empty_slots("faces, , letters")
    assert prose.empty_slots(r"the factor $e^{s_1/s_2}$ and `ctx.logits[()]` and `{}`") == []


def test_a_number_the_tables_hold_at_its_precision_passes_and_another_does_not():
    values = [95.4567, 0.25, -3.14159]
    text = "Energy 95.5 on letters, FPR95 25.0%, a drop of −3.1, and 95.4 elsewhere; lr 0.001."
    missing = prose.unquoted_numbers(text, values)
    assert [m.split(":")[0] for m in missing] == ["95.4", "0.001"]
    assert [m.split(":")[0] for m in prose.unquoted_numbers(text, values, constants=["0.001"])] == ["95.4"]
    assert prose.unquoted_numbers("fitting took **1.1 s**, scoring 5.9 s, the book 12.5 min", values) == []


def test_a_whole_percentage_is_a_result_too_but_the_interval_level_and_chance_are_not():
    values = [0.5123, 86.2]
    text = "51% of its values are negative, 86% for the CNN, 7% elsewhere; a 95% interval; 50% = chance."
    assert [m.split(":")[0] for m in prose.unquoted_numbers(text, values)] == ["7"]
    assert [m.split(":")[0] for m in prose.unquoted_numbers("95% of ID images", values)] == ["95"]  # not an interval


def test_problems_reads_an_executed_notebooks_generated_text(tmp_path):
    path = _notebook(tmp_path, "AUROC **91.2** against 88.0.", "higher on  out of 5 sets")
    found = prose.problems(path, [91.23, 88.0])
    assert len(found) == 1 and found[0].startswith("a preposition")
    assert any(p.startswith("88.0") for p in prose.problems(path, [91.23]))
