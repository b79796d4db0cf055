"""Chapter 07, *For teachers* (notebooks/07_classroom.ipynb): its parameters."""
from __future__ import annotations

from dataclasses import dataclass

from ashlib.book.chapters import ChapterParameters, parameter
from ashlib.book.params import accepts


@dataclass(frozen=True)
class Parameters(ChapterParameters):
    """The parameters of notebooks/07_classroom.ipynb (its parameters cell is rendered from these)."""

    sample_assignment: str = parameter("ash", "the assignment whose sample class this page grades", accepts.assignment)
    timeout: float = parameter(60, "seconds a cell may run while grading", accepts.timeout)
