"""Checkpoints: which model kinds exist, where their weights come from, and whether a file is sane.

Why one registry: every model (SAM, STCN, Clip-PanoFCN) needs the same three answers - *which file*
(CLI flag > environment variable > the effective settings the caller passes), *is it the right
file* (exists, is a PyTorch file and not e.g. a PNG or a download page, loads with
``weights_only=True``, holds every key and shape of the network and nothing else, and no values a
trained network cannot hold - see :func:`weight_damage`) and *which exact weights* (sha256, shown
to the user and used as a cache key). Getting these wrong produces cryptic torch tracebacks deep
inside a model, so everything is checked here and reported as a :class:`CheckpointError` that
names the file, the problem and the fix.

Model kinds register themselves (:func:`register_kind`): a :class:`ModelKind` carries the cheap key
check that tells kinds apart and the structure check that compares every key and shape with the
network. This module imports no model module; :mod:`models.kinds` declares the built-in kinds and
is imported by ``models/__init__.py``, so every kind is known whatever part of ``models`` is
imported first. Models never read the user's settings file: callers pass the effective settings
(``annotator.project.settings.effective``).

No network access happens anywhere here: a missing checkpoint is an error that tells the user
where to put one, never a silent download.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.checkpoint_file import (
    CheckpointError,
    compare_state_dict,
    not_regular,
    read_checkpoint,
    sha256_file,
    unwrap_state_dict,
)
from models.damage import find_damage

__all__ = [
    "REGISTRY", "CheckpointError", "CheckpointInfo", "CheckpointSource", "ModelKind", "availability",
    "check_plausible", "compare_state_dict", "detect_checkpoint_kind", "detect_kind", "get_kind",
    "load_state_dict", "load_state_dict_and_meta", "load_state_dict_of", "missing_message", "prefix_check",
    "register_kind", "require_checkpoint", "resolve_checkpoint", "sha256_file", "validate_checkpoint",
    "weight_damage",
]

#: ``check(keys, state_dict) -> problem or None``: cheap (names and a shape or two), tells kinds apart
KeyCheck = Callable[[list[str], Mapping[str, Any]], str | None]
#: ``check(state_dict, raw, source)``: raises :class:`CheckpointError` unless every key and shape
#: fits the network (``raw`` is the file's whole top-level object, e.g. for a stored config;
#: ``source`` names the file in messages)
StructureCheck = Callable[[Mapping[str, Any], Any, str], None]


def prefix_check(required: Iterable[str], any_of: Iterable[str] = ()) -> KeyCheck:
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


_prefix_check = prefix_check  # the name tests and older callers use


@dataclass(frozen=True)
class ModelKind:
    """One entry of the registry: a model family whose checkpoints are interchangeable.

    ``check_keys`` tells kinds apart; ``check_structure`` (``None``: keys only, e.g. tests' tiny
    kinds) compares every key and shape with the network so that a file passing validation also
    loads; ``constant_allowed`` names tensors the network initialises to a constant (see
    :func:`weight_damage`).
    """

    name: str
    description: str
    check_keys: KeyCheck
    hint: str = ""  # where users usually get the file (shown in "missing checkpoint" messages)
    env_aliases: tuple[str, ...] = field(default_factory=tuple)
    check_structure: StructureCheck | None = None
    constant_allowed: tuple[str, ...] = field(default_factory=tuple)

    @property
    def env_var(self) -> str:
        return f"VPS_{self.name.upper()}_CHECKPOINT"

    @property
    def env_vars(self) -> tuple[str, ...]:
        """Environment variables consulted, most specific first."""
        return (self.env_var, *self.env_aliases)


REGISTRY: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> None:
    """Add or replace a model kind (each model declares its kinds in :mod:`models.kinds`)."""
    REGISTRY[kind.name] = kind


def get_kind(kind: str) -> ModelKind:
    """The registered kind ``kind``; :class:`CheckpointError` naming the known kinds otherwise."""
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


def resolve_checkpoint(kind: str, cli_path: str | os.PathLike[str] | None = None,
                       settings: Mapping[str, Any] | None = None,
                       env: Mapping[str, str] | None = None) -> CheckpointSource | None:
    """Where the checkpoint of ``kind`` comes from: CLI flag > env var > settings; ``None`` if nowhere.

    ``settings`` is the effective settings mapping of the caller (``annotator.project.settings.effective``:
    defaults < user file < project): models never read the user's files themselves.
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


# --------------------------------------------------------------------------- loading


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
    sd = unwrap_state_dict(read_checkpoint(p))
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
    raw = read_checkpoint(p)
    sd = unwrap_state_dict(raw)
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
    raw = read_checkpoint(p)
    sd = unwrap_state_dict(raw)
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


def weight_damage(sd: Mapping[str, Any], kind: str | None = None, limit: int = 3) -> list[str]:
    """Tensors of ``sd`` holding values a trained network cannot hold (:func:`models.damage.find_damage`),
    with the constant tensors kind ``kind`` may have; at most ``limit`` descriptions, ``[]`` if none."""
    mk = REGISTRY.get(kind or "")
    return find_damage(sd, mk.constant_allowed if mk is not None else (), limit)


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


def _check_structure(path: Path, kind: str, sd: Mapping[str, Any], raw: Any = None) -> None:
    """Run the kind's structure check (every key and shape against its network), if it has one."""
    check = get_kind(kind).check_structure
    if check is not None:
        check(sd, raw, f"checkpoint {path}")


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
        what = not_regular(src.path)
        if what:
            return False, f"{kind} checkpoint from {src.origin} is {what}, not a regular file: {src.path}"
        return False, f"{kind} checkpoint from {src.origin} not found: {src.path}"
    if deep:
        try:
            info = validate_checkpoint(src.path, kind, src.origin)
        except CheckpointError as e:
            return False, str(e)
        return True, info.describe()
    return True, f"{kind}: {src.path} (from {src.origin})"
