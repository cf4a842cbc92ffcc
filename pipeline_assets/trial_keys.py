"""The trial partition key format, and the limits of a trial run: no Dagster, so that the
commands that only read (``gauntlet status``) import it without the definitions.

A key is ``<study>__t<number>`` with the number zero-padded to eight digits, so keys sort by
trial number within a study and parse unambiguously from the right. Study names that are not
already safe (letters, digits, ``_``, ``-``; at most 64 characters) are slugged and suffixed
with ``~`` and a hash of the full name: ``~`` never occurs in a safe name, so keys of
different studies never collide. Keys never contain commas, ``...`` or control characters,
which break UI backfills (DESIGN.md).
"""

from __future__ import annotations

import hashlib
import re

#: Name of the dynamic partitions of the trial assets (`pipeline_assets.partitions`).
TRIALS_PARTITIONS_NAME = "trials"
#: Upper bound of trials evaluated in one run (UI backfills and sensor batches alike).
MAX_TRIALS_PER_RUN = 100
#: Seconds between `optuna_trial_sensor` ticks unless configured.
DEFAULT_SENSOR_INTERVAL_SECONDS = 15

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KEY = re.compile(r"^(?P<prefix>[A-Za-z0-9_~-]+)__t(?P<number>\d{8,})$")
_NUMBER_DIGITS = 8


def study_key_prefix(study_name: str) -> str:
    """The part of every partition key of ``study_name`` before ``__t``."""
    if _SAFE_NAME.fullmatch(study_name):
        return study_name
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", study_name).strip("-")[:40] or "study"
    digest = hashlib.sha256(study_name.encode()).hexdigest()[:10]
    return f"{slug}~{digest}"


def trial_partition_key(study_name: str, number: int) -> str:
    """Partition key of trial ``number`` of ``study_name``."""
    if number < 0:
        raise ValueError(f"trial number must be >= 0, got {number}")
    return f"{study_key_prefix(study_name)}__t{number:0{_NUMBER_DIGITS}d}"


def parse_trial_partition_key(key: str) -> tuple[str, int]:
    """Split a key into (study key prefix, trial number); raise ValueError if malformed."""
    match = _KEY.fullmatch(key)
    if match is None:
        raise ValueError(f"{key!r} is not a trial partition key (<study>__t<8+ digits>)")
    return match["prefix"], int(match["number"])
