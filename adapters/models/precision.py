"""Which floating-point precision to encode in, and encoding under it.

Why bf16: on CPUs that execute it natively (AVX512-BF16, AMX) and on CUDA GPUs with bf16 units, the
matrix products run at 2-2.5x the fp32 rate, and clicktune's encoding is matmul-bound (fp32 already
reaches 70-85% of the fp32 peak). Vectors stay at cosine ~0.99998 to fp32 and SciFact nDCG@10 moves by
less than 0.001 (benchmarks/precision.py). Where bf16 is only emulated it is slower than fp32, so
``auto`` picks it only on native hardware.

Why ``torch.autocast`` rather than casting the weights: autocast keeps fp32 master weights and runs the
matmul-class ops (linear, attention) in bf16, while the residual additions and layer norms stay fp32
(checked per module on all-MiniLM-L6-v2). The same loaded model therefore serves fp32 and bf16 callers,
and rounding does not accumulate along the residual stream as it does with bf16 weights (cosine to fp32
0.99998 against 0.99995).
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
PRECISION_SETTINGS: tuple[str, ...] = ("auto", "fp32", "bf16")

#: /proc/cpuinfo flags of CPUs that execute bf16 dot products in hardware.
_NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def _proc_cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX on this CPU.

    torch's own cpuinfo probe works on every OS; /proc/cpuinfo is the fallback for torch builds that
    lack the private helpers (they are not public API and may move).
    """
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(callable(p) for p in probes):
        try:
            return any(bool(p()) for p in probes)  # type: ignore[misc]
        except RuntimeError:
            pass
    return bool(_proc_cpuinfo_flags() & set(_NATIVE_CPU_FLAGS))


def _device_type(device: str | None) -> str:
    """The torch device type ``device`` names; None means what sentence-transformers would pick."""
    import torch

    if device:
        return torch.device(device).type
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def native_bf16_available(device: str | None = None) -> bool:
    """True where bf16 matmuls run in hardware on ``device`` (None: the device a model would land on).

    CUDA asks torch without emulation (pre-Ampere GPUs "support" bf16 only by emulating it, slower
    than fp32). Devices other than CPU and CUDA (MPS, XPU, ...) are not claimed: unmeasured, so fp32.
    """
    kind = _device_type(device)
    if kind == "cuda":
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    if kind == "cpu":
        return cpu_has_native_bf16()
    return False


@functools.lru_cache(maxsize=16)
def _log_choice(setting: str, chosen: str, device_type: str, why: str) -> None:
    # lru_cache makes this a once-per-process log line per distinct decision, not one per model load.
    if chosen == "bf16" and "unavailable" in why:
        log.warning("precision=%s on %s without native bf16 (%s): expect it slower than fp32", setting, device_type, why)
    else:
        log.info("precision=%s resolved to %s on %s (%s)", setting, chosen, device_type, why)


def resolve_precision(
    setting: str = "auto",
    *,
    device: str | None = None,
    bf16_supported: Callable[[str | None], bool] | None = None,
) -> Precision:
    """``auto`` -> bf16 only where native, else fp32; an explicit ``fp32``/``bf16`` is honoured as given.

    ``bf16_supported(device)`` is the capability check (default :func:`native_bf16_available`, looked
    up at call time so a test can also patch the module attribute for code that resolves internally).
    The decision is logged once per process per distinct outcome.
    """
    if setting not in PRECISION_SETTINGS:
        raise ValueError(f"precision must be auto, fp32 or bf16, not {setting!r}")
    kind = _device_type(device)
    if setting == "fp32":
        chosen: Precision = "fp32"
        why = "explicit"
    else:
        native = bool((bf16_supported or native_bf16_available)(device))
        why = f"native bf16 {'available' if native else 'unavailable'}"
        if setting == "bf16":
            chosen, why = "bf16", f"explicit; {why}"
        else:
            chosen = "bf16" if native else "fp32"
    _log_choice(setting, chosen, kind, why)
    return chosen


@contextlib.contextmanager
def autocast(precision: Precision, device_type: str = "cpu") -> Iterator[None]:
    """Run the forward passes inside in ``precision`` (fp32: no change).

    Autocast state is per thread and its weight-cast cache lives until the outermost context exits,
    so callers enter it around each batch, on the thread that runs the model.
    """
    if precision == "fp32":
        yield
        return
    if precision != "bf16":
        raise ValueError(f"precision must be fp32 or bf16 here (resolve 'auto' first), not {precision!r}")
    import torch

    with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
        yield
