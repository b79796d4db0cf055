"""``python -m ashlib``: the book machine's command line (:mod:`ashlib.book.cli`)."""
import sys

from ashlib.book.cli import main

if __name__ == "__main__":
    sys.exit(main())
