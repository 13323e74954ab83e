"""``python -m bench.scale``: see :mod:`bench.scale.run`."""

from bench.scale.run import main

main()
