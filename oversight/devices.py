"""Which dtype is fast on the machine at hand: one decision for training and inference.

bf16 halves memory traffic, but it is only *fast* where the hardware computes in it:

* **CPU**: x86 CPUs with AVX512-BF16 (Cooper Lake, Zen 4 and later) or AMX (Sapphire Rapids and
  later) run bf16 matrix products natively through oneDNN. On other x86 CPUs (AVX2-only laptops,
  AVX512 without the BF16 extension) torch emulates bf16 by converting to fp32 and back, which
  is *slower* than fp32 (ARM CPUs stay on fp32 too: their bf16 paths are not measured here). On
  an AVX2-only CPU one SmolLM2-135M SFT step of 8 x 256 tokens took over 8 minutes in bf16
  against 20 s in fp32, and batch-16 generation ran at 31 tokens/s in bf16 against 59 in fp32
  (issue 12).
* **CUDA**: bf16 where the GPU supports it (``torch.cuda.is_bf16_supported()``: Ampere and later).
  Older GPUs get fp32 here; set ``dtype: float16`` yourself if your model is fp16-safe.

:func:`pick_dtype` makes the choice from a :class:`Capability` (detected, or passed in by a test
or a user who knows better) and returns a :class:`DtypeChoice` with the reason, which the callers
log and record (training metadata, the run summary, benchmark JSON). An explicit user setting
(``dtype:`` in a backend's options, ``bf16:`` in a training config, ``--dtype`` / ``--bf16`` on
the command line) always wins and is recorded as such.

For **training**, ``bf16`` means mixed precision: fp32 master weights with bf16 autocast (TRL's
``bf16=True``); ``float32`` means fp32 weights and no autocast. For **inference** the weights are
loaded in the chosen dtype.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

DtypeName = Literal["bfloat16", "float16", "float32"]

_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU feature flags (``/proc/cpuinfo`` spelling, which ``torch.cpu.get_capabilities`` shares)
that make bf16 matrix products native; either one is enough."""


HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"
"""PyTorch's switch for transparent huge pages in its CPU allocator (read once, at its first
allocation)."""


def enable_huge_pages() -> bool:
    """Let PyTorch's CPU allocator back its large tensors with transparent huge pages (Linux).

    Generation allocates and frees large activation and cache tensors at every step; with 4 KB
    pages each allocation faults its memory in again. On the 2-core AMD EPYC of issue 12 (THP
    in ``madvise`` mode) the main job took 11 million page faults and 38 s of system time;
    with huge pages 0.76 million and 23 s, and 10% less wall time, for about 20% more resident
    memory (``benchmarks/results/main_job_zen4.json``). Sets :data:`HUGE_PAGES_ENV` to ``1``
    unless the user set it (``0`` turns it off) and only before torch is imported (PyTorch reads
    it once). Returns whether huge pages are on for this process.
    """
    if not sys.platform.startswith("linux"):
        return False
    if "torch" not in sys.modules:
        os.environ.setdefault(HUGE_PAGES_ENV, "1")
    return os.environ.get(HUGE_PAGES_ENV, "") == "1"


