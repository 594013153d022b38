"""Read values out of a Prometheus text exposition, as a scraper would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class MetricsReader:
    def __init__(self, text: str) -> None:
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples.append((sample.name, dict(sample.labels), sample.value))

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
        return sum(v for n, l, v in self.samples if n == name and all(l.get(k) == w for k, w in labels.items()))

    def label_values(self, name: str, label: str) -> set[str]:
        return {l[label] for n, l, _ in self.samples if n == name and label in l}
