"""shadowdiff: a traffic-mirroring shadow-testing proxy."""

__version__ = "0.5.0.dev0"