@dataclass(frozen=True)
class Capability:
    """What a device can compute fast: the inputs of :func:`pick_dtype`."""

    device: str = "cpu"
    """``cpu`` or ``cuda`` (an index such as ``cuda:1`` is allowed)."""
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    """CPU feature flags in ``/proc/cpuinfo`` spelling (``avx2``, ``avx512f``, ``avx512_bf16``,
    ``amx_bf16``, ...)."""
    cpu_name: str = ""
    """The CPU model, for the record."""
    cpu_dispatch: str = ""
    """ATen's kernel level, ``torch.backends.cpu.get_cpu_capability()`` (``AVX2``, ``AVX512``);
    it does not say whether bf16 is native, so it is recorded but not decisive."""
    gpu_name: str = ""
    """The CUDA device's name, when ``device`` is CUDA."""
    gpu_bf16: bool = False
    """Whether the CUDA device computes in bf16 (``torch.cuda.is_bf16_supported()``)."""
    note: str = ""
    """Why a flag the CPU has does not count (e.g. ``ONEDNN_MAX_CPU_ISA=AVX2``)."""

    @property
    def cpu_bf16(self) -> bool:
        """The CPU has AVX512-BF16 or AMX-BF16."""
        return any(flag in self.cpu_flags for flag in _CPU_BF16_FLAGS)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the relevant CPU flags only)."""
        relevant = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")
        out: dict[str, Any] = {
            "device": self.device,
            "cpu": self.cpu_name,
            "cpu_flags": [f for f in relevant if f in self.cpu_flags],
            "cpu_dispatch": self.cpu_dispatch,
        }
        if self.note:
            out["note"] = self.note
        if self.device.startswith("cuda"):
            out.update(gpu=self.gpu_name, gpu_bf16=self.gpu_bf16)
        return out


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype picked for a device and why (see :func:`pick_dtype`)."""

    dtype: DtypeName
    """``bfloat16`` or ``float32`` (``float16`` only when a user asked for it)."""
    reason: str
    """One sentence a user can check: the flag or setting that decided."""
    explicit: bool = False
    """True when a user setting decided, not the machine."""
    capability: Capability | None = None
    """What the machine offered (recorded even when a user setting decided)."""

    @property
    def bf16(self) -> bool:
        """bf16 (autocast when training, bf16 weights when generating)."""
        return self.dtype == "bfloat16"

    @property
    def torch_dtype(self) -> torch.dtype:
        """The ``torch.dtype`` for this choice."""
        import torch

        return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(self.dtype, torch.float32)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record of the choice (for metadata files and summaries)."""
        out: dict[str, Any] = {
            "dtype": self.dtype,
            "reason": self.reason,
            "explicit": self.explicit,
        }
        if self.capability is not None:
            out["machine"] = self.capability.as_dict()
        return out


def _proc_cpuinfo() -> tuple[frozenset[str], str]:
    """Flags and model name from ``/proc/cpuinfo`` (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return frozenset(), ""
    flags: frozenset[str] = frozenset()
    name = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
        elif key == "model name" and not name:
            name = value.strip()
    return flags, name


def _torch_cpu_flags() -> tuple[frozenset[str], str]:
    """Flags from ``torch.cpu.get_capabilities()`` (recent torch) in ``/proc/cpuinfo`` spelling."""
    import torch

    get = getattr(torch.cpu, "get_capabilities", None)
    if get is None:
        return frozenset(), ""
    caps = get()
    # torch spells the AVX512 foundation "avx512_f"; /proc/cpuinfo says "avx512f".
    flags = {("avx512f" if k == "avx512_f" else k) for k, v in caps.items() if v is True}
    return frozenset(flags), str(caps.get("cpu_name", ""))


_ONEDNN_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                        "AVX512_CORE_VNNI")  # fmt: skip
"""``ONEDNN_MAX_CPU_ISA`` values that keep oneDNN (torch's CPU matmuls) off the bf16 units."""


def detect(device: str = "cpu") -> Capability:
    """The capability of ``device`` on this machine (CPU flags are read either way).

    ``ONEDNN_MAX_CPU_ISA=AVX2`` (or another level below ``AVX512_CORE_BF16``) keeps torch's
    matmuls off the bf16 units, so the bf16 flags are dropped then: that is also how to measure an
    AVX2-class CPU on a newer one (with ``ATEN_CPU_CAPABILITY=avx2``).
    """
    import torch

    flags, name = _proc_cpuinfo()
    torch_flags, torch_name = _torch_cpu_flags()
    flags = flags | torch_flags
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", ""))
    note = ""
    if isa.strip().upper() in _ONEDNN_WITHOUT_BF16 and flags & set(_CPU_BF16_FLAGS):
        flags = flags - set(_CPU_BF16_FLAGS)
        note = f"ONEDNN_MAX_CPU_ISA={isa} keeps oneDNN off the CPU's bf16 units"
    dispatch = ""
    with contextlib.suppress(Exception):  # an unknown level on an exotic build: keep going
        dispatch = str(torch.backends.cpu.get_cpu_capability())
    gpu_name, gpu_bf16 = "", False
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        gpu_name = torch.cuda.get_device_name(index)
        gpu_bf16 = bool(torch.cuda.is_bf16_supported())
    return Capability(
        device=device,
        cpu_flags=flags,
        cpu_name=name or torch_name,
        cpu_dispatch=dispatch,
        gpu_name=gpu_name,
        gpu_bf16=gpu_bf16,
        note=note,
    )


