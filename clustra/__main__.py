"""``python -m clustra``: the ``clustra`` command."""

from .cli import run

run()
