"""Which floating-point precision to encode in, and encoding under it.

bf16 halves the cost of the matrix products on CPUs that execute it natively (AVX512-BF16, AMX) and
on CUDA GPUs that support it, with vectors at cosine ~0.99998 to fp32 (measured, see
benchmarks/precision.py). Elsewhere bf16 is emulated and slower, so ``auto`` falls back to fp32.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
PrecisionSetting = Literal["auto", "fp32", "bf16"]

_NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16_available(device: str | None = None) -> bool:
    """True where bf16 matmuls run in hardware: a bf16-capable CUDA device, or a CPU with the flags."""
    import torch

    if device and device.startswith("cuda") or (device is None and torch.cuda.is_available()):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return any(flag in _cpu_flags() for flag in _NATIVE_CPU_FLAGS)


@functools.lru_cache(maxsize=8)
def _log_choice(setting: str, chosen: str, native: bool) -> None:
    log.info("precision=%s resolved to %s (native bf16 %s)", setting, chosen, "available" if native else "unavailable")


def resolve_precision(
    setting: PrecisionSetting = "auto",
    *,
    device: str | None = None,
    bf16_supported: Callable[[str | None], bool] = native_bf16_available,
) -> Precision:
    """``auto`` -> bf16 only where native; an explicit choice is honoured. Logged once per choice."""
    if setting not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {setting!r}")
    native = bf16_supported(device)
    chosen: Precision = ("bf16" if native else "fp32") if setting == "auto" else setting  # type: ignore[assignment]
    _log_choice(setting, chosen, native)
    return chosen


@contextlib.contextmanager
def autocast(precision: Precision, device_type: str = "cpu") -> Iterator[None]:
    """Run the forward pass in ``precision``; fp32 is a no-op."""
    if precision != "bf16":
        yield
        return
    import torch

    with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
        yield
