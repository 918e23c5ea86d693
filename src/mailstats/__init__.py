"""mailstats: self-hosted email engagement tracking, wire-compatible with Copernica's v2 API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
