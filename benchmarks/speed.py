"""The speed benchmark of BENCHMARKS.md: the same as ``genlab bench`` (see ``genlab bench --help``).

    python benchmarks/speed.py [--quick] [--threads N] [--only TEXT ...] [-o benchmarks/results/speed.json]
"""

import sys

from genlab.cli import main

if __name__ == "__main__":
    sys.argv = ["genlab", "bench", *sys.argv[1:]]
    main()
