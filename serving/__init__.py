"""Serving: the Ray Serve assignment API over models published to the registry."""
