"""The web UI of the jobs service (``clustra api`` serves it at ``/ui/``), see :mod:`jobs.ui.routes`."""

from .routes import install_ui

__all__ = ["install_ui"]
