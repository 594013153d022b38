"""Whether to shadow a request: cheap, synchronous, decided before the primary is asked.

`MirrorPolicy.skip_reason()` answers: mirroring off, method not allowed, path
filtered, body too large, sampled out. The bounds that depend on what is under way
(in-flight caps, the breaker) are the lanes' business, checked once the primary's
response head is in.
"""

from __future__ import annotations

import fnmatch
import hashlib
import random
import re
from collections.abc import Callable

from shadowdiff.config import MirrorConfig
from shadowdiff.model import Headers

_SAMPLE_SCALE = 2**64


def _globs(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def sample_point(key: str) -> float:
    """A stable point in [0, 1) for a sampling key: the same key, the same decision."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SAMPLE_SCALE


class MirrorPolicy:
    def __init__(self, config: MirrorConfig, *, rng: Callable[[], float] = random.random) -> None:
        self._config = config
        self._methods = frozenset(config.methods)
        self._include = _globs(config.include_paths)
        self._exclude = _globs(config.exclude_paths)
        self._rng = rng

    @property
    def max_body_bytes(self) -> int:
        return self._config.max_body_bytes

    def skip_reason(self, method: str, path: str, headers: Headers, body_size: int) -> str | None:
        """None to mirror, else the `mirror_skipped_total` reason (`body_size`: as far as known)."""
        config = self._config
        if not config.enabled:
            return "paused"
        if method not in self._methods:
            return "method"
        if self._include is not None and not self._include.match(path):
            return "filtered"
        if self._exclude is not None and self._exclude.match(path):
            return "filtered"
        if body_size > config.max_body_bytes:
            return "body_too_large"
        rate = config.sample_rate
        if rate >= 1.0:
            return None
        key = headers.get(config.sample_key) if config.sample_key else None
        point = sample_point(key) if key is not None else self._rng()
        return None if point < rate else "sampled_out"
