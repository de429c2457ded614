"""Category lists (taxonomies): the 124 VIPSeg classes by default, or a custom JSON/YAML file.

Category ids are 0-based as in VIPSeg's ``panoVIPSeg_categories.json``; the raw VIPSeg panomask
encoding (id + 1) belongs to ``annotator.formats.vipseg``, not here. Also shipped: the 19
Cityscapes-VPS classes (VPSNet's ids 0..18, 8 things); and any YouTube-VIS / LV-VIS / COCO
annotation file's ``categories`` can become a taxonomy (:func:`taxonomy_from_annotations`), keeping
the file's own ids so an export writes the ids the dataset's models were trained with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from annotator.errors import InputError

VIPSEG_CATEGORIES_FILE = Path(__file__).resolve().parent.parent / "resources" / "vipseg_categories.json"
CITYSCAPES_VPS_CATEGORIES_FILE = VIPSEG_CATEGORIES_FILE.with_name("cityscapes_vps_categories.json")


@dataclass(frozen=True)
class Category:
    """One class: ``isthing`` classes get one track per instance, stuff one track per video."""

    id: int
    name: str
    isthing: bool
    color: tuple[int, int, int]
    parent: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "isthing": int(self.isthing),
                               "color": list(self.color)}
        if self.parent is not None:
            out["parent"] = self.parent
        return out


class Taxonomy:
    """An ordered, validated list of categories with lookups by id and name."""

    def __init__(self, categories: list[Category], name: str = "custom") -> None:
        if not categories:
            raise InputError("a taxonomy needs at least one category")
        self.name = name
        self.categories = list(categories)
        self._by_id: dict[int, Category] = {}
        self._by_name: dict[str, Category] = {}
        for cat in self.categories:
            if cat.id in self._by_id:
                raise InputError(f"taxonomy {name!r}: duplicate category id {cat.id}")
            if cat.id < 0:
                raise InputError(f"taxonomy {name!r}: category id {cat.id} is negative")
            self._by_id[cat.id] = cat
            self._by_name.setdefault(cat.name.lower(), cat)

    def __len__(self) -> int:
        return len(self.categories)

    def __iter__(self):
        return iter(self.categories)

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._by_id

    def get(self, category_id: int) -> Category:
        """The category with this id, or an :class:`InputError` naming the unknown id."""
        try:
            return self._by_id[int(category_id)]
        except (KeyError, ValueError, TypeError):
            raise InputError(
                f"unknown category id {category_id!r} (taxonomy {self.name!r} has ids "
                f"{min(self._by_id)}..{max(self._by_id)})"
            ) from None

    def by_name(self, name: str) -> Category:
        try:
            return self._by_name[name.lower()]
        except KeyError:
            raise InputError(f"unknown category name {name!r} in taxonomy {self.name!r}") from None

    def is_thing(self, category_id: int) -> bool:
        return self.get(category_id).isthing

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.categories]

    @property
    def thing_ids(self) -> list[int]:
        return [c.id for c in self.categories if c.isthing]

    @property
    def stuff_ids(self) -> list[int]:
        return [c.id for c in self.categories if not c.isthing]

    @property
    def max_id(self) -> int:
        return max(self._by_id)

    def search(self, text: str) -> list[Category]:
        """Categories whose name contains ``text`` (case-insensitive), prefix matches first."""
        t = text.lower().strip()
        hits = [c for c in self.categories if t in c.name.lower()]
        return sorted(hits, key=lambda c: (not c.name.lower().startswith(t), c.name.lower()))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "categories": [c.to_json() for c in self.categories]}

    @classmethod
    def from_json(cls, data: Any, name: str = "custom") -> Taxonomy:
        """Accept either a bare category list (VIPSeg style) or ``{"name", "categories"}``."""
        if isinstance(data, dict):
            name = str(data.get("name", name))
            data = data.get("categories")
        if not isinstance(data, list):
            raise InputError("a taxonomy file must hold a list of categories or {'categories': [...]}")
        cats = []
        for i, item in enumerate(data):
            try:
                color = tuple(int(v) for v in item["color"])
                if len(color) != 3 or not all(0 <= v <= 255 for v in color):
                    raise ValueError("color must be three values 0..255")
                cats.append(Category(id=int(item["id"]), name=str(item["name"]),
                                     isthing=bool(int(item["isthing"])), color=color,  # type: ignore[arg-type]
                                     parent=item.get("parent")))
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"taxonomy entry {i} is invalid ({exc}); each needs id, name, isthing, color") from None
        return cls(cats, name=name)


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Read a custom taxonomy from a ``.json`` or ``.yaml``/``.yml`` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read taxonomy file {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error becomes one clear message
        raise InputError(f"taxonomy file {path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    return Taxonomy.from_json(data, name=path.stem)


@lru_cache(maxsize=1)
def vipseg_taxonomy() -> Taxonomy:
    """The 124 VIPSeg categories (58 things, 66 stuff), shipped in ``resources/``."""
    data = json.loads(VIPSEG_CATEGORIES_FILE.read_text(encoding="utf-8"))
    return Taxonomy.from_json(data, name="vipseg")


@lru_cache(maxsize=1)
def cityscapes_vps_taxonomy() -> Taxonomy:
    """The 19 Cityscapes-VPS classes as VPSNet numbers them (ids 0..18 = train ids; 11..18 things)."""
    data = json.loads(CITYSCAPES_VPS_CATEGORIES_FILE.read_text(encoding="utf-8"))
    return Taxonomy.from_json(data, name="cityscapes_vps")


def _category_color(category_id: int) -> tuple[int, int, int]:
    """A deterministic mid-range colour per id (annotation files carry none); same rule as the YTVIS import."""
    import numpy as np

    rng = np.random.default_rng(int(category_id))
    r, g, b = (int(v) for v in rng.integers(30, 226, 3))
    return r, g, b


def taxonomy_from_annotations(source: str | Path | dict, name: str | None = None) -> Taxonomy:
    """A thing-only taxonomy from the ``categories`` of a YouTube-VIS / LV-VIS / COCO annotation file.

    Why keep the ids: LV-VIS numbers its 1,196 classes 1..1196 and models trained on it predict
    those numbers; a taxonomy renumbered 0..N-1 would make every export off by one. Why stuff-free:
    these are instance datasets, every class is a thing. ``supercategory`` becomes the parent.
    Names must be unique (case-insensitive) because imports map classes by name.
    """
    where = "annotation data"
    if not isinstance(source, dict):
        path = Path(source)
        where = str(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"cannot read annotation file {path}: {exc.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"annotation file {path} is not valid JSON ({exc})") from None
        name = name or path.stem
    else:
        data = source
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list) or not cats:
        raise InputError(f"{where}: no 'categories' list; a YouTube-VIS / LV-VIS / COCO annotation file is needed")
    out: list[Category] = []
    names: dict[str, int] = {}
    for i, c in enumerate(cats):
        try:
            cid, cname = int(c["id"]), str(c["name"]).strip()
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{where}: category entry {i} needs an integer 'id' and a 'name'") from None
        if cname.lower() in names:
            raise InputError(f"{where}: category name {cname!r} is used by ids {names[cname.lower()]} and {cid}; "
                             "class names must be unique")
        names[cname.lower()] = cid
        parent = c.get("supercategory")
        out.append(Category(cid, cname, True, _category_color(cid), str(parent) if parent else None))
    return Taxonomy(out, name=name or "annotations")
