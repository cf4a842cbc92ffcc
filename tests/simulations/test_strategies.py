"""Strategy registry, params validation, vectorised positions, plug-ins, verified artifacts."""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from simulations.backtest import run_backtest
from simulations.errors import ConfigurationError, MarketDataError, TrialDataError
from simulations.strategies import (
    BUILT_IN_STRATEGIES,
    LinearModelStrategy,
    StrategyRegistry,
    load_strategy_from_import_path,
    load_verified_artifact,
)

SEARCHABLE = ("momentum", "mean_reversion")
VALID = {
    "momentum": {"lookback": 24, "vol_lookback": 48, "target_bar_vol": 0.005},
    "mean_reversion": {"lookback": 24, "entry_z": 1.5, "exit_z": 0.5},
}
LINEAR_WEIGHTS = {"horizons": [6, 24, 96], "weights": [0.2, 0.5, 0.3], "bias": 0.05, "vol_lookback": 48}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> StrategyRegistry:
    """The built-ins, linear_model reading its artifacts from the root of every temporary
    directory these tests write (tests/simulations/test_model_artifacts.py checks the
    confinement itself)."""
    return BUILT_IN_STRATEGIES.with_strategies(LinearModelStrategy(model_dir=tmp_path_factory.getbasetemp()), replace=True)


@pytest.fixture
def linear_params(tmp_path: Path) -> dict:
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(LINEAR_WEIGHTS))
    return {"artifact_path": str(path), "artifact_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _all_built(registry: StrategyRegistry, linear_params: dict) -> list[tuple]:
    return [registry.build(name=name, params=params) for name, params in {**VALID, "linear_model": linear_params}.items()]


# --------------------------------------------------------------------------- registry and params


def test_registry_lists_builtins_and_unknown_names_fail_listing_them() -> None:
    assert {"momentum", "mean_reversion", "linear_model"} <= set(BUILT_IN_STRATEGIES.names())
    with pytest.raises(TrialDataError, match="unknown strategy 'trend'; known strategies: .*momentum"):
        BUILT_IN_STRATEGIES.build(name="trend", params={})


def _invalid_variants(name: str) -> st.SearchStrategy[dict]:
    valid = VALID[name]
    model = BUILT_IN_STRATEGIES.get(name=name).params_model
    keys = sorted(valid)

    def wrong_type(key: str, value: object) -> dict:
        return {**valid, key: value}

    bad_values = st.one_of(
        st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2), st.booleans(), st.just(float("nan"))
    )
    int_keys = [key for key in keys if model.model_fields[key].annotation is int]
    below_or_above = []
    for key in keys:
        for constraint in model.model_fields[key].metadata:
            for attribute, direction in (("ge", -1), ("gt", -1), ("le", 1), ("lt", 1)):
                bound = getattr(constraint, attribute, None)
                if bound is not None:
                    step = 1 if key in int_keys else 1e-9 + abs(bound) * 1e-6
                    offset = 0 if attribute in ("gt", "lt") else step
                    below_or_above.append({**valid, key: type(valid[key])(bound + direction * offset)})
    return st.one_of(
        st.builds(wrong_type, st.sampled_from(keys), bad_values),
        st.builds(wrong_type, st.sampled_from(int_keys), st.floats(allow_nan=False, allow_infinity=False)),
        st.sampled_from(below_or_above),
        st.builds(lambda extra: {**valid, f"x_{extra}": 1}, st.text(min_size=1, max_size=5)),
        st.builds(lambda key: {k: v for k, v in valid.items() if k != key}, st.sampled_from(keys)),
    )


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=st.sampled_from(SEARCHABLE))
def test_bad_params_raise_trial_data_error_with_pydantic_message(data: st.DataObject, name: str) -> None:
    params = data.draw(_invalid_variants(name))
    with pytest.raises(TrialDataError, match=f"params for strategy '{name}' are invalid: .*validation error"):
        BUILT_IN_STRATEGIES.build(name=name, params=params)


def test_mean_reversion_rejects_exit_not_below_entry() -> None:
    with pytest.raises(TrialDataError, match="exit_z .* must be below entry_z"):
        BUILT_IN_STRATEGIES.build(name="mean_reversion", params={"lookback": 10, "entry_z": 1.0, "exit_z": 1.0})


def test_params_must_be_a_mapping() -> None:
    with pytest.raises(TrialDataError, match="must be a mapping"):
        BUILT_IN_STRATEGIES.build(name="momentum", params=[("lookback", 3)])  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(data=st.data(), name=st.sampled_from(SEARCHABLE))
