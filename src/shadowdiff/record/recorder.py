"""The recorder: a publish sink that writes a sampled share of compared exchanges to disk.

Each exchange is one JSON line (`store.samples.record`'s shape, the store's redaction applied
to every byte, plus `ts` and `timing`): the request (method, target, headers, body),
the primary's answer and the shadow's (status, headers, body), the differences. Bodies are kept
as the comparison held them (compare.max_body_bytes), JSON parsed and text as text; a binary
body is its type and size alone.

Files are `shadowdiff-<UTC time>-<pid>.jsonl.gz` in record.directory, gzip members flushed
after each line's batch, so a file cut short (a crash, a full disk) still reads up to its last
whole line. A file closes past record.max_file_bytes (compressed) or record.max_file_seconds,
and the oldest files go while the directory's recordings pass record.max_total_bytes.

It runs behind `OffLoopSink` (its own thread, a queue of record.max_queued; past it dropped
and counted as `shadowdiff_sink_dropped_total{sink="record"}`). A directory that cannot be
written (full, read-only, gone) costs clients nothing: each exchange not written counts in
`shadowdiff_record_errors_total`, the first of a burst logs `record_error`, and the next
write tries to open a new file.
"""

from __future__ import annotations

import fnmatch
import gzip
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from shadowdiff import log
from shadowdiff.config import RecordConfig
from shadowdiff.model import MISMATCH, SHADOW, Comparison
from shadowdiff.noise.views import iso
from shadowdiff.publish.redact import Redaction, Redactor, Report
from shadowdiff.store.database import default_path
from shadowdiff.store.samples import record as sample_record

PREFIX, SUFFIX = "shadowdiff-", ".jsonl.gz"


def default_directory() -> Path:
    """$XDG_STATE_HOME/shadowdiff/recordings, beside the default store."""
    return default_path().parent / "recordings"


class Recorder:
    name = "record"

    def __init__(
        self,
        config: RecordConfig,
        redaction: Callable[[], Redaction],
        *,
        on_written: Callable[[], None] = lambda: None,
        on_error: Callable[[], None] = lambda: None,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.directory = Path(config.directory) if config.directory else default_directory()
        self._methods = frozenset(m.upper() for m in config.methods)
        self._redaction = redaction
        self._redactor: Redactor | None = None
        self._on_written, self._on_error = on_written, on_error
        self._rng, self._clock = rng, clock
        self._file: IO[bytes] | None = None
        self._raw: Any = None  # the file under the gzip stream: its size is the compressed bytes
        self._opened = 0.0
        self._failing = False

    # -- on the event loop ------------------------------------------------------------

    def wants(self, comparison: Comparison) -> bool:
        config, request = self.config, comparison.request
        if comparison.lane != SHADOW or (config.only_mismatches and comparison.outcome != MISMATCH):
            return False
        if self._methods and request.method not in self._methods:
            return False
        if config.paths and not any(fnmatch.fnmatchcase(request.path, glob) for glob in config.paths):
            return False
        return config.sample_rate >= 1.0 or self._rng() < config.sample_rate

    # -- on its own thread (OffLoopSink) -------------------------------------------------------

    def __call__(self, report: Report) -> None:
        spec = self._redaction()
        if self._redactor is None or self._redactor.spec != spec:
            self._redactor = Redactor(spec)
        line = sample_record(report, self._redactor)
        line["ts"] = iso(self._clock())
        line["timing"] = {"primary_ms": line["primary"]["elapsed_ms"], "shadow_ms": line["shadow"]["elapsed_ms"]}
        data = orjson.dumps(line) + b"\n"
        try:
            self._write(data)
        except OSError as exc:
            self._close()
            self._on_error()
            if not self._failing:
                self._failing = True
                log.event("warning", "record_error", directory=str(self.directory), error=str(exc)[:300])
            return
        if self._failing:
            self._failing = False
            log.event("info", "record_recovered", directory=str(self.directory))
        self._on_written()

    def _write(self, data: bytes) -> None:
        now = self._clock()
        if self._file is not None and (
            self._raw.tell() >= self.config.max_file_bytes or now - self._opened >= self.config.max_file_seconds
        ):
            self._close()
        if self._file is None:
            self._open(now)
        assert self._file is not None
        self._file.write(data)
        self._file.flush()  # a whole gzip block per line: what is on disk reads back whole

    def _open(self, now: float) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._retain()
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S.%f")
        raw = open(self.directory / f"{PREFIX}{stamp}-{os.getpid()}{SUFFIX}", "xb")  # noqa: SIM115  (closed in _close)
        self._raw, self._file, self._opened = raw, gzip.GzipFile(fileobj=raw, mode="wb"), now

    def _close(self) -> None:
        file, raw, self._file, self._raw = self._file, self._raw, None, None
        for closing in (file, raw):
            if closing is not None:
                try:
                    closing.close()
                except OSError:  # a full disk may refuse the gzip trailer: the lines before it read back
                    pass

    def _retain(self) -> None:
        """Delete the oldest recordings while all of them pass max_total_bytes."""
        files = sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}"), key=lambda p: p.name)
        sizes = {p: p.stat().st_size for p in files}
        total = sum(sizes.values())
        for path in files:
            if total <= self.config.max_total_bytes:
                break
            path.unlink(missing_ok=True)
            total -= sizes[path]

    def close(self) -> None:
        self._close()


def read(path: Path) -> list[dict[str, Any]]:
    """The exchanges of one recording, up to its last whole line (a file cut short reads too)."""
    out: list[dict[str, Any]] = []
    with gzip.open(path, "rb") as file:
        try:
            for line in file:
                if line.endswith(b"\n"):
                    out.append(orjson.loads(line))
        except (EOFError, gzip.BadGzipFile):
            pass
    return out
