"""Checkpoints: which model kinds exist, where their weights come from, and whether a file is sane.

Why one module: every model (SAM, STCN, Clip-PanoFCN) needs the same three answers - *which file*
(CLI flag > environment variable > project/user settings), *is it the right file* (exists, loads,
complete, keys of the expected model) and *which exact weights* (sha256, shown to the user and used
as a cache key). Getting these wrong produces cryptic torch tracebacks deep inside a model, so
everything is checked here and reported as an :class:`CheckpointError` that names the file, the
problem and the fix.

No network access happens anywhere in this module: a missing checkpoint is an error that tells
the user where to put one, never a silent download.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator.errors import InputError


class CheckpointError(InputError):
    """A checkpoint is missing, unreadable, truncated or belongs to another model kind."""


KeyCheck = Callable[[list[str], Mapping[str, Any]], str | None]


def _sam_check(embed_dim: int, depth: int) -> KeyCheck:
    """Key check for a SAM image-encoder size: the patch embedding width and block count identify it."""

    def check(keys: list[str], sd: Mapping[str, Any]) -> str | None:
        for prefix in ("image_encoder.", "prompt_encoder.", "mask_decoder."):
            if not any(k.startswith(prefix) for k in keys):
                return f"no '{prefix}*' weights (a SAM checkpoint has image_encoder, prompt_encoder, mask_decoder)"
        w = sd.get("image_encoder.patch_embed.proj.weight")
        if w is None or not hasattr(w, "shape"):
            return "no 'image_encoder.patch_embed.proj.weight'"
        found_dim = int(w.shape[0])
        blocks = {k.split(".")[2] for k in keys if k.startswith("image_encoder.blocks.")}
        found_depth = len(blocks)
        if found_dim != embed_dim or found_depth != depth:
            size = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}.get(found_dim, f"width {found_dim}")
            return (f"image encoder is {size} ({found_dim} wide, {found_depth} blocks), "
                    f"expected {embed_dim} wide with {depth} blocks")
        return None

    return check


def _prefix_check(required: Iterable[str], any_of: Iterable[str] = ()) -> KeyCheck:
    """Key check requiring every prefix in ``required`` and at least one in ``any_of`` (if given)."""
    required = tuple(required)
    any_of = tuple(any_of)

    def check(keys: list[str], sd: Mapping[str, Any]) -> str | None:
        missing = [p for p in required if not any(k.startswith(p) for k in keys)]
        if missing:
            return "missing weights " + ", ".join(f"'{p}*'" for p in missing)
        if any_of and not any(k.startswith(p) for p in any_of for k in keys):
            return "none of " + ", ".join(f"'{p}*'" for p in any_of)
        return None

    return check


@dataclass(frozen=True)
class ModelKind:
    """One entry of the registry: a model family whose checkpoints are interchangeable."""

    name: str
    description: str
    check_keys: KeyCheck
    hint: str = ""  # where users usually get the file (shown in "missing checkpoint" messages)
    env_aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def env_var(self) -> str:
        return f"VPS_{self.name.upper()}_CHECKPOINT"

    @property
    def env_vars(self) -> tuple[str, ...]:
        """Environment variables consulted, most specific first."""
        return (self.env_var, *self.env_aliases)


_SAM_HINT = "the official segment-anything release (sam_vit_{s}_*.pth)"

REGISTRY: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> None:
    """Add or replace a model kind (model modules may refine their key check)."""
    REGISTRY[kind.name] = kind


for _name, _dim, _depth in (("sam_vit_b", 768, 12), ("sam_vit_l", 1024, 24), ("sam_vit_h", 1280, 32)):
    register_kind(ModelKind(_name, f"Segment Anything, {_name[4:]} image encoder",
                            _sam_check(_dim, _depth), _SAM_HINT.format(s=_name[-1]),
                            env_aliases=("VPS_SAM_CHECKPOINT",)))
register_kind(ModelKind("stcn", "STCN-style space-time memory network",
                        _prefix_check(("key_encoder.", "value_encoder."), ("decoder.",)),
                        "the STCN release (stcn.pth) or a checkpoint trained by this tool"))
register_kind(ModelKind("clip_panofcn", "Clip-PanoFCN video panoptic pre-annotation",
                        _prefix_check(("backbone.",), ("position_head.", "kernel_head.", "head.")),
                        "a checkpoint trained by `main.py preannotate train`"))


def get_kind(kind: str) -> ModelKind:
    try:
        return REGISTRY[kind]
    except KeyError:
        raise CheckpointError(f"unknown model kind {kind!r}; known kinds: {', '.join(sorted(REGISTRY))}") from None


# --------------------------------------------------------------------------- path resolution


@dataclass(frozen=True)
class CheckpointSource:
    """A resolved checkpoint path and where it came from (shown in the status bar and errors)."""

    kind: str
    path: Path
    origin: str  # "--checkpoint flag" | "environment variable VPS_..." | "settings 'checkpoints.sam_vit_b'"


def _settings_value(kind: str, settings: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """Look a kind up in a settings dict: ``{"checkpoints": {kind: path}}`` or ``{f"{kind}_checkpoint": path}``."""
    if not settings:
        return None
    nested = settings.get("checkpoints")
    if isinstance(nested, Mapping) and nested.get(kind):
        return str(nested[kind]), f"settings 'checkpoints.{kind}'"
    flat = settings.get(f"{kind}_checkpoint")
    if flat:
        return str(flat), f"settings '{kind}_checkpoint'"
    return None


USER_SETTINGS_ENV = "VPS_ANNOTATOR_SETTINGS"


def user_settings_path(env: Mapping[str, str] | None = None) -> Path:
    """The per-user settings file: ``$VPS_ANNOTATOR_SETTINGS`` or ``~/.config/vps_annotator/settings.json``."""
    env = os.environ if env is None else env
    if env.get(USER_SETTINGS_ENV):
        return Path(env[USER_SETTINGS_ENV]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "vps_annotator" / "settings.json"


def load_user_settings(path: str | os.PathLike[str] | None = None,
                       env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the user settings file (``{}`` if there is none); a malformed file is a :class:`CheckpointError`."""
    import json

    p = Path(path) if path is not None else user_settings_path(env)
    if not p.is_file():
        return {}
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"user settings {p} are not readable JSON ({e}); fix or delete the file") from e
    if not isinstance(doc, dict):
        raise CheckpointError(f"user settings {p} must be a JSON object")
    return doc


