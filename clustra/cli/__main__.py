"""``python -m clustra.cli``: the ``clustra`` command."""

from . import run

run()
