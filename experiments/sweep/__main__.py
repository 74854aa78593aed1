"""`python -m experiments.sweep` (MLproject `sweep`): run a sweep spec's trials on Ray."""

import sys

from experiments.sweep.launch import main

if __name__ == "__main__":
    sys.exit(main())
