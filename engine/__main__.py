"""`python -m engine ...` (also what torchrun starts): the headless command line."""

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
