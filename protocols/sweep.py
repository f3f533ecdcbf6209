"""A sweep: RunConfig settings where a list is a grid axis, expanded into runs.

    # sweep.yaml: keys are RunConfig fields
    benchmark: iirc_cifar100
    strategy: [finetune, er, icarl_cnn]      # an axis
    mile: [false, true]                      # MILe off, and on with the protocol's defaults
    configuration: [0, 1, 2]
    epochs: 140

``expand(settings)`` gives the 18 RunConfigs (the product of the axes, in field order: the
task configuration outermost, as a campaign fills its table row by row). A value that is
itself a pair (``synthetic_per_class``) is an axis when it is a list of pairs; a mapping
(``strategy_overrides``, ``mile``) when it is a list of mappings. A ``mile`` mapping changes
the protocol's MILe defaults (``MILE_DEFAULTS``); ``true`` is those defaults, ``false`` or
``null`` is MILe off.

``arms``, a list of mappings of settings, makes a union of grids instead of one product: each
arm's settings replace the others' (file and flags alike) and the grid is expanded once per
arm. It describes an ablation, whose arms differ in several settings at once:

    arms:
      - {mile: false}                                        # ER
      - {mile: true}                                         # the protocol's MILe default
      - {mile: false, old_model_labels: hard}                # the old model's labels alone
    seed: [0, 1]
    configuration: [0, 1]
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

from protocols.config import MILE_DEFAULTS, RunConfig, field_names
from protocols.labels import differing_settings, flat_settings

TUPLE_FIELDS = ("synthetic_per_class",)


# What a file's aliases may add to it, in values (a copy of an anchored list of 3 adds 4): a
# real sweep file reuses a mapping or two (tens of values); a "billion laughs" file of a few
# hundred bytes nests aliases to expand to billions, which would exhaust memory.
MAX_ALIAS_VALUES = 10_000


def load_sweep_file(path) -> dict:
    """The settings in a YAML sweep file; ValueError naming the file and the problem."""
    import yaml
    path = Path(path)
    try:
        settings = yaml.load(path.read_text(), Loader=_sweep_loader())
    except OSError as error:
        raise ValueError(f"--config {path}: cannot read it ({error.strerror or error})") \
            from None
    except yaml.YAMLError as error:
        raise ValueError(f"--config {path}: not valid YAML ({_yaml_problem(error)})") from None
    except RecursionError:
        raise ValueError(f"--config {path}: nested too deeply to be a sweep file") from None
    except ValueError as error:        # the loader's checks below
        raise ValueError(f"--config {path}: {error}") from None
    settings = {} if settings is None else settings
    if not isinstance(settings, dict):
        raise ValueError(f"--config {path}: expected a mapping of RunConfig fields to values, "
                         f"got {type(settings).__name__}")
    _check_keys(settings, f"--config {path}", arms_allowed=True)
    arms = settings.get("arms", [])
    if not isinstance(arms, list) or not all(isinstance(arm, dict) for arm in arms):
        raise ValueError(f"--config {path}: arms must be a list of mappings of RunConfig "
                         "fields to values")
    for k, arm in enumerate(arms):
        _check_keys(arm, f"--config {path}, arm {k}", arms_allowed=False)
    return settings


def _yaml_problem(error) -> str:
    """PyYAML's error in one line: what, and where (its own text draws the line in 3-4)."""
    problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    return f"{problem}, line {mark.line + 1} column {mark.column + 1}" if mark else problem


def _sweep_loader():
    """yaml.SafeLoader that refuses what safe_load lets through: a key given twice in one
    mapping (safe_load keeps the last, silently) and aliases that expand beyond
    ``MAX_ALIAS_VALUES``."""
    import yaml

    class SweepLoader(yaml.SafeLoader):
        def construct_document(self, node):
            added = _expanded_size(node, {}) - _distinct_nodes(node)
            if added > MAX_ALIAS_VALUES:
                raise ValueError(f"its aliases (*name) expand to {added:,} more values, "
                                 f"more than the {MAX_ALIAS_VALUES:,} a sweep file may add")
            return super().construct_document(node)

        def construct_mapping(self, node, deep=False):
            lines = {}
            for key_node, _ in node.value:     # before merge keys (<<) are folded in
                if (not isinstance(key_node, yaml.ScalarNode)
                        or key_node.tag == "tag:yaml.org,2002:merge"):
                    continue                   # safe_load's own errors and merges stand
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in lines:
                    raise ValueError(f"key {key!r} given twice, on line {lines[key]} and line "
                                     f"{line}")
                lines[key] = line
            return super().construct_mapping(node, deep=deep)

    return SweepLoader


def _children(node) -> list:
    if isinstance(node.value, list):      # a sequence's items, a mapping's (key, value) pairs
        return [n for item in node.value for n in (item if isinstance(item, tuple) else [item])]
    return []


