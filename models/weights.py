"""Checkpoints: which model kinds exist, where their weights come from, and whether a file is sane.

Why one module: every model (SAM, STCN, Clip-PanoFCN) needs the same three answers - *which file*
(CLI flag > environment variable > project/user settings), *is it the right file* (exists, is a
PyTorch file and not e.g. a PNG or a download page, loads with ``weights_only=True``, holds every
key and shape of the network and nothing else, and no values a trained network cannot hold - see
:func:`weight_damage`) and *which exact weights* (sha256, shown to the user and used as a cache
key). Getting these wrong produces cryptic torch tracebacks deep inside a model, so
everything is checked here and reported as an :class:`CheckpointError` that names the file, the
problem and the fix.

No network access happens anywhere in this module: a missing checkpoint is an error that tells
the user where to put one, never a silent download.
"""

from __future__ import annotations

import hashlib
import math
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
                        "the STCN release (stcn.pth, github.com/hkchengrex/STCN)"))
register_kind(ModelKind("clip_panofcn", "Clip-PanoFCN video panoptic pre-annotation",
                        _prefix_check(("backbone.bottom_up.", "position_head.", "kernel_head.", "feature_encoder.",
                                       "thing_generator.", "stuff_generator.")),
                        "the ClipPanoFCN release of github.com/VIPSeg-Dataset/VIPSeg-Dataset "
                        "(model_final.pth, 'model weight for inference'), or train one on finished videos "
                        "with `main.py train-preannotator`"))

#: tensors a network initialises to a constant (zeros), so an untrained or lightly trained file may
#: legitimately hold them constant; every other multi-dimensional tensor must vary
CONSTANT_ALLOWED: dict[str, tuple[str, ...]] = {
    "sam_vit_b": ("pos_embed", "rel_pos_h", "rel_pos_w"),
    "sam_vit_l": ("pos_embed", "rel_pos_h", "rel_pos_w"),
    "sam_vit_h": ("pos_embed", "rel_pos_h", "rel_pos_w"),
}


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
        magic = f.read(16)
    is_zip_magic = magic[:2] == b"PK"
    if not is_zip_magic and not magic.startswith(b"\x80"):
        # neither a zip archive (torch.save) nor a pickle (legacy torch.save): never unpickle it
        raise CheckpointError(f"not a PyTorch checkpoint: {path} looks like {_file_kind(magic)}; "
                              "configure the .pth/.pt file itself")
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


_FILE_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
               (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive (unpack it first)"),
               (b"7z\xbc\xaf", "a 7-zip archive (unpack it first)"), (b"Rar!", "a RAR archive (unpack it first)"),
               (b"\x93NUMPY", "a NumPy .npy array"), (b"\x89HDF", "an HDF5 file (Keras/TensorFlow weights)"))


def _file_kind(magic: bytes) -> str:
    """A short guess of what a file is from its first bytes (for "not a checkpoint" messages)."""
    for prefix, what in _FILE_MAGIC:
        if magic.startswith(prefix):
            return what
    head = magic.lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head")):
        return "an HTML page (a download link that returned a web page instead of the file)"
    if magic[:1] in (b"{", b"["):
        return "a JSON/text file"
    try:
        magic.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of an unknown format"
    return "a text file"


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
    raw = _raw_load(p)
    sd = _unwrap(raw)
    if sd is None:
        raise CheckpointError(f"checkpoint {p} holds no state dict (expected a mapping of parameter names to "
                              "tensors)")
    problems = []
    for k in kinds:
        problem = REGISTRY[k].check_keys(list(sd), sd)
        if problem is None:
            _check_structure(p, k, sd, raw)
            check_plausible(sd, k, f"checkpoint {p}")
            return k, sd
        problems.append(f"{k}: {problem}")
    other = detect_kind(sd)
    looks = f"; it looks like a '{other}' checkpoint" if other else ""
    raise CheckpointError(f"checkpoint {p} is none of {', '.join(kinds)} ({'; '.join(problems[:2])}){looks}")


