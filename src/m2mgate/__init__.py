"""m2mgate: a machine-to-machine authentication gateway (reverse proxy) for OAuth 2.0 JWTs."""

__version__ = "0.1.0"
