"""Every settings knob's default, the user's settings file, and the one merge rule.

Why one owner: the window, the settings dialog, the CLI, batch and the models all need the same
answer to "which speed / brush size / checkpoint applies now", and when each read its own key
with its own default the same project propagated at different speeds in the window and on the
command line. So the order lives here only: built-in :data:`DEFAULTS` < the user's file < the
project's ``settings`` (checkpoints merged per model kind, so a project can pin one kind and
inherit the others), and :func:`effective` is what every caller passes on (models never read the
user's file themselves: they take the effective mapping).

One key per knob: the dense-propagation speed is ``propagation_speed`` (``fast`` | ``balanced`` |
``quality``, default ``fast``, the profile that meets the 720p budget; ``propagation.factory``
builds it). Files written before this rule may say ``flow_speed``: :data:`ALIASES` reads it as
``propagation_speed`` (a layer's own ``propagation_speed`` wins), and saving the project's settings
from the dialog rewrites it under the new name.

Where the user's file lives: ``$VPS_ANNOTATOR_SETTINGS``, else ``$VPS_CONFIG_DIR/settings.json``,
else ``$XDG_CONFIG_HOME`` (or ``~/.config``) ``/vps_annotator/settings.json``. Recent projects go
to ``recent.json`` next to it. Every write is atomic (``annotator.store.atomic_write_bytes``).
Qt-free and free of the stages: the layers (``docs/architecture.md``) keep it at the ground floor.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from annotator.errors import InputError
from annotator.project.schema import check_settings
from annotator.store import atomic_write_bytes

CONFIG_DIR_ENV = "VPS_CONFIG_DIR"
SETTINGS_FILE_ENV = "VPS_ANNOTATOR_SETTINGS"
#: flow profiles (``propagation.factory.SPEEDS``; the layers keep the two packages apart, and
#: tests/test_user_settings.py checks that they agree)
PROPAGATION_SPEEDS = ("fast", "balanced", "quality")
#: the default speed, ``propagation.factory.DEFAULT_SPEED``: the profile that meets the 720p budget
DEFAULT_SPEED = "fast"
#: dense backends (``propagation.factory.BACKENDS``; ``"copy"``, in older projects, asks association
#: to carry tracks without motion and means flow for dense propagation)
PROPAGATION_BACKENDS = ("flow", "memory")
#: SAM click decoder and embedding device (``models.sam.onnx_decoder.DECODER_MODES``,
#: ``models.sam.engine.SAM_DEVICES``; tests/test_sam_onnx.py checks that they agree)
SAM_DECODERS = ("auto", "onnx", "torch")
SAM_DEVICES = ("auto", "cpu", "cuda")
#: built-in defaults of everything a user may set for all projects (the settings dialog edits them)
DEFAULTS: dict[str, Any] = {
    "checkpoints": {},
    "propagation_speed": DEFAULT_SPEED,
    "propagation_backend": "flow",
    "brush_size": 15,
    "autosave_s": 30,
    # SAM clicks: onnxruntime decoder where it runs (docs/sam.md); embeddings on CUDA when present
    "sam_decoder": "auto",
    "sam_device": "auto",
    # edge-aware tools (docs/tools.md): superpixels per frame, coarse to fine; the background
    # cache of scissors features and superpixels, in MB
    "superpixel_scales": [250, 1000, 3000],
    "tool_features_cache_mb": 256,
}
#: what a new project stores in its ``project.json`` (import and keyframe rules)
PROJECT_DEFAULTS: dict[str, Any] = {"dense_fps": 5.0, "key_every": 5, "resize_height": 720,
                                    "checkpoints": {}}
#: old key -> the key that replaced it (read in every layer; a layer's new key wins)
ALIASES: dict[str, str] = {"flow_speed": "propagation_speed", "propagator": "propagation_backend"}
#: (min, max) of the numeric settings
LIMITS: dict[str, tuple[int, int]] = {"brush_size": (1, 500), "autosave_s": (5, 3600)}
MAX_RECENT = 10


def settings_path(env: Mapping[str, str] | None = None) -> Path:
    """The user's settings file (see the module docstring for the order)."""
    env = os.environ if env is None else env
    if env.get(SETTINGS_FILE_ENV):
        return Path(env[SETTINGS_FILE_ENV]).expanduser()
    if env.get(CONFIG_DIR_ENV):
        return Path(env[CONFIG_DIR_ENV]).expanduser() / "settings.json"
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "vps_annotator" / "settings.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InputError(f"settings file {path} is not readable JSON ({exc}); fix or delete it") from exc
    if not isinstance(doc, dict):
        raise InputError(f"settings file {path} must hold a JSON object; fix or delete it")
    return doc


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def _read_settings(path: Path) -> dict[str, Any]:
    """The user's settings file, checked against the settings schema (``annotator.project.schema``):
    a wrong-typed knob is named (file, key, found, expected) here, not met later as a traceback."""
    doc = _read_json(path)
    issues = check_settings(doc, str(path), key="", todo="fix or delete the named key in the settings file")
    if issues:
        raise InputError("; ".join(str(i) for i in issues))
    return doc