def merge_settings(project: Mapping[str, Any] | None, user: Mapping[str, Any] | None) -> dict[str, Any]:
    """Project settings over user settings; ``checkpoints`` are merged per kind (project wins)."""
    out: dict[str, Any] = dict(user or {})
    out.update(project or {})
    ck = dict((user or {}).get("checkpoints") or {})
    ck.update({k: v for k, v in ((project or {}).get("checkpoints") or {}).items() if v})
    out["checkpoints"] = ck
    return out


def resolve_checkpoint(kind: str, cli_path: str | os.PathLike[str] | None = None,
                       settings: Mapping[str, Any] | None = None,
                       env: Mapping[str, str] | None = None) -> CheckpointSource | None:
    """Where the checkpoint of ``kind`` comes from: CLI flag > env var > settings; ``None`` if nowhere.

    ``settings`` may be several dicts merged by the caller (project settings over user settings).
    The path is only resolved here, not validated (see :func:`validate_checkpoint`).
    """
    mk = get_kind(kind)
    if cli_path:
        return CheckpointSource(kind, Path(cli_path).expanduser(), "--checkpoint flag")
    env = os.environ if env is None else env
    for var in mk.env_vars:
        if env.get(var):
            return CheckpointSource(kind, Path(env[var]).expanduser(), f"environment variable {var}")
    found = _settings_value(kind, settings)
    if found:
        return CheckpointSource(kind, Path(found[0]).expanduser(), found[1])
    return None


def missing_message(kind: str) -> str:
    """Why a model is unavailable when no checkpoint is configured, and how to configure one."""
    mk = get_kind(kind)
    return (f"no {mk.description} checkpoint configured for '{kind}': pass --checkpoint PATH, set "
            f"{' or '.join(mk.env_vars)}, or add \"checkpoints\": {{\"{kind}\": PATH}} to the settings"
            + (f" (get it from {mk.hint})" if mk.hint else ""))


def require_checkpoint(kind: str, cli_path: str | os.PathLike[str] | None = None,
                       settings: Mapping[str, Any] | None = None,
                       env: Mapping[str, str] | None = None) -> CheckpointSource:
    """Like :func:`resolve_checkpoint` but raise a :class:`CheckpointError` explaining how to configure one."""
    src = resolve_checkpoint(kind, cli_path, settings, env)
    if src is None:
        raise CheckpointError(missing_message(kind))
    return src


# --------------------------------------------------------------------------- hashing and loading

