"""A small OpenAI-compatible server on the transformers backend (for tests and local use).

``transformers serve`` (transformers 5.x) rejects ``n``, ``logprobs`` and ``top_logprobs``, which
the ``openai`` backend's ``score`` needs, so the project ships this server instead::

    python -m oversight.backends._serve --model ~/.cache/oversight/models/smollm2-135m-instruct \\
        --port 8000

It serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (``messages``, ``max_tokens`` /
``max_completion_tokens``, ``temperature``, ``top_p``, ``n``, ``stop``, ``seed``, ``logprobs``,
``top_logprobs``; no streaming, no tools). Concurrent HTTP requests meet in the backend's batching
queue, so they are batched like episodes are. ``logprobs`` are reported for the **first**
generated token only (its ``top_logprobs`` are the true next-token distribution after the
prompt); that is what choice scoring reads.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import OversightError, PrerequisiteError
from ._protocol import GenerateRequest
from .transformers import TransformersBackend


def create_app(backend: TransformersBackend, *, model_name: str | None = None) -> Any:
    """A FastAPI app answering chat completions with ``backend``."""
    try:
        from fastapi import FastAPI
        from fastapi.responses import JSONResponse
    except ImportError as exc:
        raise PrerequisiteError(
            "the server needs fastapi and uvicorn; install them with `pip install 'oversight[web]'`"
        ) from exc

    served = model_name or Path(backend.model_id).name or "model"
    app = FastAPI(title="oversight OpenAI-compatible server")

    def error(status: int, message: str) -> Any:
        return JSONResponse(
            {"error": {"message": message, "type": "invalid_request_error"}}, status_code=status
        )

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": served, "object": "model", "owned_by": "local"}]}

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> Any:
        if body.get("stream"):
            return error(400, "stream is not supported by this server")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "`messages` must be a non-empty list")
        stop = body.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else tuple(stop)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 128
        request = GenerateRequest(
            messages=tuple({"role": m["role"], "content": m["content"]} for m in messages),
            max_new_tokens=int(max_tokens),
            temperature=float(body.get("temperature", 1.0) or 0.0),
            top_p=float(body.get("top_p", 1.0) or 1.0),
            n=int(body.get("n", 1) or 1),
            stop=stop,
            seed=body.get("seed"),
        )
        try:
            (generation,) = await backend.generate([request])
            top: list[tuple[str, float]] | None = None
            if body.get("logprobs"):
                k = max(1, int(body.get("top_logprobs") or 1))
                top = await backend.next_token_logprobs(request.messages, k)
        except OversightError as exc:
            return error(500, str(exc))
        choices = []
        for i, text in enumerate(generation.texts):
            logprobs = None
            if top is not None:
                first = top[0]
                logprobs = {
                    "content": [
                        {
                            "token": first[0],
                            "logprob": first[1],
                            "bytes": list(first[0].encode()),
                            "top_logprobs": [
                                {"token": t, "logprob": lp, "bytes": list(t.encode())}
                                for t, lp in top
                            ],
                        }
                    ]
                }
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    # OpenAI's reasons: "length" when the limit cut it; a stopped loop ended.
                    "finish_reason": "length"
                    if generation.finish[i : i + 1] == ("length",)
                    else "stop",
                    "logprobs": logprobs,
                }
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served,
            "choices": choices,
            "usage": {
                "prompt_tokens": generation.prompt_tokens,
                "completion_tokens": generation.completion_tokens,
                "total_tokens": generation.prompt_tokens + generation.completion_tokens,
            },
        }

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="local model directory (default: the embedded model)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--dtype",
        default=None,
        help="machine (default: bf16 only where the CPU/GPU computes it natively), bfloat16, "
        "float32, float16 or auto (the checkpoint's)",
    )
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--name", default=None, help="model name the server reports")
    args = parser.parse_args(argv)
    import uvicorn

    if args.model is None:
        from .embedded import default_model_dir

        args.model = str(default_model_dir())
    backend = TransformersBackend(
        args.model,
        dtype=args.dtype,
        max_batch_size=args.max_batch_size,
        num_threads=args.num_threads,
    )
    choice = backend.dtype_choice
    print(f"serving {backend.model_id} in {choice.dtype}: {choice.reason}", file=sys.stderr)
    uvicorn.run(
        create_app(backend, model_name=args.name),
        host=args.host,
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
