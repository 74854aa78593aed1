"""`python -m experiments.report` (MLproject `report`): tables, plots and claims of a study."""

import sys

from experiments.report.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
