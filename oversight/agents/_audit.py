"""Auditing: a supervisor re-checks a subordinate's finding (the level above reviews)."""

from __future__ import annotations

from ..backends import ScoreRequest
from ..consensus import VERDICT_NAMES, verdict_from_probability
from ..messages import Audit
from ._base import Agent, EpisodeContext, critique_messages


class AuditMixin(Agent):
    """Auditing: re-check a subordinate's finding on the same principle and candidate."""

    async def audit(
        self,
        ctx: EpisodeContext,
        *,
        subject_message: str,
        subject_agent: str,
        candidate_id: str,
        principle_id: str,
        subject_verdict: str,
    ) -> Audit:
        assert self.backend is not None
        spec = ctx.constitution.principle(principle_id)
        text = ctx.candidates[candidate_id]
        (scores,) = await self.backend.score(
            [
                ScoreRequest(
                    messages=critique_messages(spec.critique_prompt, ctx.request, text),
                    meta=ctx.meta(
                        self,
                        "audit",
                        principle=principle_id,
                        candidate=text,
                        candidate_id=candidate_id,
                        subject_verdict=subject_verdict,
                        subject_agent=subject_agent,
                    ),
                )
            ]
        )
        p = scores.probs.get("Yes", 0.0)
        verdicts, confidences = verdict_from_probability([p], float(self.options.get("band", 0.1)))
        verdict = VERDICT_NAMES[int(verdicts[0])]
        return Audit(
            subject_message=subject_message,
            subject_agent=subject_agent,
            candidate_id=candidate_id,
            principle_id=principle_id,
            agrees=verdict == subject_verdict,
            verdict=verdict,
            confidence=round(float(confidences[0]), 4),
            rationale=f"audit of {subject_agent}: P(violates {principle_id}) = {p:.2f}",
        )
