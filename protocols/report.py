"""Turn a folder of IIRC protocol runs (one ``results.json`` each) into what a paper shows.

    from protocols.report import load_results, write_report
    paths = write_report(load_results("runs/"), "runs/report")

``write_report`` writes, into ``out_dir``:

- ``runs.csv``: tidy, one row per (run, split, kind, metric, task[, eval_task]);
- ``comparison.md``: one row per run label, final union-average scores, mean ± std;
- ``union_pwjs.png``: union-average pw-JS against the number of classes seen;
- ``r_matrix_<label>.png``: the mean pw-JS R matrix of each label.

Runs are grouped by every setting in their config except the seed, the task configuration
and the data fingerprint (which follows the task order): runs that differ in anything else,
MILe's threshold or ``prior_bias`` say, are never averaged together. A group's label is its
strategy, plus "+MILe" when MILe was on, plus the settings that tell it apart from the other
groups of that strategy ("er+MILe (prior_bias=True)"). Runs of one group (one per task
configuration) are aggregated as mean ± SAMPLE std (n - 1 denominator, ``mean_std``) over the
runs where the value is defined; JSON null is NaN and NaN is skipped, never counted as 0.
Runs on different task sequences raise ``ValueError`` instead of producing a silent average.
Runs that failed (an ``error.txt``) are listed in comparison.md. Every file is written
atomically (``protocols.checkpoint``): whole, or not at all. Plots use
matplotlib's Agg canvas directly: no display, and the caller's pyplot backend is left alone.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mile_cl.plugin import mile_variant_name
from protocols.checkpoint import atomic_write_bytes, save_text
from protocols.labels import differing_settings, flat_settings
from protocols.paired import format_difference, pair_runs, paired_difference
from protocols.run_folder import ERROR_FILE, RESULTS

IIRC_CIFAR_NAMES = ("iirc_cifar100",)
IIRC_CIFAR_CLASSES = 115
# Final (pw-JS, JS) after all 115 classes, IIRC-CIFAR, 140 epochs per task (280 for task 0),
# configurations 0-9: read off the IIRC paper's published plot (Abdelsalam et al., CVPR 2021),
# +-0.01.
IIRC_REFERENCE = {
    "incremental_joint": (0.63, 0.66),
    "joint": (0.61, 0.64),
    "er_infinite": (0.345, 0.35),
    "icarl_norm": (0.145, 0.255),
    "icarl_cnn": (0.145, 0.26),
    "er": (0.13, 0.135),
    "lucir": (0.055, 0.065),
    "agem": (0.025, 0.025),
    "finetune": (0.02, 0.025),
}
REFERENCE_EPOCHS = (140, 280)   # (epochs, first_task_epochs) behind IIRC_REFERENCE

# The comparison table's score columns: (header, results family, name). Final = last task.
TABLE_COLUMNS = (
    ("pw-JS", "union_avg", "pw_jaccard"),
    ("JS", "union_avg", "jaccard"),
    ("strict acc.", "union_avg", "strict_accuracy"),
    ("F1", "union_avg", "f1"),
    ("super recall", "hierarchy", "superclass_recall"),
    ("sub recall", "hierarchy", "subclass_recall"),
    ("wrong assoc.", "hierarchy", "wrong_association"),
)
# The config keys a group's runs may differ in: that is what is averaged over. Every other key
# (every RunConfig field and what run_iirc adds) must agree, so no setting can be forgotten.
AVERAGED_OVER = ("seed", "configuration", "data_fingerprint")
CSV_COLUMNS = ("label", "strategy", "mile", "configuration", "seed", "split", "kind", "metric",
               "task", "eval_task", "num_seen", "value")
PER_TASK_KINDS = ("union_avg", "forgetting", "hierarchy")


# ------------------------------------------------------------------ small pieces


def nan_if_null(value) -> float:
    """JSON null (and None) -> NaN; numbers -> float."""
    return math.nan if value is None else float(value)


def mean_std(values) -> tuple[float, float, int]:
    """(mean, sample std with n - 1 denominator, n) over the finite values; NaN when undefined
    (std needs n >= 2). The one place the report's aggregation convention lives."""
    finite = [v for v in map(nan_if_null, values) if math.isfinite(v)]
    mean = statistics.fmean(finite) if finite else math.nan
    std = statistics.stdev(finite) if len(finite) >= 2 else math.nan
    return mean, std, len(finite)