def _expanded_size(node, sizes: dict) -> int:
    """The values ``node`` stands for with every alias copied out: linear in the distinct
    nodes (each size computed once), however far the aliases expand."""
    if id(node) not in sizes:
        sizes[id(node)] = None                 # composing: an alias back to here is a cycle
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in _children(node))
    if sizes[id(node)] is None:
        raise ValueError("an alias (*name) refers to a value that holds it: it expands "
                         "without end")
    return sizes[id(node)]


def _distinct_nodes(node) -> int:
    seen, todo = set(), [node]
    while todo:
        node = todo.pop()
        if id(node) not in seen:
            seen.add(id(node))
            todo += _children(node)
    return len(seen)


def _check_keys(settings: dict, where: str, arms_allowed: bool) -> None:
    valid = field_names() + (["arms"] if arms_allowed else [])
    unknown = [key for key in settings if key not in valid]
    if unknown:
        raise ValueError(f"{where}: unknown key {', '.join(map(repr, unknown))}; "
                         f"valid keys (RunConfig fields): {', '.join(valid)}")


def axis(name: str, value) -> list:
    """The values a setting takes in the grid."""
    if not isinstance(value, list):
        return [value]
    if name in TUPLE_FIELDS and not (value and isinstance(value[0], (list, tuple))):
        return [value]            # one pair, not an axis of pairs
    return value


def expand(settings: dict) -> list[RunConfig]:
    """The product of the settings' axes as RunConfigs, without duplicates, in field order
    (with ``arms``: one product per arm, in arm order). A value of the wrong type is an error
    naming its field."""
    if settings.get("arms"):
        rest = {k: v for k, v in settings.items() if k != "arms"}
        return unique([c for arm in settings["arms"] for c in expand({**rest, **arm})])
    settings = {k: v for k, v in settings.items() if k != "arms"}
    names = [name for name in field_names() if name in settings]
    # The task configuration outermost: the runs of one task order come together.
    names.sort(key=lambda name: name != "configuration")
    configs = []
    for values in itertools.product(*(axis(name, settings[name]) for name in names)):
        combo = dict(zip(names, values, strict=True))
        if "mile" in combo:
            combo["mile"] = _mile(combo["mile"])
        configs.append(RunConfig.from_dict(combo))
    return unique(configs)


def unique(configs: list[RunConfig]) -> list[RunConfig]:
    """``configs`` without repeats, first occurrence kept: linear in the runs (a RunConfig
    holds a dict, so it is compared by its JSON form)."""
    seen, kept = set(), []
    for config in configs:
        key = json.dumps(config.as_dict(), sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(config)
    return kept


def _mile(value):
    if isinstance(value, dict):
        return MILE_DEFAULTS.with_changes(**value)
    return value


def base_label(config: RunConfig) -> str:
    return config.strategy + ("+mile" if config.mile is not None else "")


def run_folders(configs: list[RunConfig], out) -> list[tuple[str, Path]]:
    """(label, folder) per run: OUT/<strategy>[+mile][,<setting>=<value>...]/config<k>, the
    settings being those that differ between runs of the same strategy and MILe on/off (other
    than the task configuration), so each run has its own folder and a plain sweep keeps the
    plain names. ValueError if two runs would still share one (``_check_own_folders``)."""
    values = [config.as_dict() for config in configs]
    differing = differing_settings(
        [(base_label(c), v) for c, v in zip(configs, values, strict=True)],
        ignore=("configuration",))
    named = []
    for config, value in zip(configs, values, strict=True):
        flat = flat_settings(value)
        label = ",".join([base_label(config),
                          *(f"{k}={_text(flat[k])}" for k in differing[base_label(config)])])
        named.append((label, Path(out) / label / f"config{config.configuration}"))
    _check_own_folders(configs, values, [folder for _, folder in named])
    return named


def _check_own_folders(configs, values: list[dict], folders: list[Path]) -> None:
    """ValueError naming the settings of two runs that would share a folder. A folder name
    keeps only letters, digits and ``._-=+`` of a value, so values that differ elsewhere
    ("/data/x y", "/data/x_y") give one name. Refused before anything runs rather than told
    apart by a hash suffix: a folder's name should say which run it holds, and such values are
    rare and easy to change; sharing one would make the runs resume and overwrite each other."""
    first: dict[Path, int] = {}
    for i, folder in enumerate(folders):
        j = first.setdefault(folder, i)
        if j == i:
            continue
        a, b = flat_settings(values[j]), flat_settings(values[i])
        differ = [f"{k}={a.get(k)!r} vs {b.get(k)!r}" for k in dict.fromkeys([*a, *b])
                  if a.get(k) != b.get(k)]
        raise ValueError(f"two runs would share the folder {folder}: {configs[i].strategy} runs "
                         f"that differ only in {'; '.join(differ) or 'nothing (a repeat)'}, "
                         "which folder names cannot tell apart; change one of the values")


def _text(value) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    return "".join(c if c.isalnum() or c in "._-=+" else "_" for c in text)


def replace_mile(config: RunConfig, **knobs) -> RunConfig:
    """``config`` with MILe's knobs changed (a MILe-off run is left as it is)."""
    if config.mile is None or not knobs:
        return config
    return dataclasses.replace(config, mile=config.mile.with_changes(**knobs))
