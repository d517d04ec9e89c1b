"""The jobs REST API: ``create_app(settings)`` builds the FastAPI application ``clustra api`` serves."""

from .app import create_app
from .service import JobService

__all__ = ["JobService", "create_app"]