def run_label(result: dict) -> str:
    """The label ``group_by_label`` gave the run, else ``base_label``."""
    return result.get("_label") or base_label(result)


def base_label(result: dict) -> str:
    """"er", or "er+MILe[variant]" when the run's config["mile"] is not null, the variant
    named by ``mile_variant_name`` (e.g. ``er+MILe[gt,prev-teacher,mean,no-prior,e1/e1]``):
    "+MILe" alone would hide which MILe ran; "+old-labels[hard]" (or soft) for the old-model
    labels ablation (``mile_cl.old_model_labels``)."""
    config = result["config"]
    label = config["strategy"]
    mile = config.get("mile")
    if mile not in (None, False):
        settings = {**(mile if isinstance(mile, dict) else {}),
                    "prior_bias": bool(config.get("prior_bias"))}
        label += f"+MILe[{mile_variant_name(settings)}]"
    if config.get("old_model_labels") is not None:
        label += f"+old-labels[{config['old_model_labels']}]"
    return label


def label_runs(results: list[dict]) -> None:
    """Give each run its group's label ("_label"): the base label, plus the settings that
    differ between groups with the same base label."""
    differing = differing_settings([(base_label(r), r["config"]) for r in results],
                                   ignore=AVERAGED_OVER)
    for result in results:
        base = base_label(result)
        mine = flat_settings(result["config"])
        suffix = ", ".join(f"{k}={_short(mine.get(k))}" for k in sorted(differing[base]))
        result["_label"] = f"{base} ({suffix})" if suffix else base


def _short(value) -> str:
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


def num_seen(result: dict) -> list[int]:
    return list(result["benchmark"]["num_seen"])


def benchmark_name(result: dict) -> str:
    return result["benchmark"].get("name") or "unnamed benchmark"


def final_value(result: dict, family: str, name: str, split: str = "test") -> float:
    """The value after the last task of results[family][name] on ``split``: "test" or
    "posttask_valid" (held-out training images, complete labels); NaN if absent."""
    tables = result if split == "test" else (result.get(split) or {})
    values = (tables.get(family) or {}).get(name) or [None]
    return nan_if_null(values[-1])


def _source(result: dict) -> str:
    config = result["config"]
    return result.get("_source") or (f"{run_label(result)} configuration "
                                     f"{config.get('configuration')} seed {config.get('seed')}")


def _order_key(label: str) -> tuple:
    """Rows and curves in the reference table's order (best first), "+MILe" after its base."""
    base, _, variant = label.partition(" (")
    strategy, _, mile = base.partition("+")
    known = list(IIRC_REFERENCE)
    return (known.index(strategy) if strategy in known else len(known), strategy, mile,
            variant)


def group_by_label(results: list[dict]) -> dict[str, list[dict]]:
    """{label: runs} in table order, after checking the runs may be compared at all."""
    check_comparable(results)
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(run_label(result), []).append(result)
    return {label: groups[label] for label in sorted(groups, key=_order_key)}


# ------------------------------------------------------------------ refusing silent averages


def check_comparable(results: list[dict]) -> None:
    """Raise ValueError unless every run has the same benchmark and task sequence (num_seen)
    and no run appears twice; label the runs (``label_runs``)."""
    if not results:
        raise ValueError("no runs to report")
    _check_one_key(results, lambda r: (benchmark_name(r), num_seen(r)), "benchmark and task "
                   "sequence (name, classes seen after each task)",
                   "write one report per benchmark")
    label_runs(results)
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(run_label(result), []).append(result)
    for label, runs in groups.items():
        seen: dict[tuple, str] = {}
        for run in runs:
            key = (run["config"].get("configuration"), run["config"].get("seed"))
            if key in seen:
                raise ValueError(f"label {label!r} has two runs of configuration {key[0]} with "
                                 f"seed {key[1]}: {seen[key]} and {_source(run)}; keep one")
            seen[key] = _source(run)


