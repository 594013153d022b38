"""The mismatch store: field statistics over time and redacted sample exchanges, in SQLite or PostgreSQL."""
