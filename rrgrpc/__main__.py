"""``python -m rrgrpc``: the same as the ``rr`` console script."""

from rrgrpc.cli import main

main()