def _check_one_key(runs: list[dict], key, what: str, advice: str) -> None:
    variants: dict[str, list[str]] = {}
    for run in runs:
        variants.setdefault(repr(key(run)), []).append(_source(run))
    if len(variants) > 1:
        listing = "; ".join(f"{variant} in {', '.join(sources)}"
                            for variant, sources in variants.items())
        raise ValueError(f"runs differ in {what}, so they cannot be averaged or compared: "
                         f"{listing}. {advice}.")


# ------------------------------------------------------------------ runs.csv


def tidy_rows(results: list[dict]) -> list[dict]:
    """One dict per (run, split, kind, metric, task[, eval_task]) with CSV_COLUMNS keys.

    split: "test" or "posttask_valid"; kind: "union_avg" | "forgetting" | "hierarchy" (task =
    the task just trained, num_seen = classes seen after it) or "R" (task = j trained,
    eval_task = k evaluated, k <= j). value: float, NaN where undefined.
    """
    rows = []
    label_runs(results)
    for result in results:
        config, seen = result["config"], num_seen(result)
        run = dict(label=run_label(result), strategy=config["strategy"],
                   mile=config.get("mile") not in (None, False),
                   configuration=config.get("configuration"), seed=config.get("seed"))
        for split, tables in (("test", result), ("posttask_valid", result.get("posttask_valid"))):
            for kind, metric, task, eval_task, value in _table_cells(tables or {}):
                rows.append(dict(run, split=split, kind=kind, metric=metric, task=task,
                                 eval_task=eval_task, num_seen=seen[task],
                                 value=nan_if_null(value)))
    return rows


def _table_cells(tables: dict):
    """(kind, metric, task, eval_task, value) of one split's union_avg/forgetting/hierarchy/R."""
    for kind in PER_TASK_KINDS:
        for metric, values in (tables.get(kind) or {}).items():
            for task, value in enumerate(values):
                yield kind, metric, task, None, value
    for metric, matrix in (tables.get("R") or {}).items():
        for task, row in enumerate(matrix):
            for eval_task in range(task + 1):
                yield "R", metric, task, eval_task, row[eval_task]


def write_csv(results: list[dict], path) -> Path:
    """runs.csv from ``tidy_rows``; NaN and null configuration are written as empty cells.
    Built in memory and written atomically: a full disk never leaves a file cut mid-row."""
    path = Path(path)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for row in tidy_rows(results):
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    save_text(text.getvalue(), path)
    return path


def _csv_cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


# ------------------------------------------------------------------ comparison.md


