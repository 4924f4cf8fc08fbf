"""``python -m sa_depot.cli``: the same as the ``sa-depot`` command."""

from sa_depot.cli import main

main()
