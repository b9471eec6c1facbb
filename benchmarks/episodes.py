"""Episodes per second with the scripted backend, at concurrency 1 and 64 (journal on).

    python benchmarks/episodes.py [--episodes 2000]

Prints JSON: episodes/s and mean framework time per episode for each concurrency. The
scripted backend answers instantly, so the time measured is the framework's own: message
validation, the bus and its journal interceptor, agents, the decision core, the queue for
escalated cases.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import anyio

from oversight.escalation import HumanQueue
from oversight.hierarchy import load_hierarchy
from oversight.messages import Prompt
from oversight.paths import resolve_config
from oversight.prompts import load_prompts
from oversight.runtime import Runtime


def prompt_set(n: int) -> list[Prompt]:
    base = [p for p in load_prompts() if isinstance(p, Prompt)]
    return [
        p.model_copy(update={"prompt_id": f"{p.prompt_id}#{i}"})
        for i in range(n // len(base) + 1)
        for p in base
    ][:n]


def measure(concurrency: int, episodes: int, tmp: Path) -> dict[str, float]:
    spec = load_hierarchy(resolve_config("roles/default.yaml"))
    queue = HumanQueue(f"sqlite:///{tmp / f'queue-{concurrency}.db'}")
    runtime = Runtime(
        spec,
        run_name=f"bench-{concurrency}",
        run_dir=tmp / f"run-{concurrency}",
        queue=queue,
        concurrency=concurrency,
    )
    result = anyio.run(runtime.run, prompt_set(episodes))
    queue.close()
    counts = result.counts()
    return {
        "concurrency": concurrency,
        "episodes": counts["episodes"],
        "escalated": counts["escalated"],
        "messages": counts["messages"],
        "wall_s": round(result.wall_seconds, 3),
        "episodes_per_s": round(counts["episodes"] / result.wall_seconds, 1),
        "ms_per_episode": round(1000 * result.wall_seconds / counts["episodes"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(c, args.episodes, Path(tmp)) for c in (1, 64)]
    print(json.dumps({"benchmark": "episodes", "backend": "scripted", "results": results}))


if __name__ == "__main__":
    main()
