"""Entry point of `python -m llm` (see llm/cli.py)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
