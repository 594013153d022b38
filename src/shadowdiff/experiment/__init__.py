"""Everything that happens off the client's path for one mirrored request: whether to
mirror it (`policy`), the background lanes with their bounds (`lanes`, `breaker`),
the experiment over them (`mirror`), and running comparisons without blocking the
event loop (`comparator`)."""
