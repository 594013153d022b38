"""The comparison step: pure functions from an exchange to a Comparison.

Nothing here touches sockets, clocks or metrics, and nothing imports aiohttp, yaml
or the config: the comparison worker process loads this package and the model only.
"""

from shadowdiff.compare.engine import compare

__all__ = ["compare"]
