"""A bound on the work of one comparison, counted in steps, so inline work is bounded by construction.

A step is about a microsecond of Python: one node walked, visited by a rule or sorted,
one string handed to a mask, one match replaced. The event loop compares with a
budget (`Comparator`, INLINE_STEPS); past it `OverBudget` is raised, the partial
work is dropped and the same comparison goes to the comparison worker, which has no
budget (its deadline is compare.timeout). So an inline comparison costs at most its
budget, whatever the body and the rules: 64 KiB of two-character strings under a mask
would be ~140 ms of masking.
"""

from __future__ import annotations


class OverBudget(Exception):
    """The comparison needs more steps than it was given: make it elsewhere."""


class Budget:
    __slots__ = ("left",)

    def __init__(self, steps: int | None) -> None:
        self.left = steps  # None: no bound

    def spend(self, steps: int) -> None:
        if self.left is not None:
            self.left -= steps
            if self.left < 0:
                raise OverBudget(f"past the inline budget by {-self.left} steps")


UNBOUNDED = Budget(None)