def load_user(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The user's own settings (``{}`` if none); a broken file is an :class:`InputError`."""
    return _read_settings(settings_path(env))


def save_user(values: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Path:
    """Store ``values`` (checked with :func:`validate`) in the user's file, keeping keys we do not
    know (other tools may keep theirs there); returns the path written."""
    path = settings_path(env)
    doc = _read_settings(path) if path.exists() else {}
    doc.update(validate(values))
    _write_json(path, doc)
    return path


def canonical(layer: Mapping[str, Any]) -> dict[str, Any]:
    """``layer`` with old key names (:data:`ALIASES`) read as their new ones; the new key wins."""
    out = dict(layer)
    for old, new in ALIASES.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    return out


def merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Later layers win; ``checkpoints`` merge per kind and an empty path does not hide one below.
    Old key names are read as their new ones in each layer (:func:`canonical`)."""
    out: dict[str, Any] = {}
    checkpoints: dict[str, str] = {}
    for layer in layers:
        if not layer:
            continue
        layer = canonical(layer)
        out.update({k: v for k, v in layer.items() if k != "checkpoints"})
        checkpoints.update({k: str(v) for k, v in (layer.get("checkpoints") or {}).items() if v})
    out["checkpoints"] = checkpoints
    return out


def effective(project_settings: Mapping[str, Any] | None = None,
              user: Mapping[str, Any] | None = None, strict: bool = False) -> dict[str, Any]:
    """What applies now: :data:`DEFAULTS` < ``user`` (the user's file when ``None``) < ``project_settings``.

    The mapping every caller passes on (to ``propagation.factory.make_propagator``, the model
    loaders, the window); it always holds every key of :data:`DEFAULTS` and no old key names.
    A broken user file counts as empty (the window still opens and the settings dialog reports
    it), unless ``strict`` (the CLI and batch: the :class:`InputError` names the file).
    """
    if user is None:
        try:
            user = load_user()
        except InputError:
            if strict:
                raise
            user = {}
    return merge(DEFAULTS, user, project_settings)


def validate(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check and normalise the keys the settings dialog edits; other keys pass through unchanged
    (old key names are renamed, :data:`ALIASES`)."""
    out = canonical(values)
    if "propagation_speed" in out and out["propagation_speed"] not in PROPAGATION_SPEEDS:
        raise InputError(f"propagation_speed must be one of {', '.join(PROPAGATION_SPEEDS)}, "
                         f"not {out['propagation_speed']!r}")
    for key, choices in (("sam_decoder", SAM_DECODERS), ("sam_device", SAM_DEVICES)):
        if key in out and out[key] not in choices:
            raise InputError(f"{key} must be one of {', '.join(choices)}, not {out[key]!r}")
    for key, (lo, hi) in LIMITS.items():
        if key not in out:
            continue
        try:
            value = int(out[key])
        except (TypeError, ValueError):
            raise InputError(f"{key} must be a whole number, not {out[key]!r}") from None
        if not lo <= value <= hi:
            raise InputError(f"{key} must be between {lo} and {hi}, not {value}")
        out[key] = value
    if "checkpoints" in out:
        ck = out["checkpoints"] or {}
        if not isinstance(ck, Mapping):
            raise InputError("checkpoints must map a model kind to a file path")
        out["checkpoints"] = {str(k): str(v) for k, v in ck.items() if v}
    return out


def project_overrides(values: Mapping[str, Any], user: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The part of ``values`` a project must store to get them: only what differs from the user's
    level (defaults < user), so later changes of the user's defaults still reach the project."""
    base = merge(DEFAULTS, user if user is not None else effective(None))
    values = validate(values)
    out = {k: v for k, v in values.items() if k != "checkpoints" and base.get(k) != v}
    out["checkpoints"] = {k: v for k, v in values.get("checkpoints", {}).items()
                          if base["checkpoints"].get(k) != v}
    return out


def save_project(project: Any, values: Mapping[str, Any], user: Mapping[str, Any] | None = None) -> None:
    """Store ``values`` as the project's settings (only what differs from the user's level) and
    save ``project.json``. Keys the dialog edits but that now equal the user's level are dropped
    from the project, and so are cleared checkpoints."""
    over = project_overrides(values, user)
    settings = project.settings
    for key in (*DEFAULTS, *ALIASES):
        if key != "checkpoints":
            settings.pop(key, None)
    settings.update({k: v for k, v in over.items() if k != "checkpoints"})
    settings["checkpoints"] = over["checkpoints"]
    project.save()


# --------------------------------------------------------------------------- recent projects
def _recent_path(env: Mapping[str, str] | None = None) -> Path:
    return settings_path(env).parent / "recent.json"


def recent_projects(env: Mapping[str, str] | None = None, existing_only: bool = True) -> list[str]:
    """Most recent first; projects that were moved or deleted are left out."""
    try:
        doc = _read_json(_recent_path(env))
    except InputError:
        return []
    paths = [str(p) for p in doc.get("projects", []) if isinstance(p, str)]
    if existing_only:
        paths = [p for p in paths if (Path(p) / "project.json").is_file()]
    return paths[:MAX_RECENT]


def add_recent(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> list[str]:
    """Put a project at the top of the recent list; an unwritable config dir is not an error
    (opening the project matters more than remembering it)."""
    p = str(Path(path).expanduser().resolve())
    paths = [p] + [q for q in recent_projects(env, existing_only=False) if q != p]
    paths = paths[:MAX_RECENT]
    with contextlib.suppress(OSError):
        _write_json(_recent_path(env), {"projects": paths})
    return paths


def clear_recent(env: Mapping[str, str] | None = None) -> None:
    """Forget the recent projects (File > Open recent > Clear list)."""
    with contextlib.suppress(OSError):
        _write_json(_recent_path(env), {"projects": []})
