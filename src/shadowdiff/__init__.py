"""shadowdiff: a traffic-mirroring shadow-testing proxy."""

__version__ = "0.1.0"
