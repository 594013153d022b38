"""Background tasks with strong references, failure logging and a bounded drain.

The event loop keeps only weak references to tasks, so a fire-and-forget task
with no other owner can be garbage-collected mid-flight. `TaskSet` owns them
until they finish, logs any that fail, and on shutdown waits for them up to a
deadline and then cancels the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from shadowdiff import log


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.event("error", "task_failed", task=task.get_name(), error=repr(exc), exc_info=exc)

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for running tasks, then cancel the rest.

        Returns how many had to be cancelled.
        """
        pending = set(self._tasks)
        if not pending:
            return 0
        _, still_running = await asyncio.wait(pending, timeout=timeout)
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.wait(still_running)
        return len(still_running)