def default_device() -> str:
    """``cuda`` when a CUDA GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


MACHINE = "machine"
"""The setting that leaves the choice to :func:`pick_dtype` (the default everywhere)."""
_NAMES: dict[str, DtypeName] = {
    "bfloat16": "bfloat16", "bf16": "bfloat16", "true": "bfloat16",
    "float32": "float32", "fp32": "float32", "false": "float32",
    "float16": "float16", "fp16": "float16",
}  # fmt: skip


def pick_dtype(
    device: str = "cpu",
    capability: Capability | None = None,
    *,
    requested: str | bool | None = None,
    source: str = "the setting",
) -> DtypeChoice:
    """The dtype to train and generate in on ``device``, and the reason.

    ``requested`` is the user's explicit setting (a dtype name or a bf16 flag; ``None`` or
    ``"machine"``: none); when given it wins. Otherwise the environment variable
    ``OVERSIGHT_DTYPE`` (``bfloat16`` / ``float32``; empty or ``machine``: unset) wins, and
    otherwise the machine decides: bf16 on a CPU with AVX512-BF16 or AMX-BF16, or on a
    CUDA GPU with bf16; fp32 everywhere else. ``capability`` defaults to :func:`detect` of
    ``device``; tests pass one in (``device`` is then ignored). ``source`` names the user's
    setting in the reason (``"the training config's bf16"``).
    """
    cap = capability if capability is not None else detect(device)
    if requested is None or requested == MACHINE:
        env = os.environ.get("OVERSIGHT_DTYPE", "").strip().lower()
        if env and env != MACHINE:
            return _explicit(env, "the environment variable OVERSIGHT_DTYPE", cap)
    else:
        return _explicit(requested, source, cap)
    if cap.device.startswith("cuda"):
        if cap.gpu_bf16:
            return DtypeChoice(
                "bfloat16", f"the CUDA GPU {cap.gpu_name} supports bf16", capability=cap
            )
        return DtypeChoice(
            "float32",
            f"the CUDA GPU {cap.gpu_name} has no bf16 support (set float16 explicitly if your "
            "model is fp16-safe)",
            capability=cap,
        )
    if cap.device != "cpu":
        reason = f"device {cap.device!r}: no measured bf16 fast path"
        return DtypeChoice("float32", reason, capability=cap)
    native = [f for f in _CPU_BF16_FLAGS if f in cap.cpu_flags]
    if native:
        return DtypeChoice(
            "bfloat16",
            f"the CPU has {' and '.join(native)}: native bf16 matrix products",
            capability=cap,
        )
    widest = next((f for f in ("avx512f", "avx2") if f in cap.cpu_flags), "")
    what = f"{widest} but " if widest else ""
    reason = (
        f"the CPU has {what}no avx512_bf16 or amx_bf16: bf16 would be emulated, slower than fp32"
    )
    return DtypeChoice("float32", reason + (f" ({cap.note})" if cap.note else ""), capability=cap)


def _explicit(value: str | bool, source: str, capability: Capability) -> DtypeChoice:
    from .errors import ConfigError

    key = str(value).strip().lower()
    if key not in _NAMES:
        raise ConfigError(
            f"{source}: dtype {value!r} is not one of bfloat16, float32, float16 or {MACHINE} "
            "(the machine's choice)"
        )
    name = _NAMES[key]
    return DtypeChoice(name, f"{name} set by {source}", explicit=True, capability=capability)
