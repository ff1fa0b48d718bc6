"""The composition root: a compiled config -> a running gateway (see gateway.py)."""

from m2mgate.app.gateway import Gateway

__all__ = ["Gateway"]