def load_state_dict(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Load and fully validate the checkpoint at ``path`` as model kind ``kind``; return its state dict
    (see :func:`load_state_dict_and_meta` for what is checked)."""
    return load_state_dict_and_meta(path, kind)[0]


def load_state_dict_and_meta(path: str | os.PathLike[str], kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Like :func:`load_state_dict`, also returning the file's other top-level entries (``meta``:
    plain values such as ``iteration`` and ``*_config`` dicts).

    Raises :class:`CheckpointError` for a missing/empty/truncated file, a file that is not a
    checkpoint, weights of another model kind (naming the kind they look like), a key or shape the
    network does not have (naming the first ones), or values a trained network cannot hold
    (:func:`check_plausible`): a file that passes loads strictly and is not silently damaged.
    """
    mk = get_kind(kind)
    p = Path(path).expanduser()
    raw = _raw_load(p)
    sd = _unwrap(raw)
    if sd is None:
        raise CheckpointError(f"checkpoint {p} holds no state dict (expected a mapping of parameter names to "
                              "tensors)")
    problem = mk.check_keys(list(sd), sd)
    if problem is not None:
        other = detect_kind(sd)
        looks = f"; it looks like a '{other}' checkpoint" if other else ""
        raise CheckpointError(f"checkpoint {p} is not a {kind} checkpoint: {problem}{looks}. "
                              f"Configure a {mk.description} checkpoint" + (f" ({mk.hint})" if mk.hint else ""))
    _check_structure(p, kind, sd, raw)
    check_plausible(sd, kind, f"checkpoint {p}")
    meta = {k: v for k, v in raw.items() if isinstance(k, str) and not isinstance(v, Mapping)} \
        if isinstance(raw, Mapping) else {}
    if isinstance(raw, Mapping):
        meta.update({k: v for k, v in raw.items() if isinstance(k, str) and k.endswith("_config")})
    return sd, meta


# --------------------------------------------------------------------------- damage checks

#: largest magnitude a trained weight may have; running statistics of batch norm get more room
MAX_WEIGHT = 1e4
MAX_STATISTIC = 1e7
#: a multi-dimensional weight that is mostly exact zeros, or holds a run of this many consecutive
#: exact zeros (1 KB of float32), is damaged: torch.load does not verify the zip CRCs, so a zeroed
#: block on disk loads silently, and trained or randomly initialised weights are never exactly zero
ZERO_FRACTION = 0.5
ZERO_RUN = 256


def _longest_zero_run(t: Any) -> int:
    """Length of the longest run of consecutive exact zeros in a tensor's flattened values."""
    import torch

    z = (t.reshape(-1) == 0).to(torch.int8)
    edges = torch.diff(torch.cat([z.new_zeros(1), z, z.new_zeros(1)]))
    starts = torch.nonzero(edges == 1).flatten()
    ends = torch.nonzero(edges == -1).flatten()
    return int((ends - starts).max()) if starts.numel() else 0


def weight_damage(sd: Mapping[str, Any], kind: str | None = None, limit: int = 3) -> list[str]:
    """Tensors holding values a trained (or freshly initialised) network cannot hold.

    Why: a file damaged on disk or in transfer (bit flips, zeroed or garbage blocks, a tool that
    wrote ``torch.empty``) can still unpickle into the right keys and shapes; the model then runs
    and produces garbage with no error. A float tensor is suspect when it holds NaN or Inf, a
    magnitude beyond :data:`MAX_WEIGHT` (:data:`MAX_STATISTIC` for ``running_mean``/``running_var``),
    a negative ``running_var``, or - for a multi-dimensional weight - one constant value everywhere
    (trained and randomly initialised kernels always vary; :data:`CONSTANT_ALLOWED` lists the
    zero-initialised exceptions), mostly exact zeros, or a run of :data:`ZERO_RUN` exact zeros. 1-D tensors may be constant (frozen batch
    norm of converted backbones holds running_mean 0 and running_var 1). Returns at most ``limit``
    descriptions (first in file order); empty if nothing is suspect.
    """
    import torch

    allowed = CONSTANT_ALLOWED.get(kind or "", ())
    problems: list[str] = []
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
            continue
        v = t.detach()
        if v.device.type == "meta":
            continue
        numel = v.numel()
        if 0 in v.stride() and v.dim():
            # a broadcast view (stride 0) repeats the same values: check each stored value once
            v = v[tuple(slice(0, 1) if st == 0 else slice(None) for st in v.stride())]
        v = v.float() if v.dtype in (torch.float16, torch.bfloat16) else v
        lo, hi = torch.aminmax(v)
        lo_f, hi_f = float(lo), float(hi)
        stat = name.endswith(("running_mean", "running_var"))
        problem = None
        if not (math.isfinite(lo_f) and math.isfinite(hi_f)):
            bad = int((~torch.isfinite(v)).sum())
            problem = f"{bad} NaN/Inf value{'s' if bad != 1 else ''}"
        elif max(abs(lo_f), abs(hi_f)) > (MAX_STATISTIC if stat else MAX_WEIGHT):
            problem = f"magnitude {max(abs(lo_f), abs(hi_f)):.3g}"
        elif name.endswith("running_var") and lo_f < 0:
            problem = f"a negative variance ({lo_f:.3g})"
        elif v.dim() >= 2 and numel >= 32 and lo_f == hi_f and not any(a in name for a in allowed):
            problem = f"the same value {lo_f:.3g} in all {numel} entries"
        elif v.dim() >= 2 and numel >= ZERO_RUN and not any(a in name for a in allowed):
            zeros = v.numel() - int(torch.count_nonzero(v))
            if zeros > ZERO_FRACTION * v.numel():
                problem = f"{zeros * (numel // v.numel())} of {numel} entries exactly zero"
            elif zeros >= ZERO_RUN:
                run = _longest_zero_run(v)
                if run >= ZERO_RUN:
                    problem = f"a block of {run} consecutive exact zeros (a zeroed disk block?)"
        if problem:
            problems.append(f"'{name}' ({problem})")
            if len(problems) >= limit:
                break
    return problems


def check_plausible(sd: Mapping[str, Any], kind: str | None = None, source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` when :func:`weight_damage` finds anything."""
    problems = weight_damage(sd, kind)
    if problems:
        raise CheckpointError(f"{source} is damaged: it holds values a trained network cannot hold: "
                              f"{', '.join(problems)}; get the file again (or restore it from a backup)")


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


def _check_structure(path: Path, kind: str, sd: Mapping[str, Any], raw: Any = None) -> None:
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
    elif kind == "clip_panofcn":
        from models.clip_panofcn.checkpoint import check_clip_panofcn

        check_clip_panofcn(sd, raw, source=f"checkpoint {path}")


def validate_checkpoint(path: str | os.PathLike[str], kind: str, origin: str = "") -> CheckpointInfo:
    """Fully check a checkpoint (loads it, compares every key and shape with the network) and return
    its identity; raises :class:`CheckpointError`."""
    p = Path(path).expanduser()
    sd = load_state_dict(p, kind)  # keys, every shape and damage are checked there
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
