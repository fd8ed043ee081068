"""The prediction row a tweet run writes for each test tweet (predictions.jsonl)."""
from __future__ import annotations

from dataclasses import dataclass

from core.engine.rows import ClassificationRow


@dataclass
class TweetRow(ClassificationRow):
    text: str = ""
    probability_real: float = 0.5  # the model's P(real); P(fake) is 1 - this

    @classmethod
    def table_columns(cls) -> tuple[tuple[str, str], ...]:
        return (("text", "tweet"),)

    def confidence(self) -> float | None:
        p_real = float(self.probability_real)
        return p_real if self.prediction_name == "real" else 1.0 - p_real

    def inputs(self) -> dict[str, str]:
        return {"text": self.text}
