"""shadowdiff: a traffic-mirroring shadow-testing proxy."""

__version__ = "0.4.0"
