"""``python -m genlab`` (used by ``torchrun -m genlab train ...``)."""

from genlab.cli import main

main()