def comparison_table(results: list[dict], failed: list[dict] = (),
                     baseline: str | None = None, baseline_split: str = "test") -> str:
    """The Markdown comparison: a header saying what was run and how to read it, then one row
    per label: final union-average scores as mean ± sample std over its runs, and the IIRC
    paper's reference numbers where they apply; with ``baseline`` (a run label, e.g. "er"),
    every other label's paired differences against it (``paired_section``); then the runs
    that failed (``load_failures``), which the table does not count."""
    groups = group_by_label(results)
    reference_note = reference_applies(results)
    with_reference = reference_note is None
    headers = ["run", "n", *(h for h, _, _ in TABLE_COLUMNS)]
    headers += ["paper pw-JS", "paper JS"] if with_reference else []
    lines = [*_table_header(results, groups, reference_note), "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label, runs in groups.items():
        cells = [label, str(len(runs))]
        cells += [format_mean_std([final_value(r, family, name) for r in runs])
                  for _, family, name in TABLE_COLUMNS]
        cells += _reference_cells(runs[0]["config"]["strategy"]) if with_reference else []
        lines.append("| " + " | ".join(cells) + " |")
    paired = (paired_section(groups, baseline, baseline_split) if baseline is not None
              else [])
    return "\n".join(lines + paired + failed_section(failed)) + "\n"


# The paired table's columns: (header, results family, name), final values on the test set.
PAIRED_COLUMNS = (
    ("Δ pw-JS", "union_avg", "pw_jaccard"),
    ("Δ JS", "union_avg", "jaccard"),
    ("Δ super recall", "hierarchy", "superclass_recall"),
    ("Δ sub recall", "hierarchy", "subclass_recall"),
)


def paired_section(groups: dict[str, list[dict]], baseline: str,
                   split: str = "test") -> list[str]:
    """Every label against ``baseline``: runs paired by (task configuration, seed), final
    values on ``split`` ("test", or "posttask_valid" to choose a method without looking at
    test data), mean difference with a 95% t interval and the pairs favouring the label; runs
    without a partner are listed under the table."""
    where = "test set" if split == "test" else "posttask-valid images, complete labels"
    title = f"## Paired differences against `{baseline}` (final, {where})"
    if baseline not in groups:
        return ["", title, "", f"No runs are labelled `{baseline}`; the labels are: "
                + ", ".join(f"`{label}`" for label in groups) + ". Pass one of them as "
                "--baseline."]
    lines = ["", title, "",
             f"Each cell: mean of (run - {baseline}) over runs paired by task configuration "
             "and seed, [95% Student-t interval], (pairs where the run is higher / pairs).", "",
             "| run | pairs | " + " | ".join(h for h, _, _ in PAIRED_COLUMNS) + " |",
             "|" + "---|" * (2 + len(PAIRED_COLUMNS))]
    unpaired = []
    for label, runs in groups.items():
        if label == baseline:
            continue
        pairing = pair_runs(runs, groups[baseline])
        cells = [format_difference(paired_difference(
            pairing, lambda r, f=family, n=name: final_value(r, f, n, split)))
            for _, family, name in PAIRED_COLUMNS]
        lines.append(f"| {label} | {len(pairing.pairs)} | " + " | ".join(cells) + " |")
        unpaired += [f"- `{label}`: configuration {c}, seed {s} has no `{baseline}` run"
                     for c, s in pairing.arm_only]
        unpaired += [f"- `{baseline}`: configuration {c}, seed {s} has no `{label}` run"
                     for c, s in pairing.baseline_only]
    if unpaired:
        lines += ["", f"Unpaired runs ({len(unpaired)}), not in the differences above:", "",
                  *unpaired]
    return lines


def failed_section(failed: list[dict]) -> list[str]:
    if not failed:
        return []
    lines = ["", f"## Failed runs ({len(failed)})", "",
             "Not in the table above. Each folder holds error.txt (the traceback) and whatever "
             "tasks finished; fix the cause and rerun the sweep with --resume.", ""]
    return lines + [f"- `{f['folder']}`: {f['error']}" for f in failed]


def format_mean_std(values) -> str:
    """"0.300 ± 0.141" (sample std); "0.300 (n=1)" for a single run; "(k of n)" appended when
    only k of the n runs define the value; "—" when none does."""
    mean, std, n = mean_std(values)
    if n == 0:
        return "—"
    text = f"{mean:.3f}" if n == 1 else f"{mean:.3f} ± {std:.3f}"
    if n < len(values):
        return f"{text} ({n} of {len(values)})"
    return f"{text} (n=1)" if n == 1 else text


def _reference_cells(strategy: str) -> list[str]:
    if strategy not in IIRC_REFERENCE:
        return ["—", "—"]
    return [f"{value:.3f}" for value in IIRC_REFERENCE[strategy]]


def reference_applies(results: list[dict]) -> str | None:
    """None when the IIRC paper's numbers may stand beside these runs (IIRC-CIFAR, all 115
    classes), else the reason they do not."""
    name, seen = benchmark_name(results[0]), num_seen(results[0])
    if name.startswith("iirc_imagenet"):
        # The paper plots IIRC-ImageNet curves, but we have no numbers sourced from it (none
        # read off its plots and checked), so we print none rather than guess.
        return (f"the benchmark is {name}; we have no sourced IIRC paper numbers for "
                "IIRC-ImageNet, so none are shown")
    if name not in IIRC_CIFAR_NAMES:
        return f"the benchmark is {name}, not IIRC-CIFAR"
    if seen[-1] != IIRC_CIFAR_CLASSES:
        return (f"the runs stop after {seen[-1]} classes; the reference is after all "
                f"{IIRC_CIFAR_CLASSES}")
    return None


# What the protocol's MILe default does, in plain words, wherever a report shows it: the
# pre-registered test (docs/mile_claim.md) found its gain in this component.
PREVIOUS_TEACHER_NOTE = (
    "- prev-teacher (in a MILe label): the model as the previous task left it labels the old "
    "classes for the whole task; only the new classes get iterated teachers. In the "
    "pre-registered test (docs/mile_claim.md) the same old-model labels at every step without "
    "generations (--old-model-labels hard or soft) did better than this variant in both its "
    "settings: what helps is the old model's labels, not the generations.")


def _table_header(results, groups, reference_note) -> list[str]:
    seen = num_seen(results[0])
    configurations = sorted({r["config"].get("configuration") for r in results}, key=str)
    lines = [
        "# IIRC comparison", "",
        f"Benchmark: {benchmark_name(results[0])}, {len(seen)} tasks, {seen[-1]} classes "
        f"after the last task. {len(results)} runs; task configurations: "
        f"{', '.join(map(str, configurations))}.",
    ]
    partial = {label: sorted({r["config"].get("configuration") for r in runs}, key=str)
               for label, runs in groups.items()}
    partial = {label: own for label, own in partial.items() if own != configurations}
    if partial:
        lines += ["", *(f"- {label} covers only configurations {', '.join(map(str, own))}."
                        for label, own in partial.items())]
    lines += [
        "",
        "Scores are final: after the last task, averaged per sample over the test samples of "
        "all tasks (the right end of the paper's curve). Each cell is mean ± sample standard "
        "deviation (n - 1 denominator) over the label's runs, one per task configuration; "
        "\"(n=1)\": one run, no std; \"(k of n)\": only k runs define the value; \"—\": none "
        "does.",
        "",
        "- pw-JS (precision-weighted Jaccard, the paper's headline): per sample, Jaccard "
        "|Y∩P|/|Y∪P| times precision |Y∩P|/|P| (0 if nothing is predicted); 1 means exactly "
        "the right label set. It punishes extra labels harder than JS, so JS well above pw-JS "
        "means the model predicts too many labels.",
        "- super / sub recall: among test samples carrying a seen subclass and its seen "
        "superclass, the fraction whose prediction holds the superclass / the subclass; wrong "
        "assoc.: the fraction that also predicts a sibling subclass they lack (lower is better).",
    ]
    selections = sorted({str(r["config"].get("selection", "intask")) for r in results})
    lines.append(f"- Model selection (best epoch, LR schedule): {', '.join(selections)} "
                 "(intask: IIRC's reference, incomplete labels; posttask: complete labels of "
                 "the seen classes on held-out training images; last: no restore).")
    if any((r["config"].get("mile") or {}).get("old_class_teacher") == "previous"
           for r in results):
        lines.append(PREVIOUS_TEACHER_NOTE)
    if any(r["config"].get("warm_start") for r in results):
        lines.append("- warm_start: some runs started from another run's first-task model; "
                     "their task 0 was trained there and only evaluated here.")
    if reference_note is not None:
        return lines + [f"- The IIRC paper's reference numbers do not apply: {reference_note}."]
    lines.append("- paper pw-JS / JS: the IIRC paper's final numbers for the strategy without "
                 "MILe (read off its published plot, ±0.01; 10 configurations, 140 epochs per "
                 "task, 280 for the first).")
    epochs = {(r["config"].get("epochs"), r["config"].get("first_task_epochs")) for r in results}
    if epochs != {REFERENCE_EPOCHS}:
        lines.append(f"- Note: these runs trained (epochs, first-task epochs) = "
                     f"{', '.join(map(str, sorted(epochs, key=str)))}, not the reference's "
                     f"{REFERENCE_EPOCHS}: compare with care.")
    return lines


# ------------------------------------------------------------------ plots


def plot_union_curves(results: list[dict], path, metric: str = "pw_jaccard") -> Path:
    """Union-average ``metric`` against classes seen: one mean line per label (MILe solid, its
    base dashed, same colour) with a ± sample-std band; a star marks the paper's final value
    where it applies."""
    groups = group_by_label(results)
    x = num_seen(results[0])
    colours = _strategy_colours(groups)
    with_reference = metric in ("pw_jaccard", "jaccard") and reference_applies(results) is None
    fig = Figure(figsize=(7.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, runs in groups.items():
        strategy, mile = runs[0]["config"]["strategy"], "+MILe" in label
        stats = [mean_std([(r["union_avg"].get(metric) or [None] * len(x))[t] for r in runs])
                 for t in range(len(x))]
        mean = np.array([s[0] for s in stats])
        std = np.nan_to_num(np.array([s[1] for s in stats]))
        colour = colours[strategy]
        ax.plot(x, mean, color=colour, linestyle="-" if mile else "--",
                marker="o" if len(x) <= 12 else None, markersize=3, linewidth=1.6,
                label=f"{label} (n={len(runs)})")
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
        if with_reference and strategy in IIRC_REFERENCE and not mile:
            reference = IIRC_REFERENCE[strategy][0 if metric == "pw_jaccard" else 1]
            ax.plot([x[-1]], [reference], marker="*", markersize=11, color=colour,
                    markeredgecolor="black", markeredgewidth=0.5, linestyle="none")
    handles, labels = ax.get_legend_handles_labels()
    if with_reference:
        handles.append(Line2D([], [], marker="*", color="grey", markeredgecolor="black",
                              markersize=11, linestyle="none"))
        labels.append("IIRC paper, final")
    ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set(xlabel="number of classes seen", ylabel=f"union-average {_pretty(metric)}",
           ylim=(0, 1), title=f"{benchmark_name(results[0])}: {_pretty(metric)} over all "
           f"tasks seen (mean ± std over configurations)")
    ax.title.set_fontsize("medium")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _strategy_colours(groups: dict[str, list[dict]]) -> dict[str, tuple]:
    strategies = list(dict.fromkeys(runs[0]["config"]["strategy"] for runs in groups.values()))
    palette = colormaps["tab10" if len(strategies) <= 10 else "tab20"]
    return {s: palette(i % palette.N) for i, s in enumerate(strategies)}


def mean_r_matrix(runs: list[dict], metric: str = "pw_jaccard") -> np.ndarray:
    """Element-wise mean of the runs' R[metric] (NaN where no run defines the cell)."""
    stack = np.array([[[nan_if_null(v) for v in row] for row in run["R"][metric]]
                      for run in runs], dtype=float)
    defined = np.isfinite(stack).sum(axis=0)
    total = np.where(np.isfinite(stack), stack, 0.0).sum(axis=0)
    return np.where(defined > 0, total / np.maximum(defined, 1), np.nan)


def plot_r_matrix(result_or_mean, path, metric: str = "pw_jaccard",
                  title: str | None = None) -> Path:
    """Heatmap of R[j][k] (trained through task j on y, evaluated on test task k on x), lower
    triangle only, NaN blank, colour scale 0..1. ``result_or_mean``: one results dict (its
    R[metric]) or a [T, T] matrix such as ``mean_r_matrix``'s."""
    if isinstance(result_or_mean, dict):
        matrix = mean_r_matrix([result_or_mean], metric)
    else:
        matrix = np.array([[nan_if_null(v) for v in row] for row in result_or_mean], dtype=float)
    T = matrix.shape[0]
    matrix[np.triu_indices(T, k=1)] = np.nan
    fig = Figure(figsize=(5.2, 4.4) if T <= 12 else (7.5, 6.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(matrix), vmin=0, vmax=1,
                      cmap=colormaps["viridis"].with_extremes(bad="white"))
    fig.colorbar(image, ax=ax, label=_pretty(metric))
    if T <= 12:
        _annotate(ax, matrix)
    ticks = range(T) if T <= 22 else range(0, T, max(1, T // 11))
    ax.set_xticks(list(ticks))
    ax.set_yticks(list(ticks))
    ax.tick_params(labelsize="small")
    ax.set(xlabel="evaluated on test task k", ylabel="trained through task j",
           title=title or f"R[j][k]: {_pretty(metric)}")
    ax.title.set_fontsize("medium")
    return _save(fig, path)


def _annotate(ax, matrix: np.ndarray) -> None:
    for (j, k), value in np.ndenumerate(matrix):
        if math.isfinite(value):
            ax.text(k, j, f"{value:.2f}", ha="center", va="center",
                    fontsize="small" if matrix.shape[0] <= 6 else "x-small",
                    color="black" if value > 0.5 else "white")


def _pretty(metric: str) -> str:
    return {"pw_jaccard": "pw-JS", "jaccard": "JS"}.get(metric, metric.replace("_", " "))


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=150,
                                                   bbox_inches="tight"))
    return path


def _file_safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_+.-]", "_", label)


# ------------------------------------------------------------------ folder in, folder out


def load_results(out_dir) -> list[dict]:
    """Every ``results.json`` under ``out_dir`` (any depth), sorted by path. Each dict gets
    "_source" (its path) for error messages. A file that is not valid JSON, or not a results
    dict, raises ValueError naming it; no results.json at all raises FileNotFoundError.
    (Unfinished runs write results.partial.json, which is not read.)"""
    paths = sorted(Path(out_dir).rglob(RESULTS))
    if not paths:
        raise FileNotFoundError(f"no {RESULTS} under {out_dir}")
    return [_load_one(path) for path in paths]


def _load_one(path: Path) -> dict:
    try:
        result = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); rerun or remove that run") \
            from error
    missing = [key for key in ("config", "benchmark", "union_avg", "R", "hierarchy")
               if not isinstance(result, dict) or key not in result]
    if missing:
        raise ValueError(f"{path} is not an IIRC results file: missing {', '.join(missing)}")
    result["_source"] = str(path)
    return result


def load_failures(out_dir) -> list[dict]:
    """[{"folder", "error"}] for every run folder under ``out_dir`` with an error.txt: the
    error is the traceback's last line. A run that finishes removes its error.txt, so one
    beside a results.json is listed too (with a note), never hidden: which of the two is
    current is for a person to tell."""
    failures = []
    for path in sorted(Path(out_dir).rglob(ERROR_FILE)):
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        error = lines[-1] if lines else "?"
        if (path.parent / RESULTS).exists():
            error += f" ({RESULTS} beside it, in the table: check which is current)"
        failures.append({"folder": str(path.parent), "error": error})
    return failures


def write_report(results: list[dict], out_dir, failed: list[dict] = (),
                 baseline: str | None = None, baseline_split: str = "test") -> dict[str, Path]:
    """Write runs.csv, comparison.md (with the ``failed`` runs listed and, with ``baseline``,
    paired differences against that label), union_pwjs.png and
    r_matrix_<label>.png into ``out_dir`` (created if needed). Returns {name: path}, name =
    file name without suffix."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_by_label(results)          # fails before anything is written
    paths = {"runs": write_csv(results, out / "runs.csv")}
    paths["comparison"] = out / "comparison.md"
    save_text(comparison_table(results, failed, baseline, baseline_split), paths["comparison"])
    paths["union_pwjs"] = plot_union_curves(results, out / "union_pwjs.png")
    for label, runs in groups.items():
        name = f"r_matrix_{_file_safe(label)}"
        paths[name] = plot_r_matrix(mean_r_matrix(runs), out / f"{name}.png",
                                    title=f"{label}: mean R[j][k], pw-JS (n={len(runs)})")
    return paths
