"""The book machine: what runs the chapters and publishes them, on top of the science (:mod:`ashlib`).

* running: :mod:`~ashlib.book.pipeline` (notebooks under papermill, run folders),
  :mod:`~ashlib.book.params` (profiles and the checks behind every chapter's parameters),
  :mod:`~ashlib.book.runs` (one call that sets a chapter up), :mod:`~ashlib.book.matrix` (many runs as
  jobs), :mod:`~ashlib.book.rehearsal` (paper-scale profiles on fake data), :mod:`~ashlib.book.estimate`
  (what a run costs), :mod:`~ashlib.book.cli` (``python -m ashlib``);
* chapters: :mod:`ashlib.book.chapters`, one module per notebook (its parameters, claims and cost);
* publishing: :mod:`~ashlib.book.plots`, :mod:`~ashlib.book.interactive` (figures),
  :mod:`~ashlib.book.paper`, :mod:`~ashlib.book.related`, :mod:`~ashlib.book._tables` (the quoted
  tables, ``reference/*.csv``), :mod:`~ashlib.book.claims` (claims checked on a run);
* teaching: :mod:`~ashlib.book.classroom` (nbgrader) and :mod:`~ashlib.book._sandbox` (the grader's guard).

Importing it lets OpenMP's idle threads sleep instead of spin in this process and the kernels it starts
(:func:`ashlib._threads.passive_waiting`): the book machine runs processes side by side; the science
alone changes no setting.
"""
from ashlib._threads import passive_waiting

passive_waiting()  # before anything loads torch (see ashlib._threads)
