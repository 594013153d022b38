"""Noise detection: which differences the primary's own code produces too (A/A evidence),
verdicts per (route, part, path), and the field statistics the admin API shows."""
