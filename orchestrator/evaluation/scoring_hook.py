"""The scorecard that the evaluate phase sends (filled in by ``orchestrator.evaluation.scoring`` when present)."""

from __future__ import annotations


def scorecard_hook():
    try:
        from orchestrator.evaluation.scoring import scorecard_attachment
    except ModuleNotFoundError as exc:
        if exc.name != "orchestrator.evaluation.scoring":
            raise
        return None
    return scorecard_attachment
