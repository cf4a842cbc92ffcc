"""`linear_model` reads its weights only from the configured model directory, and says nothing
of any file's digest or content (issue 20, item 1).

The attack: a trial's params name ``artifact_path`` and ``artifact_sha256``. Unrestricted, any
file the worker can read was fair game: a wrong digest made the error print the file's real
SHA-256, a right one made pydantic's error echo the file's JSON values into run events, the
`gauntlet run` output and the failure alert.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from simulations.errors import ConfigurationError, PipelineError, TrialDataError
from simulations.strategies import (
    MAX_MODEL_ARTIFACT_BYTES,
    BUILT_IN_STRATEGIES,
    LinearModelStrategy,
    load_verified_artifact,
)

WEIGHTS = {"horizons": [6, 24], "weights": [0.5, 0.5], "bias": 0.0, "vol_lookback": 48}
#: What an attacker wants out of a file: none of it may appear in any message.
SECRET = "hunter2-0f6c1e"
CLOSE = np.linspace(100.0, 120.0, 300)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every cause or context Python (and Dagster's error info) would show."""
    while exc is not None:
        yield exc
        exc = exc.__cause__ if exc.__cause__ is not None else (None if exc.__suppress_context__ else exc.__context__)


def _shown(exc: BaseException) -> str:
    return "\n".join(f"{type(e).__name__}: {e}" for e in _chain(exc))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """The model directory `linear_model` reads from in these tests."""
    directory = tmp_path / "models"
    (directory / "sub").mkdir(parents=True)
    return directory


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A readable file outside the model directory, holding a secret."""
    path = tmp_path / "private" / "secret.json"
    path.parent.mkdir()
    path.write_text(json.dumps({**WEIGHTS, "api_key": SECRET}))
    return path


def _linear_model(model_dir: Path | None):
    return BUILT_IN_STRATEGIES.with_strategies(LinearModelStrategy(model_dir=model_dir), replace=True)


def _positions(path: str | Path, digest: str, model_dir: Path | None) -> np.ndarray:
    strategy, params = _linear_model(model_dir).build(
        name="linear_model", params={"artifact_path": str(path), "artifact_sha256": digest}
    )
    return strategy.positions(close=CLOSE, params=params)


def _refused(path: str | Path, digest: str, match: str, model_dir: Path | None) -> str:
    with pytest.raises(PipelineError, match=match) as caught:
        _positions(path, digest, model_dir)
    return _shown(caught.value)


def test_a_model_inside_the_directory_or_a_subfolder_is_read(model_dir: Path):
    top = model_dir / "weights.json"
    top.write_text(json.dumps(WEIGHTS))
    nested = model_dir / "sub" / "weights.json"
    nested.write_text(json.dumps(WEIGHTS))
    expected = _positions(top, _digest(top), model_dir)
    assert np.abs(expected).max() > 0
    # Absolute, relative to the directory, and through a link that stays inside.
    np.testing.assert_array_equal(_positions(nested, _digest(nested), model_dir), expected)
    np.testing.assert_array_equal(_positions("sub/weights.json", _digest(nested), model_dir), expected)
    (model_dir / "latest.json").symlink_to(nested)
    np.testing.assert_array_equal(_positions(model_dir / "latest.json", _digest(nested), model_dir), expected)


def test_a_file_outside_the_directory_is_refused_even_with_its_right_digest(model_dir: Path, outside: Path):
    digest = _digest(outside)
    paths = [
        outside,  # absolute
        model_dir / ".." / "private" / "secret.json",  # climbs out
        "../private/secret.json",  # relative, climbs out
    ]
    (model_dir / "sub" / "escape.json").symlink_to(outside)  # a link inside that points outside
    (model_dir / "outlink").symlink_to(outside.parent, target_is_directory=True)
    paths += [model_dir / "sub" / "escape.json", model_dir / "outlink" / "secret.json", "outlink/secret.json"]
    for path in paths:
        shown = _refused(path, digest, "outside the model directory", model_dir)
        assert digest not in shown and SECRET not in shown, shown
        # Where a link points is not told either, only what the trial itself wrote.
        assert str(path) == str(outside) or str(outside) not in shown, shown


def test_files_that_are_not_regular_or_too_large_are_refused_without_reading(model_dir: Path):
    fifo = model_dir / "pipe.json"
    os.mkfifo(fifo)
    # Opening a FIFO for reading would wait for a writer forever: refused before any read.
    _refused(fifo, "0" * 64, "not a regular file", model_dir)
    big = model_dir / "big.json"
    with big.open("wb") as handle:
        handle.truncate(MAX_MODEL_ARTIFACT_BYTES + 1)
    _refused(big, "0" * 64, f"larger than {MAX_MODEL_ARTIFACT_BYTES} bytes", model_dir)
    (model_dir / "zero.json").symlink_to("/dev/zero")
    _refused(model_dir / "zero.json", "0" * 64, "outside the model directory", model_dir)


def test_a_wrong_digest_names_neither_digest(model_dir: Path):
    path = model_dir / "weights.json"
    path.write_text(json.dumps(WEIGHTS))
    claimed = "ab" * 32
    shown = _refused(path, claimed, "does not match the trial's artifact_sha256", model_dir)
    assert _digest(path) not in shown and claimed not in shown and claimed.upper() not in shown
    assert _digest(path)[:12] not in shown


def test_an_invalid_model_file_is_described_without_its_content(model_dir: Path):
    cases = {
        "extra_key.json": {**WEIGHTS, SECRET: 1},
        "bad_value.json": {**WEIGHTS, "bias": SECRET},
        "bad_item.json": {**WEIGHTS, "horizons": [6, SECRET]},
        "bad_horizon.json": {**WEIGHTS, "horizons": [6, 987654321]},
        "not_a_mapping.json": [SECRET],
    }
    for name, content in cases.items():
        path = model_dir / name
        path.write_text(json.dumps(content))
        shown = _refused(path, _digest(path), "is not a valid linear model", model_dir)
        assert SECRET not in shown and "987654321" not in shown, shown
    path = model_dir / "broken.json"
    path.write_text('{"bias": "' + SECRET)
    shown = _refused(path, _digest(path), "is not a valid linear model", model_dir)
    assert SECRET not in shown, shown


def test_invalid_params_are_described_without_their_values(model_dir: Path):
    for params in (
        {"artifact_path": "weights.json", "artifact_sha256": SECRET},
        {"artifact_path": "weights.json", "artifact_sha256": "0" * 64, "extra": SECRET},
        {"artifact_path": ["weights.json", SECRET], "artifact_sha256": "0" * 64},
    ):
        with pytest.raises(TrialDataError, match="params for strategy 'linear_model' are invalid") as caught:
            _linear_model(model_dir).build(name="linear_model", params=params)
        assert SECRET not in _shown(caught.value), _shown(caught.value)


def test_without_a_model_directory_every_artifact_is_refused(tmp_path: Path):
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(WEIGHTS))
    _refused(path, _digest(path), "no model directory is configured", None)
    # The built-in registry's linear_model is the one without a directory.
    with pytest.raises(PipelineError, match="no model directory is configured"):
        strategy, params = BUILT_IN_STRATEGIES.build(
            name="linear_model", params={"artifact_path": str(path), "artifact_sha256": _digest(path)}
        )
        strategy.positions(close=CLOSE, params=params)
    with pytest.raises(ConfigurationError, match="model directory .*absent.* does not exist"):
        _positions(path, _digest(path), tmp_path / "absent")


def test_load_verified_artifact_is_confined_too(model_dir: Path, outside: Path):
    inside = model_dir / "blob.bin"
    inside.write_bytes(b"weights")
    assert load_verified_artifact(model_dir=model_dir, path="blob.bin", sha256=_digest(inside).upper()) == b"weights"
    with pytest.raises(TrialDataError, match="outside the model directory"):
        load_verified_artifact(model_dir=model_dir, path=outside, sha256=_digest(outside))
