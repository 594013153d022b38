"""Where a Comparison goes: one pipeline (`pipeline`) that runs the stages, keeps the
counts, redacts once (`redact`) and fans out to the sinks (`sinks`)."""
