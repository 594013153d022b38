"""`shadowdiff serve --workers N`: the supervisor (`supervisor`) and each worker process
(`worker`), talking in frames over the worker's stdin."""
