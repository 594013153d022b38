"""The comparison step: pure functions from an exchange to a Comparison.

Nothing here touches sockets, clocks or metrics, so it is tested with plain values.
"""

from shadowdiff.compare.engine import compare
from shadowdiff.compare.model import Comparison, Difference, Exchange

__all__ = ["Comparison", "Difference", "Exchange", "compare"]
