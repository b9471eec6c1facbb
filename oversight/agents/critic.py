"""Critics: check a candidate against their principles by scoring "Yes"/"No"."""

from __future__ import annotations

from ..backends import GenerateRequest, ScoreRequest
from ..consensus import VERDICT_NAMES, verdict_from_probability
from ..messages import Critique
from ._audit import AuditMixin
from ._base import EpisodeContext, critique_messages, register_role


@register_role("critic")
class CriticAgent(AuditMixin):
    """Checks the principles listed in its spec; one batched ``score`` call per candidate.

    Options: ``principles`` (ids), ``band`` (uncertainty band around 0.5, default 0.1),
    ``explain`` (also generate a short written rationale; costs a ``generate`` call per
    violated principle).
    """

    @property
    def principles(self) -> list[str]:
        return list(self.options.get("principles", ()))

    async def assess(
        self, ctx: EpisodeContext, candidate_id: str, principles: list[str] | None = None
    ) -> list[Critique]:
        assert self.backend is not None
        ids = principles if principles is not None else self.principles
        text = ctx.candidates[candidate_id]
        specs = [ctx.constitution.principle(pid) for pid in ids]
        requests = [
            ScoreRequest(
                messages=critique_messages(p.critique_prompt, ctx.request, text),
                choices=("Yes", "No"),
                meta=ctx.meta(
                    self, "critique", principle=p.id, candidate=text, candidate_id=candidate_id
                ),
            )
            for p in specs
        ]
        scores = await self.backend.score(requests)
        p_yes = [s.probs.get("Yes", 0.0) for s in scores]
        verdicts, confidences = verdict_from_probability(
            p_yes, float(self.options.get("band", 0.1))
        )
        critiques = []
        for spec, p, verdict, confidence in zip(specs, p_yes, verdicts, confidences, strict=True):
            verdict_name = VERDICT_NAMES[int(verdict)]
            rationale = f"P(violates {spec.id}) = {p:.2f}"
            if self.options.get("explain") and verdict_name != "satisfied":
                rationale = await self._explain(ctx, spec.id, spec.critique_prompt, text)
            critiques.append(
                Critique(
                    candidate_id=candidate_id,
                    principle_id=spec.id,
                    principle_version=spec.version,
                    verdict=verdict_name,
                    severity=round(float(spec.severity) * p, 4)
                    if verdict_name != "satisfied"
                    else 0.0,
                    confidence=round(float(confidence), 4),
                    rationale=rationale,
                )
            )
        return critiques

    async def _explain(self, ctx: EpisodeContext, principle: str, template: str, text: str) -> str:
        assert self.backend is not None
        messages = critique_messages(template, ctx.request, text)
        ask = {"role": "user", "content": messages[1]["content"] + "\nExplain briefly why."}
        (gen,) = await self.backend.generate(
            [
                GenerateRequest(
                    messages=(messages[0], ask),
                    max_new_tokens=64,
                    meta=ctx.meta(self, "rationale", principle=principle, candidate=text),
                )
            ]
        )
        return gen.text.strip()
