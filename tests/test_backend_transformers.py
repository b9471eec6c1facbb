"""The transformers backend and its batching queue, on a tiny random Llama built in the test."""

from __future__ import annotations

import copy
from pathlib import Path

import anyio
import pytest
from conftest import import_or_fail, skip_or_fail

from oversight.backends import GenerateRequest, ScoreRequest, create_backend
from oversight.backends._batching import BatchQueue
from oversight.errors import BackendError, ConfigError

torch = import_or_fail("torch")
transformers = import_or_fail("transformers")

from oversight.backends.transformers import TransformersBackend, cut_at_stop  # noqa: E402

TOKENIZER_DIR = Path(
    __import__("oversight.paths", fromlist=["cache_dir"]).cache_dir()
    / "models"
    / "smollm2-135m-instruct"
)


def user(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": text},)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> object:
    """Tiny models are fastest on one thread; more oversubscribe a busy CI machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer() -> object:
    if not (TOKENIZER_DIR / "tokenizer.json").is_file():
        skip_or_fail(f"no tokenizer at {TOKENIZER_DIR}: run `oversight models prepare`")
    return transformers.AutoTokenizer.from_pretrained(TOKENIZER_DIR)


@pytest.fixture(scope="module")
def tiny_model(tokenizer: object) -> object:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        bos_token_id=tokenizer.bos_token_id,  # type: ignore[attr-defined]
    )
    return transformers.LlamaForCausalLM(config).eval()


@pytest.fixture
def backend(tiny_model: object, tokenizer: object) -> TransformersBackend:
    return TransformersBackend(tiny_model, tokenizer=tokenizer, dtype="float32", max_batch_size=8)


async def test_batched_greedy_generation_equals_one_at_a_time(backend: TransformersBackend) -> None:
    requests = [GenerateRequest(user("hello " * i), max_new_tokens=6) for i in range(1, 6)]
    alone = [(await backend.generate([r]))[0] for r in requests]
    together = await backend.generate(requests)
    assert [g.texts for g in together] == [g.texts for g in alone]
    assert all(g.prompt_tokens > 0 and 0 < g.completion_tokens <= 6 for g in together)
    # The live counter a progress bar reads: every generated token, alone and batched.
    assert backend.stats.tokens == 2 * sum(g.completion_tokens for g in together)


def test_dtype_is_the_machine_choice_unless_set(
    tiny_model: object, tokenizer: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oversight.devices import pick_dtype

    monkeypatch.delenv("OVERSIGHT_DTYPE", raising=False)
    explicit = TransformersBackend(tiny_model, tokenizer=tokenizer, dtype="float32")
    assert explicit.dtype_choice.explicit and explicit.dtype_choice.dtype == "float32"
    assert explicit.model.dtype == torch.float32
    machine = TransformersBackend(copy.deepcopy(tiny_model), tokenizer=tokenizer)
    expected = pick_dtype("cpu")
    assert not machine.dtype_choice.explicit
    assert machine.dtype_choice.dtype == expected.dtype
    assert machine.model.dtype == expected.torch_dtype


async def test_each_request_keeps_its_own_token_limit(backend: TransformersBackend) -> None:
    short, long = await backend.generate(
        [GenerateRequest(user("a"), max_new_tokens=2), GenerateRequest(user("a"), max_new_tokens=7)]
    )
    assert short.completion_tokens <= 2 < long.completion_tokens
    assert long.text.startswith(short.text)


async def test_n_samples_and_seeds(backend: TransformersBackend) -> None:
    request = GenerateRequest(user("tell me"), max_new_tokens=8, temperature=1.0, n=3, seed=7)
    (first,) = await backend.generate([request])
    (again,) = await backend.generate([request])
    assert len(first.texts) == 3
    assert first.texts == again.texts
    (other,) = await backend.generate([GenerateRequest(**{**_fields(request), "seed": 8})])
    assert other.texts != first.texts


def _fields(request: GenerateRequest) -> dict[str, object]:
    return {name: getattr(request, name) for name in request.__slots__}  # type: ignore[attr-defined]


async def test_stop_strings_cut_the_text(backend: TransformersBackend) -> None:
    (free,) = await backend.generate([GenerateRequest(user("x"), max_new_tokens=10)])
    word = free.text.split()[1]
    (stopped,) = await backend.generate(
        [GenerateRequest(user("x"), max_new_tokens=10, stop=(word,))]
    )
    assert word not in stopped.text
    assert free.text.startswith(stopped.text)


def test_cut_at_stop_takes_the_earliest() -> None:
    assert cut_at_stop("abc STOP def END", ("END", "STOP")) == ("abc ", True)
    assert cut_at_stop("abc", ("z",)) == ("abc", False)


async def test_score_matches_next_token_softmax(
    backend: TransformersBackend, tiny_model: object, tokenizer: object
) -> None:
    requests = [ScoreRequest(user("q " * i), choices=("Yes", "No")) for i in (1, 4, 9)]
    scores = await backend.score(requests)
    for request, score in zip(requests, scores, strict=True):
        ids = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            [dict(m) for m in request.messages],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )["input_ids"]
        with torch.no_grad():
            probs = torch.softmax(tiny_model(input_ids=ids).logits[0, -1].float(), -1)  # type: ignore[operator]
        mass = {c: float(probs[list(backend.choice_token_ids(c))].sum()) for c in ("Yes", "No")}
        expected = mass["Yes"] / (mass["Yes"] + mass["No"])
        assert score["Yes"] == pytest.approx(expected, abs=1e-5)
        assert score["Yes"] + score["No"] == pytest.approx(1.0)


def test_choice_tokens_include_the_leading_space_variant(backend: TransformersBackend) -> None:
    ids = backend.choice_token_ids("Yes")
    assert len(ids) == 2
    tok = backend.tokenizer
    assert {tok.decode([i]) for i in ids} == {"Yes", " Yes"}


async def test_choices_sharing_a_first_token_are_rejected(backend: TransformersBackend) -> None:
    with pytest.raises(BackendError, match="same token"):
        await backend.score([ScoreRequest(user("q"), choices=("Yes", "Yes!"))])


async def test_concurrent_calls_are_batched(backend: TransformersBackend) -> None:
    results: dict[int, str] = {}

    async def episode(i: int) -> None:
        (g,) = await backend.generate([GenerateRequest(user(f"hi {i}"), max_new_tokens=3)])
        (s,) = await backend.score([ScoreRequest(user(f"ok {i}?"))])
        results[i] = g.text + str(round(s["Yes"], 3))

    async with anyio.create_task_group() as tg:
        for i in range(16):
            tg.start_soon(episode, i)
    assert len(results) == 16
    assert backend.stats.items == 32
    assert backend.stats.batches < 32
    assert max(backend.stats.sizes) == 8


def test_bad_options_are_config_errors(tmp_path: Path, tiny_model: object) -> None:
    with pytest.raises(ConfigError, match=r"config\.json"):
        TransformersBackend(tmp_path)
    with pytest.raises(ConfigError, match="dtype"):
        TransformersBackend(tmp_path, dtype="int3")
    with pytest.raises(ConfigError, match="tokenizer"):
        TransformersBackend(tiny_model, dtype="float32")


def test_registered_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.json"):
        create_backend("transformers", model=str(tmp_path))


async def test_queue_groups_by_key_and_respects_max_batch_size() -> None:
    seen: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        seen.append(items)
        return [i * 10 for i in items]

    queue: BatchQueue[int, int] = BatchQueue(
        run, max_batch_size=3, max_wait_s=0.05, group_key=lambda i: i % 2
    )
    out: dict[int, list[int]] = {}

    async def call(i: int) -> None:
        out[i] = await queue.submit([i])

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(call, i)
    assert out == {i: [i * 10] for i in range(8)}
    assert all(len(b) <= 3 and len({i % 2 for i in b}) == 1 for b in seen)
    assert sorted(i for b in seen for i in b) == list(range(8))


async def test_queue_failure_reaches_every_caller_as_backend_error() -> None:
    def run(items: list[int]) -> list[int]:
        raise RuntimeError("out of memory")

    queue: BatchQueue[int, int] = BatchQueue(run, max_wait_s=0.01)
    errors: list[BaseException] = []

    async def call(i: int) -> None:
        try:
            await queue.submit([i])
        except BackendError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(call, i)
    assert len(errors) == 3 and all("out of memory" in str(e) for e in errors)


async def test_cancelled_caller_withdraws_and_others_still_finish() -> None:
    def run(items: list[int]) -> list[int]:
        return items

    queue: BatchQueue[int, int] = BatchQueue(run, max_batch_size=4, max_wait_s=10.0)
    out: list[list[int]] = []

    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await queue.submit([1])  # cancelled at once: withdrawn
        tg.start_soon(lambda: _collect(queue, [2, 3, 4, 5], out))
    assert out == [[2, 3, 4, 5]]
    assert queue.stats.items == 4


async def _collect(queue: BatchQueue[int, int], items: list[int], out: list[list[int]]) -> None:
    out.append(await queue.submit(items))


async def test_a_looping_answer_is_stopped_at_its_first_repeat(
    tiny_model: object, tokenizer: object
) -> None:
    """A model that can only write two words must repeat a 4-token stretch within 48 tokens
    (16 possible stretches), as SmolLM2-135M loops in long answers: with ``stop_repeats`` the
    answer ends before its first repeated stretch, and says so."""
    looping = copy.deepcopy(tiny_model)
    words = [tokenizer.encode(w, add_special_tokens=False)[0] for w in (" yes", " no")]  # type: ignore[attr-defined]
    with torch.no_grad():
        head = looping.lm_head.weight  # type: ignore[attr-defined]
        kept = head[words].clone()
        head.zero_()
        head[words] = kept * 50
    request = GenerateRequest(user("tell me a long story"), max_new_tokens=48)
    plain = TransformersBackend(looping, tokenizer=tokenizer, dtype="float32")
    stopping = TransformersBackend(looping, tokenizer=tokenizer, dtype="float32", stop_repeats=4)
    (free,) = await plain.generate([request])
    (stopped,) = await stopping.generate([request])
    assert free.finish == ("length",) and free.completion_tokens == 48
    assert stopped.finish == ("repetition",)
    assert stopped.completion_tokens < 48  # it stopped generating, not only cut the text
    assert free.text.startswith(stopped.text) and len(stopped.text) < len(free.text)
    ids = tokenizer.encode(stopped.text, add_special_tokens=False)  # type: ignore[attr-defined]
    from oversight.backends._ending import first_repeat

    assert first_repeat(ids, 4) is None  # what is kept never repeats itself
    with pytest.raises(ConfigError, match="stop_repeats"):
        TransformersBackend(tiny_model, tokenizer=tokenizer, dtype="float32", stop_repeats=-1)


def test_the_stopping_criterion_fires_where_first_repeat_points() -> None:
    from oversight.backends._ending import first_repeat
    from oversight.backends.transformers import _RepeatStop

    rows = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [5, 6, 7, 5, 6, 7, 5, 6, 8, 8, 8, 8]]
    prompt = [[0, 0], [0, 9]]
    criterion = _RepeatStop(prompt_width=2, n=3, rows=2)
    fired: list[int | None] = [None, None]
    for step in range(1, len(rows[0]) + 1):
        ids = torch.tensor([p + r[:step] for p, r in zip(prompt, rows, strict=True)])
        for row, done in enumerate(criterion(ids, None).tolist()):
            if done and fired[row] is None:
                fired[row] = step
    assert first_repeat(rows[0], 3) is None and fired[0] is None
    start = first_repeat(rows[1], 3)
    assert start == 3 and fired[1] == start + 3  # detected when the repeat is complete
