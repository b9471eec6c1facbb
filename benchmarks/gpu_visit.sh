#!/usr/bin/env bash
# The GPU figures of issues 3 and 4 in one visit to the lent GPU machine (see docs/training.md).
# Run from the repository root there, with the wheels of ../shared/device/wheels.sh in .whl
# (plus liger-kernel and sqlalchemy) and the default tokenizer's files in .gpu/tok:
#   ../shared/device/wheels.sh liger-kernel==0.8.5 sqlalchemy==2.1.9
#   mkdir -p .gpu/tok && cp ~/.cache/oversight/models/smollm2-135m-instruct/{tokenizer.json,tokenizer_config.json,chat_template.jinja} .gpu/tok/
#   device run (carry .whl .gpu): bash benchmarks/gpu_visit.sh
# Each variant runs in its own process under a time limit and appends one JSON line to
# $OUT/train_gpu.jsonl or $OUT/pipeline_gpu.jsonl, so a failure or a timeout loses only itself.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, trl; print(torch.__version__, transformers.__version__, trl.__version__)" | tee -a "$OUT/gpu.txt"

train() {  # seconds label args...
  local limit=$1 label=$2; shift 2
  echo "== train $label"
  timeout "$limit" python3 benchmarks/train_gpu.py --tokenizer .gpu/tok --label "$label" "$@" \
    >>"$OUT/train_gpu.jsonl" 2>>"$OUT/train_gpu.err" || echo "{\"label\": \"$label\", \"failed\": $?}" >>"$OUT/train_gpu.jsonl"
  tail -n 1 "$OUT/train_gpu.jsonl"
}
train 70 sdpa-liger --attn sdpa --loss liger --kind sft --seq-len 2048 --rows-per-step 8 --steps 15
train 160 flex-compile-liger --attn flex_attention --compile --loss liger --seq-len 2048 --rows-per-step 8 --steps 15
echo "== pipeline"
timeout 150 python3 benchmarks/pipeline.py --random-360m --tokenizer .gpu/tok --device cuda \
  --prompts 32 --tokens 48 --concurrency 32 --repeats 2 --sequential-limit 4 \
  >>"$OUT/pipeline_gpu.jsonl" 2>>"$OUT/pipeline_gpu.err"
tail -n 1 "$OUT/pipeline_gpu.jsonl"
