"""Which settings tell runs apart: one computation for sweep folders and report rows.

Runs with the same base label (``er``, ``er+MILe[...]``) are told apart by the settings whose
values differ between them, flattened so that a MILe knob reads ``mile.threshold``. The sweep
names folders from them (``er+mile,mile.threshold=0.7/config0``) and the report names rows
(``er+MILe[...] (mile.threshold=0.7)``): two spellings of one answer.
"""
from __future__ import annotations

import json
from typing import Hashable, Iterable, Mapping


def flat_settings(config: Mapping, prefix: str = "") -> dict:
    """{"mile": {"threshold": 0.5}} -> {"mile.threshold": 0.5}; other dicts stay whole (a
    strategy's overrides are one setting)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value and key == "mile":
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differing_settings(runs: Iterable[tuple[Hashable, Mapping]],
                       ignore: Iterable[str] = ()) -> dict[Hashable, list[str]]:
    """{base label: the flat settings whose values differ among that label's runs}, in the
    order the settings first appear. ``runs`` are (base label, config) pairs; ``ignore`` names
    settings that never tell runs apart (task configuration, seed...). A setting some runs
    lack (an older results.json) counts as None there."""
    ignored = set(ignore)
    flats: dict[Hashable, list[dict]] = {}
    for base, config in runs:
        flats.setdefault(base, []).append(flat_settings(config))
    differing = {}
    for base, group in flats.items():
        keys = dict.fromkeys(k for flat in group for k in flat if k not in ignored)
        differing[base] = [k for k in keys if len({_text(flat.get(k)) for flat in group}) > 1]
    return differing


def _text(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)
