"""The verifier: checks a candidate's claims against a local evidence index.

It splits the candidate into claims, retrieves the closest passages of the index for each
(:func:`oversight.evidence.verify`), and publishes a :class:`~oversight.messages.Verification`
(every claim: supported / contradicted / unsupported, with the passage cited as ``doc:n``) and a
critique of its principle (``honesty`` by default) that quotes it: violated when a claim is
contradicted, satisfied otherwise. The reviser reads both: it corrects the contradicted claims
from the cited passages and may cite sources as ``[doc:n]``.

Options:

``index``
    a directory written by ``oversight index DOCS... --out INDEX``; or
``corpus``
    documents (a folder or files, as ``oversight index`` reads them), indexed in memory on first
    use (the bundled ``corpus`` folder of the package when the path is relative and not found);
``principle`` (``honesty``), ``top_k`` (3), ``relevant`` (0.55), ``coverage`` (0.5).

It needs no model: the backend of its ``model`` is not called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from ..critiques import clip
from ..errors import ConfigError
from ..messages import Claim, Critique, Verification
from ..paths import resolve_config
from ._base import Agent, EpisodeContext, register_role

_INDEXES: dict[tuple[str, str], Any] = {}
"""Loaded indexes by (kind, resolved path): agents of one process share them."""


def load_evidence(options: dict[str, Any]) -> tuple[Any, str]:
    """The index an agent's options name, and how to refer to it; cached per process."""
    from ..evidence import EvidenceIndex

    if options.get("index"):
        path = resolve_config(str(options["index"]))
        key = ("index", str(path))
        if key not in _INDEXES:
            _INDEXES[key] = EvidenceIndex.load(path)
        return _INDEXES[key], str(options["index"])
    path = resolve_config(str(options["corpus"]))
    key = ("corpus", str(path))
    if key not in _INDEXES:
        _INDEXES[key] = EvidenceIndex.build([path])
    return _INDEXES[key], str(options["corpus"])


@register_role("verifier")
class VerifierAgent(Agent):
    """Checks claims against evidence; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.options.get("index") and not self.options.get("corpus"):
            raise ConfigError(
                f"agent {self.name!r} (role verifier): give `options: {{index: DIR}}` (built by "
                "`oversight index DOCS... --out DIR`) or `options: {corpus: FOLDER}`"
            )

    @property
    def principle(self) -> str:
        return str(self.options.get("principle", "honesty"))

    def _verify(self, text: str, question: str) -> tuple[list[Claim], str]:
        from ..evidence import verify

        index, name = load_evidence(self.options)
        checks = verify(
            text,
            index,
            question=question,
            k=int(self.options.get("top_k", 3)),
            relevant=float(self.options.get("relevant", 0.55)),
            coverage=float(self.options.get("coverage", 0.5)),
        )
        claims = [
            Claim(
                text=c.claim,
                status=c.status,
                source=c.source,
                evidence=c.evidence,
                score=c.score,
                why=c.why,
            )
            for c in checks
        ]
        return claims, name

    async def assess(self, ctx: EpisodeContext, candidate_id: str) -> list[Verification | Critique]:
        text = ctx.candidates[candidate_id]
        claims, name = await anyio.to_thread.run_sync(self._verify, text, ctx.last_request)
        verification = Verification(candidate_id=candidate_id, index=name, claims=tuple(claims))
        return [verification, self.critique(ctx, candidate_id, verification)]

    def critique(
        self, ctx: EpisodeContext, candidate_id: str, verification: Verification
    ) -> Critique:
        """The critique of the principle that quotes the verification."""
        spec = ctx.constitution.principle(self.principle)
        text = ctx.candidates[candidate_id]
        wrong, right = verification.contradicted, verification.supported
        counts = (
            f"{len(right)} of {len(verification.claims)} claims supported, {len(wrong)} "
            f"contradicted by the evidence index"
        )
        if wrong:
            first = wrong[0]
            quote = first.text if first.text in text else ""
            rationale = (
                f'The claim "{clip(first.text, 24)}" is contradicted by [{first.source}]: '
                f'"{clip(first.evidence, 40)}" ({first.why}); {counts}.'
            )
            suggestion = (
                f"Correct it from the source: {first.evidence} [{first.source}]. Say politely "
                "that the common belief is mistaken, and cite sources as [doc:n]."
            )
            return Critique(
                candidate_id=candidate_id,
                principle_id=spec.id,
                principle_version=spec.version,
                verdict="violated",
                severity=round(float(spec.severity), 4),
                confidence=round(min(0.95, 0.5 + first.score / 2), 4),
                rationale=rationale,
                quote=quote,
                suggestion=suggestion,
                method="rule",
            )
        if right:
            cited = ", ".join(dict.fromkeys(f"[{c.source}]" for c in right))
            rationale = f"No claim is contradicted; {counts} ({cited})."
        elif verification.claims:
            rationale = f"No claim is contradicted; none is covered by the index either ({counts})."
        else:
            rationale = "The response makes no claim to check."
        return Critique(
            candidate_id=candidate_id,
            principle_id=spec.id,
            principle_version=spec.version,
            verdict="satisfied",
            severity=0.0,
            confidence=0.9 if right else 0.6,
            rationale=rationale,
            quote="",
            suggestion="",
            method="rule",
        )


def corpus_dir() -> Path:
    """The bundled corpus (a few short factual documents written for the project)."""
    from ..paths import DATA_DIR

    return DATA_DIR / "corpus"


__all__ = ["VerifierAgent", "corpus_dir", "load_evidence"]
