"""The dtype chosen per machine (oversight.devices): capabilities are passed in, no hardware."""

from __future__ import annotations

from pathlib import Path

import pytest

from oversight.devices import Capability, detect, pick_dtype
from oversight.errors import ConfigError

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}
AVX512_BF16 = AVX512 | {"avx512_bf16"}
AMX = AVX512 | {"amx_tile", "amx_bf16", "amx_int8"}  # AMX without AVX512-BF16 listed


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERSIGHT_DTYPE", raising=False)


@pytest.mark.parametrize(
    ("capability", "expected", "in_reason"),
    [
        (Capability("cpu", AVX2), "float32", "avx2 but no avx512_bf16"),
        (Capability("cpu", AVX512), "float32", "avx512f but no avx512_bf16"),
        (Capability("cpu", AVX512_BF16), "bfloat16", "avx512_bf16"),
        (Capability("cpu", AMX), "bfloat16", "amx_bf16"),
        (Capability("cpu", frozenset()), "float32", "no avx512_bf16 or amx_bf16"),
        (Capability("cuda", AVX2, gpu_name="NVIDIA H100", gpu_bf16=True), "bfloat16", "H100"),
        (Capability("cuda:1", AVX2, gpu_name="Tesla T4", gpu_bf16=False), "float32", "no bf16"),
        (Capability("mps", AMX), "float32", "'mps'"),
    ],
    ids=["avx2", "avx512", "avx512-bf16", "amx", "unknown-cpu", "cuda-bf16", "cuda-no-bf16", "mps"],
)
def test_machine_choice(capability: Capability, expected: str, in_reason: str) -> None:
    choice = pick_dtype(capability=capability)
    assert choice.dtype == expected
    assert choice.bf16 is (expected == "bfloat16")
    assert in_reason in choice.reason
    assert not choice.explicit
    assert choice.as_dict()["machine"]["device"] == capability.device


def test_a_cpu_choice_ignores_a_gpu_and_vice_versa() -> None:
    # An AVX2 host with a bf16 GPU: the GPU decides for CUDA, the CPU for the CPU.
    gpu = Capability("cuda", AVX2, gpu_name="A100", gpu_bf16=True)
    cpu = Capability("cpu", AVX2, gpu_name="A100", gpu_bf16=True)
    assert pick_dtype(capability=gpu).dtype == "bfloat16"
    assert pick_dtype(capability=cpu).dtype == "float32"


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(True, "bfloat16"), (False, "float32"), ("bf16", "bfloat16"), ("float32", "float32"),
     ("float16", "float16"), ("BFloat16", "bfloat16")],
)  # fmt: skip
def test_an_explicit_setting_wins(requested: str | bool, expected: str) -> None:
    for capability in (Capability("cpu", AVX2), Capability("cpu", AMX)):
        choice = pick_dtype(capability=capability, requested=requested, source="--dtype")
        assert choice.dtype == expected
        assert choice.explicit
        assert "--dtype" in choice.reason


def test_machine_means_no_setting() -> None:
    assert pick_dtype(capability=Capability("cpu", AVX2), requested="machine").dtype == "float32"
    assert not pick_dtype(capability=Capability("cpu", AMX), requested=None).explicit


def test_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERSIGHT_DTYPE", "float32")
    choice = pick_dtype(capability=Capability("cpu", AMX))
    assert (choice.dtype, choice.explicit) == ("float32", True)
    assert "OVERSIGHT_DTYPE" in choice.reason
    # A setting in a config or on the command line still beats the environment.
    assert pick_dtype(capability=Capability("cpu", AVX2), requested=True).dtype == "bfloat16"


def test_bad_setting_names_the_source_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"--dtype: dtype 'int4' is not one of bfloat16"):
        pick_dtype(capability=Capability("cpu", AVX2), requested="int4", source="--dtype")


def test_torch_dtype() -> None:
    torch = pytest.importorskip("torch")
    assert pick_dtype(capability=Capability("cpu", AMX)).torch_dtype is torch.bfloat16
    assert pick_dtype(capability=Capability("cpu", AVX2)).torch_dtype is torch.float32
    assert pick_dtype(requested="float16").torch_dtype is torch.float16


def test_detect_reads_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    cap = detect("cpu")
    assert cap.device == "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        words = set(cpuinfo.read_text().split())
        assert cap.cpu_bf16 == bool(words & {"avx512_bf16", "amx_bf16"})
    # oneDNN limited below its bf16 level: the bf16 flags no longer count.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not detect("cpu").cpu_bf16
    choice = pick_dtype("cpu")
    assert choice.dtype == "float32"
    if cap.cpu_bf16:  # the reason says why the CPU's bf16 flags did not count
        assert "ONEDNN_MAX_CPU_ISA=AVX2" in choice.reason


def test_huge_pages_default_on_before_torch_and_user_setting_wins() -> None:
    import os
    import subprocess
    import sys

    code = "import os, oversight.cli; print(os.environ.get('THP_MEM_ALLOC_ENABLE'))"
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == ("1" if sys.platform.startswith("linux") else "None")
    off = subprocess.run(
        [sys.executable, "-c", code], env={**env, "THP_MEM_ALLOC_ENABLE": "0"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert off.stdout.strip() == "0"


def test_huge_pages_left_alone_once_torch_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import sys

    from oversight import devices

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    monkeypatch.setitem(sys.modules, "torch", object())
    assert devices.enable_huge_pages() is False  # too late: PyTorch has read it already
    assert "THP_MEM_ALLOC_ENABLE" not in os.environ
