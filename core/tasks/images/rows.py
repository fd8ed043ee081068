"""The prediction row an image run writes for each test image (predictions.jsonl)."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.engine.rows import ClassificationRow


@dataclass
class ImageRow(ClassificationRow):
    probabilities: list[float] = field(default_factory=list)  # one per class, in the run's label order

    def confidence(self) -> float | None:
        return self.probabilities[int(self.prediction)] if self.probabilities else None