def test_every_point_of_the_search_space_builds(data: st.DataObject, name: str) -> None:
    params = {}
    for key, (kind, low, high, _log) in BUILT_IN_STRATEGIES.get(name=name).search_space().items():
        if kind == "int":
            params[key] = data.draw(st.integers(min_value=int(low), max_value=int(high)))
        else:
            params[key] = data.draw(st.floats(min_value=low, max_value=high))
    strategy, model = BUILT_IN_STRATEGIES.build(name=name, params=params)
    assert strategy.name == name and model.model_dump() == params


def test_search_space_shape() -> None:
    for name in BUILT_IN_STRATEGIES.names():
        for key, (kind, low, high, log) in BUILT_IN_STRATEGIES.get(name=name).search_space().items():
            assert kind in ("int", "float") and low < high and isinstance(log, bool), key
    assert BUILT_IN_STRATEGIES.get(name="linear_model").search_space() == {}


# --------------------------------------------------------------------------- positions


def test_positions_shape_range_warmup_and_batch_axes(
    random_walk_close: np.ndarray, linear_params: dict, registry: StrategyRegistry
) -> None:
    batch = np.stack([random_walk_close, random_walk_close[::-1], random_walk_close * 3.0])
    cube = np.stack([batch, batch[::-1]])
    for strategy, params in _all_built(registry, linear_params):
        single = strategy.positions(close=random_walk_close, params=params)
        assert single.shape == random_walk_close.shape and single.dtype == np.float64
        assert np.all(np.abs(single) <= 1.0)
        assert single[0] == 0.0 and np.count_nonzero(single) > 0
        stacked = strategy.positions(close=batch, params=params)
        for row in range(batch.shape[0]):
            np.testing.assert_array_equal(stacked[row], strategy.positions(close=batch[row], params=params))
        np.testing.assert_array_equal(strategy.positions(close=cube, params=params)[1], stacked[::-1])


def test_warmup_bars_are_flat() -> None:
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(1).normal(0.0, 0.01, 300)))
    strategy, params = BUILT_IN_STRATEGIES.build(name="momentum", params={"lookback": 50, "vol_lookback": 80, "target_bar_vol": 0.01})
    positions = strategy.positions(close=close, params=params)
    assert not positions[:80].any() and positions[80] != 0.0
    strategy, params = BUILT_IN_STRATEGIES.build(name="mean_reversion", params={"lookback": 40, "entry_z": 0.5, "exit_z": 0.1})
    assert not strategy.positions(close=close, params=params)[:39].any()


def test_momentum_matches_hand_computation() -> None:
    # Alternating log steps +0.02, -0.01: every 2-bar log return is +0.01 (long); per-bar log
    # returns over any 2 bars are {0.02, -0.01}: sample std = 0.03 / sqrt(2) = 0.0212132.
    log_close = np.log(100.0) + np.cumsum(np.tile([0.02, -0.01], 5))
    strategy, params = BUILT_IN_STRATEGIES.build(name="momentum", params={"lookback": 2, "vol_lookback": 2, "target_bar_vol": 0.01})
    positions = strategy.positions(close=np.exp(log_close), params=params)
    expected_size = 0.01 / (0.03 / np.sqrt(2.0))  # 0.4714045
    np.testing.assert_allclose(positions[2:], expected_size, rtol=1e-9)
    np.testing.assert_array_equal(positions[:2], 0.0)
    falling = strategy.positions(close=np.exp(-log_close), params=params)
    np.testing.assert_allclose(falling[2:], -expected_size, rtol=1e-9)


def _reference_momentum(close: np.ndarray, lookback: int, vol_lookback: int, target: float) -> np.ndarray:
    log_close = np.log(close)
    returns = np.diff(log_close, prepend=log_close[0])
    out = np.zeros_like(close)
    for t in range(max(lookback, vol_lookback), close.size):
        vol = returns[t - vol_lookback + 1 : t + 1].std(ddof=1)
        out[t] = np.sign(log_close[t] - log_close[t - lookback]) * (min(1.0, target / vol) if vol > 0 else 1.0)
    return out


def _reference_mean_reversion(close: np.ndarray, lookback: int, entry: float, exit_: float) -> np.ndarray:
    """The state machine with a loop, as a trader would write it."""
    x = np.log(close)
    state, out = 0.0, np.zeros_like(close)
    for t in range(lookback - 1, close.size):
        window = x[t - lookback + 1 : t + 1]
        std = window.std(ddof=1)
        z = (x[t] - window.mean()) / std if std > 0 else 0.0
        if z < -entry:
            state = 1.0
        elif z > entry:
            state = -1.0
        elif state == 1.0 and z >= -exit_:
            state = 0.0
        elif state == -1.0 and z <= exit_:
            state = 0.0
        out[t] = state
    return out


