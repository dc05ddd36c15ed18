"""What the report shows, gathered from the database through storage.queries only (no SQL here).

The frames are read once and split per section: one section per (GPU fingerprint, model). A shape
used by several models (its `models` column lists them) appears in each of their sections.

Decode attention is shown as one op per context bucket ("decode_attention ctx=4096", its `context`
column beside): the page draws every op against M, and attention's M (its batch) recurs at each
context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from storage.engine import display_url
from storage.queries import (
    STEP_COLUMNS,
    failures_frame,
    importances_frame,
    steps_frame,
    studies_frame,
    trials_frame,
    winners_frame,
)
from storage.store import Store

NO_MODEL = "(no model)"

# What ks-data carries per row: enough to check every number the plots show against the database.
WINNER_FIELDS = ["op", "n", "k", "dtype", "m", "context", "arm", "median_us", "unfused_us", "cublas_us", "floor_us",
                 "speedup", "speedup_vs_cublas"]
STUDY_FIELDS = ["study_id", "name", "op", "n", "k", "dtype", "m", "context", "trials", "ok", "failed", "incorrect",
                "best_us", "winner_arm"]
IMPORTANCE_FIELDS = ["study_id", "op", "m", "context", "complete", "param", "importance", "note"]
# A step check's columns less those its section heading already says (every arm's, so a new arm needs no edit here).
STEP_FIELDS = [c for c in STEP_COLUMNS if c not in ("gpu", "fingerprint", "model", "dtype", "created_at")]


@dataclass
class Section:
    """One GPU fingerprint and one model: its winners, studies, trials and parameter importances."""

    gpu: str
    fingerprint: str
    model: str
    winners: pd.DataFrame
    studies: pd.DataFrame
    trials: pd.DataFrame
    importances: pd.DataFrame
    # The end-to-end checks of this GPU and model (storage.queries.steps_frame), newest first.
    steps: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STEP_COLUMNS))

    @property
    def title(self) -> str:
        return f"{self.model} on {self.gpu} [{self.fingerprint}]"

    @property
    def ops(self) -> list[str]:
        """The section's ops in the order they were first tuned (a model's layer order)."""
        return list(dict.fromkeys(self.studies["op"]))


@dataclass
class ReportData:
    """Everything one report page shows."""

    db: str
    generated_at: str
    sections: list[Section] = field(default_factory=list)
    winners: pd.DataFrame | None = None  # every winner, one row per model using its shape
    failures: pd.DataFrame | None = None  # failures_frame over the whole database

    @property
    def empty(self) -> bool:
        return not self.sections

    @property
    def gpus(self) -> list[tuple[str, str]]:
        """(device name, fingerprint key) of every GPU with a study, in section order."""
        return list(dict.fromkeys((s.gpu, s.fingerprint) for s in self.sections))


def _by_model(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (row, model using its shape), in a `model` column; decode attention's op named with
    its context (see the module docstring)."""
    models = frame["models"].map(lambda names: names.split(",") if names else [NO_MODEL])
    return attention_per_context(frame.assign(model=models).explode("model", ignore_index=True))


def attention_per_context(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of decode attention (a `context`) get op 'decode_attention ctx=<context>'; others keep theirs."""
    if frame.empty:
        return frame
    context = frame["context"]
    return frame.assign(op=frame["op"].where(context.isna(), frame["op"] + " ctx=" + context.astype(str)))


def collect(store: Store, importances: bool = True) -> ReportData:
    """Read the database into a ReportData (importances=False skips Optuna, the slowest part)."""
    data = ReportData(display_url(store.url), datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    studies = _by_model(studies_frame(store))
    if studies.empty:
        return data
    winners = _by_model(winners_frame(store))
    trials = _by_model(trials_frame(store))
    if importances:
        imps = _by_model(importances_frame(store))
    else:
        imps = studies.assign(complete=None, param=None, importance=None, note="importances not computed")
    data.winners, data.failures = winners, failures_frame(store)
    steps = steps_frame(store)
    keys = ["gpu", "fingerprint", "model"]
    for (gpu, fp, model), group in studies.groupby(keys, sort=False):
        def part(frame, gpu=gpu, fp=fp, model=model):
            mask = (frame["fingerprint"] == fp) & (frame["model"] == model)
            return frame[mask].reset_index(drop=True)

        data.sections.append(Section(gpu, fp, model, part(winners), group.reset_index(drop=True), part(trials),
                                     part(imps), part(steps)))
    return data


def _clean(value):
    """A JSON-safe scalar: NaN, infinities and NaT become None, numpy numbers plain Python ones (a
    database written before import refused Infinity may hold one; JSON has no word for it)."""
    if value is None or value is pd.NA:  # pd.NA: a linear op's context (a nullable int column)
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NaT:
        return None
    return value


def _records(frame: pd.DataFrame, fields: list[str]) -> list[dict]:
    return [{f: _clean(row[f]) for f in fields} for row in frame.to_dict("records")]


def to_json(data: ReportData) -> dict:
    """The page's machine-readable copy of its numbers (embedded as <script id="ks-data">)."""
    return {
        "format": 1,
        "db": data.db,
        "generated_at": data.generated_at,
        "gpus": [{"gpu": gpu, "fingerprint": fp} for gpu, fp in data.gpus],
        "sections": [
            {
                "gpu": s.gpu,
                "fingerprint": s.fingerprint,
                "model": s.model,
                "ops": s.ops,
                "winners": _records(s.winners, WINNER_FIELDS),
                "studies": _records(s.studies, STUDY_FIELDS),
                "trials": int(len(s.trials)),
                "importances": _records(s.importances, IMPORTANCE_FIELDS),
                "steps": _records(s.steps, STEP_FIELDS),
            }
            for s in data.sections
        ],
    }
