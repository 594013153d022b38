"""Recording exchanges for `shadowdiff replay`: gzip-compressed JSON lines, redacted."""