def test_vectorised_strategies_match_loop_references(random_walk_close: np.ndarray) -> None:
    close = random_walk_close[:600]
    strategy, params = BUILT_IN_STRATEGIES.build(name="momentum", params={"lookback": 17, "vol_lookback": 30, "target_bar_vol": 0.008})
    np.testing.assert_allclose(
        strategy.positions(close=close, params=params), _reference_momentum(close, 17, 30, 0.008), rtol=1e-7, atol=1e-12
    )
    for lookback, entry, exit_ in ((20, 1.5, 0.5), (12, 1.0, 0.0), (40, 2.0, 0.9)):
        strategy, params = BUILT_IN_STRATEGIES.build(
            name="mean_reversion", params={"lookback": lookback, "entry_z": entry, "exit_z": exit_}
        )
        vectorised = strategy.positions(close=close, params=params)
        reference = _reference_mean_reversion(close, lookback, entry, exit_)
        assert np.count_nonzero(reference) > 20
        np.testing.assert_array_equal(vectorised, reference)


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=0, max_value=598), seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_no_look_ahead_for_every_strategy(
    cut: int, seed: int, random_walk_close: np.ndarray, tmp_path_factory, registry: StrategyRegistry
) -> None:
    """Changing bars after ``cut`` changes neither positions nor PnL up to ``cut``, bit for bit."""
    directory = tmp_path_factory.mktemp("artifact")
    path = directory / "weights.json"
    path.write_text(json.dumps(LINEAR_WEIGHTS))
    linear = {"artifact_path": str(path), "artifact_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    close = random_walk_close[:600]
    altered = close.copy()
    altered[cut + 1 :] *= np.exp(np.random.default_rng(seed).normal(0.0, 0.05, close.size - cut - 1))
    for strategy, params in _all_built(registry, linear):
        before = strategy.positions(close=close, params=params)
        after = strategy.positions(close=altered, params=params)
        assert before[: cut + 1].tobytes() == after[: cut + 1].tobytes(), strategy.name
        pnl_before = run_backtest(close=close, positions=before).net_returns
        pnl_after = run_backtest(close=altered, positions=after).net_returns
        assert pnl_before[: cut + 1].tobytes() == pnl_after[: cut + 1].tobytes(), strategy.name


def test_bad_close_raises_market_data_error() -> None:
    strategy, params = BUILT_IN_STRATEGIES.build(name="momentum", params=VALID["momentum"])
    for close, message in (
        (np.array([1.0, np.nan, 2.0]), "non-finite"),
        (np.array([1.0, 0.0, 2.0]), "must be > 0"),
        (np.array([]), "n_bars >= 1"),
        (np.array(["a", "b"]), "real numeric"),
    ):
        with pytest.raises(MarketDataError, match=message):
            strategy.positions(close=close, params=params)


def test_positions_refuse_params_of_another_strategy() -> None:
    strategy, _ = BUILT_IN_STRATEGIES.build(name="momentum", params=VALID["momentum"])
    _, other = BUILT_IN_STRATEGIES.build(name="mean_reversion", params=VALID["mean_reversion"])
    with pytest.raises(TrialDataError, match="needs params of type MomentumParams"):
        strategy.positions(close=np.ones(10), params=other)


# --------------------------------------------------------------------------- artifacts


def test_verified_artifact_reads_only_matching_files(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert load_verified_artifact(model_dir=tmp_path, path=path, sha256=digest.upper()) == b"weights"
    with pytest.raises(TrialDataError, match="does not match the trial's artifact_sha256"):
        load_verified_artifact(model_dir=tmp_path, path=path, sha256="0" * 64)
    with pytest.raises(TrialDataError, match="cannot be read"):
        load_verified_artifact(model_dir=tmp_path, path=tmp_path / "missing.bin", sha256=digest)
    with pytest.raises(TrialDataError, match="64 hexadecimal"):
        load_verified_artifact(model_dir=tmp_path, path=path, sha256="abc")


def test_linear_model_from_json_and_npz_agree_and_pickles_are_refused(
    tmp_path: Path, linear_params: dict, random_walk_close: np.ndarray, registry: StrategyRegistry
) -> None:
    npz = tmp_path / "weights.npz"
    np.savez(npz, **{key: np.asarray(value) for key, value in LINEAR_WEIGHTS.items()})
    npz_params = {"artifact_path": str(npz), "artifact_sha256": hashlib.sha256(npz.read_bytes()).hexdigest()}
    strategy, from_json = registry.build(name="linear_model", params=linear_params)
    _, from_npz = registry.build(name="linear_model", params=npz_params)
    json_positions = strategy.positions(close=random_walk_close, params=from_json)
    np.testing.assert_array_equal(json_positions, strategy.positions(close=random_walk_close, params=from_npz))
    assert np.all(np.abs(json_positions) < 1.0) and not json_positions[:96].any()

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, horizons=np.array([{"evil": 1}], dtype=object), weights=[1.0], bias=0.0, vol_lookback=10)
    _, pickled_params = registry.build(
        name="linear_model",
        params={"artifact_path": str(pickled), "artifact_sha256": hashlib.sha256(pickled.read_bytes()).hexdigest()},
    )
    with pytest.raises(TrialDataError, match="not a valid linear model"):
        strategy.positions(close=random_walk_close, params=pickled_params)

    tampered = tmp_path / "weights.json"
    tampered.write_text(json.dumps({**LINEAR_WEIGHTS, "bias": 9.0}))
    with pytest.raises(TrialDataError, match="was altered"):
        strategy.positions(close=random_walk_close, params=from_json)


def test_linear_model_rejects_inconsistent_artifact(tmp_path: Path, registry: StrategyRegistry) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**LINEAR_WEIGHTS, "weights": [1.0]}))
    strategy, params = registry.build(
        name="linear_model",
        params={"artifact_path": str(path), "artifact_sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
    )
    with pytest.raises(TrialDataError, match="3 horizons but 1 weights"):
        strategy.positions(close=np.linspace(1.0, 2.0, 200), params=params)


# --------------------------------------------------------------------------- plug-ins

PLUGIN_SOURCE = textwrap.dedent(
    """
    import numpy as np
    from pydantic import BaseModel, ConfigDict

    class AlwaysLongParams(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        size: float = 1.0

    class AlwaysLong:
        name = "always_long"
        params_model = AlwaysLongParams

        def positions(self, *, close, params):
            return np.full(np.shape(close), params.size)

        def search_space(self):
            return {"size": ("float", 0.1, 1.0, False)}

    not_a_strategy = object()

    def _explode():
        raise RuntimeError("boom")

    class Exploding:
        def __init__(self):
            _explode()
    """
)


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "gauntlet_test_plugin.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "gauntlet_test_plugin"


def test_a_plugin_joins_a_new_registry_and_builds(plugin_module: str) -> None:
    strategy = load_strategy_from_import_path(import_path=f"{plugin_module}:AlwaysLong")
    registry = BUILT_IN_STRATEGIES.with_strategies(strategy)
    built, params = registry.build(name="always_long", params={"size": 0.5})
    assert built is strategy and isinstance(params, BaseModel)
    assert built.positions(close=np.ones(3), params=params).tolist() == [0.5, 0.5, 0.5]
    # A value: the registry it was added to is unchanged.
    assert "always_long" not in BUILT_IN_STRATEGIES.names() and "always_long" in registry.names()
    with pytest.raises(ConfigurationError, match="already taken"):
        registry.with_strategies(load_strategy_from_import_path(import_path=f"{plugin_module}:AlwaysLong"))
    with pytest.raises(ConfigurationError, match="already taken"):
        BUILT_IN_STRATEGIES.with_strategies(LinearModelStrategy(model_dir="/elsewhere"))
    with pytest.raises(ConfigurationError, match="is not a strategy"):
        registry.with_strategies(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("not_a_strategy", "is not a strategy: it lacks"),
        ("Exploding", "failed: RuntimeError: boom"),
        ("Missing", "failed: AttributeError"),
    ],
)
def test_plugin_errors_name_the_path(plugin_module: str, attribute: str, message: str) -> None:
    path = f"{plugin_module}:{attribute}"
    with pytest.raises(TrialDataError, match=f"'{path}'.*{message}|{message}.*'{path}'"):
        load_strategy_from_import_path(import_path=path)


@pytest.mark.parametrize("path", ["no_colon", ":obj", "mod:", "gauntlet_no_such_module_xyz:obj"])
def test_malformed_or_missing_import_paths(path: str) -> None:
    with pytest.raises(TrialDataError, match=f"'{path}'"):
        load_strategy_from_import_path(import_path=path)


def test_no_strategy_is_kept_at_module_level_but_the_immutable_built_ins() -> None:
    # Plug-ins reach evaluation only inside a registry value: strategies.py holds no mutable
    # container at module level that a setup could fill as a side effect.
    tree = ast.parse(Path(inspect.getfile(StrategyRegistry)).read_text())
    containers = (ast.Dict, ast.DictComp, ast.List, ast.ListComp, ast.Set, ast.SetComp)
    mutable = [
        node.lineno
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, containers)
    ]
    assert mutable == []
    assert not any(isinstance(node, ast.Global) for node in ast.walk(tree))
    with pytest.raises(TypeError):
        BUILT_IN_STRATEGIES._by_name["always_long"] = object()  # type: ignore[index]  # noqa: SLF001
