"""shadowdiff: a traffic-mirroring shadow-testing proxy."""

__version__ = "0.2.0"