_HASH_CACHE: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, memoised on (path, size, mtime) since SAM-H weighs 2.5 GB."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _HASH_LOCK:
        _HASH_CACHE[key] = digest
    return digest


def _unwrap(obj: Any) -> dict[str, Any] | None:
    """Find the state dict in common checkpoint layouts ({"model": sd}, {"state_dict": sd}, DataParallel)."""
    if not isinstance(obj, Mapping):
        return None
    for key in ("state_dict", "model", "network", "model_state_dict"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
            obj = inner
            break
    if not obj or not all(isinstance(k, str) for k in obj):
        return None
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _raw_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into a precise :class:`CheckpointError`."""
    import pickle

    import torch

    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (check the path, or configure another one)")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path is a folder, not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}; the download or copy failed, get it again")
    with path.open("rb") as f:
        magic = f.read(4)
    is_zip_magic = magic[:2] == b"PK"
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"checkpoint is truncated ({size} bytes): {path}; the download or copy was "
                              f"interrupted, get the file again ({e})") from e
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "weights_only" in msg or "Weights only load failed" in msg:
            raise CheckpointError(f"checkpoint {path} contains Python objects that are not plain weights and "
                                  "is refused for safety (only tensors/dicts are loaded); re-save it with "
                                  "torch.save(model.state_dict(), path)") from e
        if is_zip_magic:
            raise CheckpointError(f"checkpoint is truncated or corrupt: {path} ({msg})") from e
        raise CheckpointError(f"not a PyTorch checkpoint: {path} ({msg})") from e
    except RuntimeError as e:
        msg = str(e)
        if is_zip_magic or "zip archive" in msg or "central directory" in msg:
            raise CheckpointError(f"checkpoint is truncated or corrupt ({size} bytes): {path}; get the file "
                                  f"again ({msg.split('.')[0] if msg else 'unreadable archive'})") from e
        raise CheckpointError(f"not a PyTorch checkpoint: {path} ({msg.splitlines()[0] if msg else e})") from e
    except Exception as e:  # noqa: BLE001 - the unpickler raises anything (KeyError, ValueError...) on junk
        if is_zip_magic:
            raise CheckpointError(f"checkpoint is truncated or corrupt ({size} bytes): {path}") from e
        raise CheckpointError(f"not a PyTorch checkpoint: {path} ({type(e).__name__}: {e})") from e


def detect_kind(state_dict: Mapping[str, Any]) -> str | None:
    """The registered kind whose key check accepts ``state_dict`` (first match), or ``None``."""
    keys = list(state_dict)
    for name, mk in REGISTRY.items():
        if mk.check_keys(keys, state_dict) is None:
            return name
    return None


def detect_checkpoint_kind(path: str | os.PathLike[str]) -> str:
    """Load a checkpoint and name the registered kind it belongs to; :class:`CheckpointError` if none."""
    p = Path(path).expanduser()
    sd = _unwrap(_raw_load(p))
    kind = detect_kind(sd) if sd is not None else None
    if kind is None:
        raise CheckpointError(f"checkpoint {p} matches no known model kind ({', '.join(sorted(REGISTRY))}); "
                              "name the expected kind to see what does not match")
    return kind


def load_state_dict_of(path: str | os.PathLike[str], kinds: Iterable[str]) -> tuple[str, dict[str, Any]]:
    """Load a checkpoint once and return ``(kind, state_dict)`` for the first of ``kinds`` it fits.

    For settings that may name any of several sizes (``VPS_SAM_CHECKPOINT`` serves vit_b/l/h).
    """
    kinds = list(kinds)
    for k in kinds:
        get_kind(k)
    p = Path(path).expanduser()
    sd = _unwrap(_raw_load(p))
    if sd is None:
        raise CheckpointError(f"checkpoint {p} holds no state dict (expected a mapping of parameter names to "
                              "tensors)")
    problems = []
    for k in kinds:
        problem = REGISTRY[k].check_keys(list(sd), sd)
        if problem is None:
            return k, sd
        problems.append(f"{k}: {problem}")
    other = detect_kind(sd)
    looks = f"; it looks like a '{other}' checkpoint" if other else ""
    raise CheckpointError(f"checkpoint {p} is none of {', '.join(kinds)} ({'; '.join(problems[:2])}){looks}")


def load_state_dict(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Load and validate the checkpoint at ``path`` as model kind ``kind``; return its state dict.

    Raises :class:`CheckpointError` for a missing/empty/truncated file, a file that is not a
    checkpoint, or weights of another model kind (naming the kind they look like).
    """
    mk = get_kind(kind)
    p = Path(path).expanduser()
    sd = _unwrap(_raw_load(p))
    if sd is None:
        raise CheckpointError(f"checkpoint {p} holds no state dict (expected a mapping of parameter names to "
                              "tensors)")
    problem = mk.check_keys(list(sd), sd)
    if problem is not None:
        other = detect_kind(sd)
        looks = f"; it looks like a '{other}' checkpoint" if other else ""
        raise CheckpointError(f"checkpoint {p} is not a {kind} checkpoint: {problem}{looks}. "
                              f"Configure a {mk.description} checkpoint" + (f" ({mk.hint})" if mk.hint else ""))
    return sd


@dataclass(frozen=True)
class CheckpointInfo:
    """A validated checkpoint: what the status bar and ``main.py models`` show."""

    kind: str
    path: Path
    sha256: str
    size: int
    num_tensors: int
    origin: str = ""

    def describe(self) -> str:
        return (f"{self.kind}: {self.path} ({self.size / 1e6:.1f} MB, {self.num_tensors} tensors, "
                f"sha256 {self.sha256[:12]}…){' from ' + self.origin if self.origin else ''}")


def compare_state_dict(expected: Mapping[str, Any], sd: Mapping[str, Any]) -> str | None:
    """What keeps ``sd`` from loading strictly into a model whose state dict is ``expected``, or ``None``."""

    def shape(v: Any) -> str:
        if not hasattr(v, "shape"):
            return type(v).__name__
        return "x".join(str(int(n)) for n in v.shape) if len(v.shape) else "scalar"

    def listing(items: list[str], limit: int = 5) -> str:
        return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")

    wrong = [f"'{k}' ({shape(sd[k])}, expected {shape(v)})" for k, v in expected.items()
             if k in sd and (not hasattr(sd[k], "shape") or tuple(sd[k].shape) != tuple(v.shape))]
    unexpected = [f"'{k}'" for k in sd if k not in expected]
    missing = [f"'{k}'" for k in expected if k not in sd]
    problems = [f"{what} {listing(items)}" for what, items in
                (("wrong shape for", wrong), ("unexpected keys", unexpected), ("missing keys", missing)) if items]
    return "; ".join(problems) or None


def _check_structure(path: Path, kind: str, sd: Mapping[str, Any]) -> None:
    """Compare every key and shape with the network the kind builds (on the meta device: no memory,
    no random init), so that a file passing validation also loads; the prefix checks of the
    registry only tell the kinds apart."""
    import torch

    if kind.startswith("sam_"):
        from segment_anything import sam_model_registry

        with torch.device("meta"):
            expected = sam_model_registry[kind[len("sam_"):]](checkpoint=None).state_dict()
        problem = compare_state_dict(expected, sd)
        if problem:
            raise CheckpointError(f"checkpoint {path} does not fit a {kind} network: {problem}")
    elif kind == "stcn":
        from models.stcn import STCN, check_state_dict

        with torch.device("meta"):
            net = STCN()
        check_state_dict(net, sd, source=f"checkpoint {path}")


def validate_checkpoint(path: str | os.PathLike[str], kind: str, origin: str = "") -> CheckpointInfo:
    """Fully check a checkpoint (loads it, compares every key and shape with the network) and return
    its identity; raises :class:`CheckpointError`."""
    p = Path(path).expanduser()
    sd = load_state_dict(p, kind)
    _check_structure(p, kind, sd)
    return CheckpointInfo(kind, p.resolve(), sha256_file(p), p.stat().st_size, len(sd), origin)


def availability(kind: str, cli_path: str | os.PathLike[str] | None = None,
                 settings: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None, deep: bool = False) -> tuple[bool, str]:
    """``(available, reason)`` for enabling a tool: e.g. the SAM tool greys out and shows ``reason``.

    ``deep=False`` checks only that the file exists (cheap, for start-up); ``deep=True`` loads it.
    """
    src = resolve_checkpoint(kind, cli_path, settings, env)
    if src is None:
        return False, missing_message(kind)
    if not src.path.is_file():
        return False, f"{kind} checkpoint from {src.origin} not found: {src.path}"
    if deep:
        try:
            info = validate_checkpoint(src.path, kind, src.origin)
        except CheckpointError as e:
            return False, str(e)
        return True, info.describe()
    return True, f"{kind}: {src.path} (from {src.origin})"
