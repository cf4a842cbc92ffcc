"""Trading strategies: a registry of vectorised position rules keyed by name.

A strategy turns a close-price array of shape ``(..., n_bars)`` into target positions of
the same shape, in ``[-1, 1]`` (fraction of equity, negative is short). Leading axes are
independent price paths (scenarios) evaluated with the same parameters. The target on bar
``t`` uses ``close[..., :t + 1]`` only; the backtester holds it from bar ``t + 1``. Bars
before an indicator has its full window are flat.

The Optuna trial's ``strategy`` user attribute names the registry entry; its params are
validated by the entry's pydantic model (strict types, ranges, no unknown keys). Plug-ins
come only from the configuration (:func:`load_strategy_from_import_path`, added to a
:class:`StrategyRegistry` that is passed to what evaluates trials): trial data never names
code to import. Model artifacts are
read only through :func:`load_verified_artifact`, only from the configured model directory,
and never unpickled; no message ever carries a file's digest or content.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import io
import json
import os
import re
import stat
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Protocol, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulations.constants import MAX_INDICATOR_LOOKBACK_BARS
from simulations.errors import ConfigurationError, MarketDataError, PipelineError, TrialDataError

#: One search dimension: (kind, low, high, log) — ``kind`` is "int" or "float".
SearchDimension = tuple[Literal["int", "float"], float, float, bool]

_SHA256_PATTERN = re.compile(r"^[0-9a-fA-F]{64}$")

#: Largest model artifact read, in bytes. A linear model is a few dozen numbers; the bound keeps
#: a trial from making a worker read a huge file.
MAX_MODEL_ARTIFACT_BYTES = 16 * 1024 * 1024
#: Longest piece of a trial's own input (a path) repeated in a message.
_MAX_QUOTED = 200


class Strategy(Protocol):
    """What every strategy, built-in or plug-in, provides.

    Attributes
    ----------
    name
        Registry key, the value of the trial's ``strategy`` user attribute.
    params_model
        Pydantic model validating the trial's params.
    """

    name: str
    params_model: type[BaseModel]

    def positions(self, *, close: np.ndarray, params: BaseModel) -> np.ndarray:
        """Target positions in ``[-1, 1]``, same shape as ``close``, no look-ahead."""
        ...

    def search_space(self) -> dict[str, SearchDimension]:
        """Optuna-free description of the params a trainer may sample."""
        ...


class StrategyParams(BaseModel):
    """Base of every params model: immutable, strict types, finite numbers, no extras."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


def _validated_close(close: np.ndarray) -> np.ndarray:
    array = np.asarray(close)
    if array.ndim < 1 or array.shape[-1] < 1:
        raise MarketDataError(f"close must have shape (..., n_bars) with n_bars >= 1, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise MarketDataError(f"close must be a real numeric array, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise MarketDataError(f"close has a non-finite value at index {tuple(int(i) for i in bad)}")
    if not (array > 0).all():
        bad = np.argwhere(array <= 0)[0]
        raise MarketDataError(
            f"close must be > 0, got {array[tuple(bad)]!r} at index {tuple(int(i) for i in bad)}"
        )
    return array


def _quoted(text: object) -> str:
    shown = repr(str(text))
    return shown if len(shown) <= _MAX_QUOTED else shown[: _MAX_QUOTED - 1] + "…"


def validation_problems(exc: ValidationError, *, name_unknown_keys: bool = True) -> str:
    """pydantic's errors as ``N validation error(s): field: message; …``, without input values.

    ``str(ValidationError)`` repeats every offending input (``input_value=…``); wherever the
    input is a file's content that is the content itself, shown in run events and alerts. With
    ``name_unknown_keys=False`` a key the model does not know is not named either: it is content
    too.
    """
    count = exc.error_count()
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = error["loc"]
        known = bool(loc) and (name_unknown_keys or error["type"] != "extra_forbidden")
        where = ".".join(str(part) for part in loc) if known else ("a key" if loc else "the input")
        parts.append(f"{where}: {error['msg']}")
    return f"{count} validation error{'s' if count != 1 else ''}: " + "; ".join(parts)


def _checked_params(strategy: Strategy, params: BaseModel) -> BaseModel:
    if not isinstance(params, strategy.params_model):
        raise TrialDataError(
            f"strategy {strategy.name!r} needs params of type {strategy.params_model.__name__}, "
            f"got {type(params).__name__}; build them with StrategyRegistry.build()"
        )
    return params


def _window_sum(cumulative: np.ndarray, window: int) -> np.ndarray:
    """Trailing sums of length ``window`` from an inclusive cumulative sum along the last axis.

    Entries before ``window - 1`` hold partial sums; callers mask them as warm-up.
    """
    sums = cumulative.copy()
    sums[..., window:] -= cumulative[..., :-window]
    return sums


def _log_returns(log_close: np.ndarray) -> np.ndarray:
    returns = np.zeros_like(log_close)
    np.subtract(log_close[..., 1:], log_close[..., :-1], out=returns[..., 1:])
    return returns


def _realised_vol(log_returns: np.ndarray, window: int) -> np.ndarray:
    """Trailing sample standard deviation (ddof=1) of per-bar log returns, per bar.

    Cumulative sums keep this O(n) and causal: numpy accumulates sequentially, so the
    value on bar ``t`` depends on bars up to ``t`` only and later bars cannot change it,
    not even by rounding. Valid from bar ``window`` (bar 0 has no return).
    """
    sum_r = _window_sum(np.cumsum(log_returns, axis=-1), window)
    sum_r2 = _window_sum(np.cumsum(log_returns * log_returns, axis=-1), window)
    variance = (sum_r2 - sum_r * sum_r / window) / (window - 1)
    return np.sqrt(np.maximum(variance, 0.0))


def _warmup_mask(n_bars: int, warmup: int) -> np.ndarray:
    return np.arange(n_bars) < warmup


def _vol_scale(vol: np.ndarray, target: float) -> np.ndarray:
    """``min(1, target / vol)``; a bar with zero realised volatility gets the full size 1."""
    scale = np.ones_like(vol)
    np.divide(target, vol, out=scale, where=vol > 0)
    return np.minimum(scale, 1.0)


class MomentumParams(StrategyParams):
    """Params of :class:`MomentumStrategy`.

    Attributes
    ----------
    lookback
        Bars over which the trend is measured (sign of the log return over them); 1 follows
        the last bar's move, what a short-horizon (autocorrelation) edge needs.
    vol_lookback
        Bars of per-bar log returns in the realised-volatility estimate.
    target_bar_vol
        Target volatility per bar of the position's returns, as a fraction (0.003 on
        hourly bars is about 28 % annualised: multiply by sqrt(bars per year)).
    """

    lookback: int = Field(ge=1, le=MAX_INDICATOR_LOOKBACK_BARS)
    vol_lookback: int = Field(ge=2, le=MAX_INDICATOR_LOOKBACK_BARS)
    target_bar_vol: float = Field(gt=0.0, le=0.1)


class MomentumStrategy:
    """Time-series momentum with volatility targeting.

    Position on bar ``t`` is ``sign(log close[t] - log close[t - lookback])`` scaled by
    ``min(1, target_bar_vol / realised_vol[t])``; flat until both windows are full.
    """

    name: ClassVar[str] = "momentum"
    params_model: ClassVar[type[BaseModel]] = MomentumParams

    def positions(self, *, close: np.ndarray, params: BaseModel) -> np.ndarray:
        """Target positions in ``[-1, 1]`` for ``close`` of shape ``(..., n_bars)``.

        Parameters
        ----------
        close
            Close prices (price units, > 0), shape ``(..., n_bars)``.
        params
            A validated :class:`MomentumParams`.

        Returns
        -------
        numpy.ndarray
            Float64 positions (fraction of equity), same shape as ``close``.
        """
        p = _checked_params(self, params)
        log_close = np.log(_validated_close(close))
        n = log_close.shape[-1]
        trend = np.zeros_like(log_close)
        if n > p.lookback:
            np.subtract(log_close[..., p.lookback :], log_close[..., : -p.lookback], out=trend[..., p.lookback :])
        vol = _realised_vol(_log_returns(log_close), p.vol_lookback)
        positions = np.sign(trend) * _vol_scale(vol, p.target_bar_vol)
        positions[..., _warmup_mask(n, max(p.lookback, p.vol_lookback))] = 0.0
        return positions

    def search_space(self) -> dict[str, SearchDimension]:
        """Ranges a trainer samples: lookbacks log-uniform in bars (from one bar, so a study can
        find a short-horizon edge), target vol per bar."""
        return {
            "lookback": ("int", 1, 480, True),
            "vol_lookback": ("int", 24, 720, True),
            "target_bar_vol": ("float", 0.001, 0.01, True),
        }


class MeanReversionParams(StrategyParams):
    """Params of :class:`MeanReversionStrategy`.

    Attributes
    ----------
    lookback
        Bars in the rolling mean and standard deviation of log close.
    entry_z
        Enter long below ``-entry_z`` and short above ``+entry_z`` (standard deviations).
    exit_z
        Leave a long once z rises above ``-exit_z``, a short once it falls below
        ``+exit_z``; must be below ``entry_z``.
    """

    lookback: int = Field(ge=3, le=MAX_INDICATOR_LOOKBACK_BARS)
    entry_z: float = Field(gt=0.0, le=10.0)
    exit_z: float = Field(ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _exit_inside_entry(self) -> MeanReversionParams:
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be below entry_z ({self.entry_z})")
        return self


class MeanReversionStrategy:
    """Z-score mean reversion with entry/exit hysteresis, fully vectorised.

    z on bar ``t`` is the deviation of log close from its trailing ``lookback``-bar mean in
    units of the trailing standard deviation (a flat window has z = 0). Each bar falls in
    one of five zones: ``z < -entry`` (go long), ``-entry <= z < -exit`` (a short exits, a
    long holds), ``|z| <= exit`` (flat), ``exit < z <= entry`` (a long exits, a short
    holds), ``z > entry`` (go short). Hence the state is long exactly when the last bar
    outside the "long holds" zone was a "go long" bar, and short symmetrically: two
    forward fills replace the state machine's loop.
    """

    name: ClassVar[str] = "mean_reversion"
    params_model: ClassVar[type[BaseModel]] = MeanReversionParams

    _GO_LONG, _HOLD_LONG, _FLAT, _HOLD_SHORT, _GO_SHORT = range(5)

    def positions(self, *, close: np.ndarray, params: BaseModel) -> np.ndarray:
        """Target positions in ``{-1, 0, 1}`` for ``close`` of shape ``(..., n_bars)``.

        Parameters
        ----------
        close
            Close prices (price units, > 0), shape ``(..., n_bars)``.
        params
            A validated :class:`MeanReversionParams`.

        Returns
        -------
        numpy.ndarray
            Float64 positions (fraction of equity), same shape as ``close``.
        """
        p = _checked_params(self, params)
        log_close = np.log(_validated_close(close))
        # Rebasing on the first bar (known at every t) keeps the squared sums small.
        x = log_close - log_close[..., :1]
        window = p.lookback
        mean = _window_sum(np.cumsum(x, axis=-1), window) / window
        mean_sq = _window_sum(np.cumsum(x * x, axis=-1), window) / window
        std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0) * (window / (window - 1)))
        z = np.zeros_like(x)
        np.divide(x - mean, std, out=z, where=std > 0)

        zone = np.full(x.shape, self._FLAT, dtype=np.int8)
        zone[z < -p.entry_z] = self._GO_LONG
        zone[(z >= -p.entry_z) & (z < -p.exit_z)] = self._HOLD_LONG
        zone[(z > p.exit_z) & (z <= p.entry_z)] = self._HOLD_SHORT
        zone[z > p.entry_z] = self._GO_SHORT
        zone[..., _warmup_mask(x.shape[-1], window - 1)] = self._FLAT

        long = self._last_zone_outside(zone, self._HOLD_LONG) == self._GO_LONG
        short = self._last_zone_outside(zone, self._HOLD_SHORT) == self._GO_SHORT
        return long.astype(np.float64) - short.astype(np.float64)

    @staticmethod
    def _last_zone_outside(zone: np.ndarray, skipped: int) -> np.ndarray:
        """Zone of the most recent bar (at or before each bar) whose zone is not ``skipped``."""
        index = np.where(zone != skipped, np.arange(zone.shape[-1]), 0)
        last = np.maximum.accumulate(index, axis=-1)
        # Bar 0 is always warm-up (flat), so a 0 index is a genuine flat bar.
        return np.take_along_axis(zone, last, axis=-1)

    def search_space(self) -> dict[str, SearchDimension]:
        """Ranges a trainer samples; exit_z's range stays below entry_z's, so every sample is valid."""
        return {
            "lookback": ("int", 6, 480, True),
            "entry_z": ("float", 1.0, 3.0, False),
            "exit_z": ("float", 0.0, 0.9, False),
        }


def _model_root(model_dir: str | Path | None) -> Path:
    if model_dir is None:
        raise TrialDataError(
            "linear_model artifacts are refused: no model directory is configured "
            "(strategies.model_dir in gauntlet.yaml, or GAUNTLET_MODEL_DIR)"
        )
    try:
        root = Path(model_dir).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ConfigurationError(f"model directory {model_dir} does not exist or cannot be resolved") from exc
    if not root.is_dir():
        raise ConfigurationError(f"model directory {model_dir} is not a directory")
    return root


def _opened_path(fd: int) -> Path | None:
    """What ``fd`` is open on, where the system says (Linux); None elsewhere."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        # No /proc (macOS, a hardened container): the containment check before the open stands alone.
        return None


def _read_confined(root: Path, path: str | Path) -> bytes:
    """The bytes of ``path`` (absolute, or relative to ``root``) if it is a regular file in ``root``."""
    requested = Path(path)
    outside = TrialDataError(
        f"artifact_path {_quoted(path)} is outside the model directory {root} (links resolved): "
        "put the model file in that directory or a subfolder"
    )
    try:
        resolved = (requested if requested.is_absolute() else root / requested).resolve()
    except (OSError, RuntimeError) as exc:
        # RuntimeError: a symlink loop (Python < 3.13).
        raise TrialDataError(f"artifact_path {_quoted(path)} cannot be resolved: {type(exc).__name__}") from None
    if resolved == root or not resolved.is_relative_to(root):
        raise outside
    # O_NOFOLLOW: the resolved path has no link left, so one appearing now is a swap; O_NONBLOCK:
    # opening a FIFO would otherwise wait for a writer forever.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(resolved, flags)
    except OSError as exc:
        raise TrialDataError(f"artifact {_quoted(path)} cannot be read: {exc.strerror}") from None
    try:
        # A directory on the way swapped for a link between the check and the open would be
        # followed: what the descriptor is open on is the truth.
        opened = _opened_path(fd)
        if opened is not None and not opened.is_relative_to(root):
            raise outside
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TrialDataError(f"artifact {_quoted(path)} is not a regular file")
        if info.st_size > MAX_MODEL_ARTIFACT_BYTES:
            raise TrialDataError(f"artifact {_quoted(path)} is larger than {MAX_MODEL_ARTIFACT_BYTES} bytes")
        with os.fdopen(os.dup(fd), "rb") as handle:
            content = handle.read(MAX_MODEL_ARTIFACT_BYTES + 1)
    except OSError as exc:
        raise TrialDataError(f"artifact {_quoted(path)} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(content) > MAX_MODEL_ARTIFACT_BYTES:
        raise TrialDataError(f"artifact {_quoted(path)} is larger than {MAX_MODEL_ARTIFACT_BYTES} bytes")
    return content


def load_verified_artifact(*, model_dir: str | Path | None, path: str | Path, sha256: str) -> bytes:
    """Read a file of the model directory only if its SHA-256 digest matches ``sha256``.

    Parameters
    ----------
    model_dir
        The configured model directory; ``None`` refuses every artifact.
    path
        File to read: absolute, or relative to ``model_dir``. After every link is resolved it
        must be a regular file in ``model_dir`` or a subfolder, of at most
        `MAX_MODEL_ARTIFACT_BYTES`.
    sha256
        Expected digest, 64 hexadecimal characters (case-insensitive).

    Returns
    -------
    bytes
        The file's content.

    Raises
    ------
    TrialDataError
        If the digest is malformed, the path is outside the directory, the file is missing,
        unreadable, not a regular file or too large, or its digest differs. No message names
        a digest: the file's would tell the trial's author what any file on the worker holds.
    ConfigurationError
        If the model directory does not exist.
    """
    if not isinstance(sha256, str) or not _SHA256_PATTERN.fullmatch(sha256):
        raise TrialDataError("artifact_sha256 must be 64 hexadecimal characters")
    content = _read_confined(_model_root(model_dir), path)
    if not hmac.compare_digest(hashlib.sha256(content).hexdigest(), sha256.lower()):
        raise TrialDataError(
            f"artifact {_quoted(path)} does not match the trial's artifact_sha256: "
            "the file was altered or the trial names the wrong file"
        )
    return content


class LinearModelArtifact(BaseModel):
    """Content of a ``linear_model`` artifact (JSON object or .npz with these keys).

    Attributes
    ----------
    horizons
        Momentum horizons in bars, one feature each.
    weights
        One weight per horizon.
    bias
        Constant added to the score.
    vol_lookback
        Bars of per-bar log returns in the volatility that normalises the features.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    horizons: tuple[int, ...] = Field(min_length=1)
    weights: tuple[float, ...] = Field(min_length=1)
    bias: float
    vol_lookback: int = Field(ge=2, le=MAX_INDICATOR_LOOKBACK_BARS)

    @model_validator(mode="after")
    def _consistent(self) -> LinearModelArtifact:
        if len(self.horizons) != len(self.weights):
            raise ValueError(f"{len(self.horizons)} horizons but {len(self.weights)} weights")
        bad = [h for h in self.horizons if not 1 <= h <= MAX_INDICATOR_LOOKBACK_BARS]
        if bad:
            # Counted, not listed: the values are the file's content.
            raise ValueError(f"{len(bad)} horizon(s) outside [1, {MAX_INDICATOR_LOOKBACK_BARS}] bars")
        return self


class LinearModelParams(StrategyParams):
    """Params of :class:`LinearModelStrategy`: where the weights are and their digest.

    Attributes
    ----------
    artifact_path
        Path of a ``.json`` or ``.npz`` file holding a :class:`LinearModelArtifact`, in the
        configured model directory or a subfolder: absolute, or relative to the directory.
    artifact_sha256
        SHA-256 of that file; the file is not used if it differs.
    """

    artifact_path: str = Field(min_length=1)
    artifact_sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


def _parse_linear_artifact(path: str, content: bytes) -> LinearModelArtifact:
    # Every message says what is wrong, never what the file holds, and no parser error is
    # chained: Dagster records a failure's causes with the run, and they quote the input.
    suffix = Path(path).suffix.lower()
    invalid = f"artifact {_quoted(path)} is not a valid linear model"
    if suffix == ".json":
        try:
            raw: Any = json.loads(content)
        except json.JSONDecodeError as exc:
            raise TrialDataError(f"{invalid}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
        except UnicodeDecodeError:
            raise TrialDataError(f"{invalid}: not UTF-8 text") from None
    elif suffix == ".npz":
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as archive:
                raw = {key: archive[key].tolist() for key in archive.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            # np.load's refusal of pickled arrays is a ValueError.
            raise TrialDataError(
                f"{invalid}: not an .npz archive of plain arrays ({type(exc).__name__})"
            ) from None
    else:
        raise TrialDataError(f"artifact {_quoted(path)}: unsupported suffix {suffix!r}; use .json or .npz")
    try:
        return LinearModelArtifact.model_validate(raw)
    except ValidationError as exc:
        problems = validation_problems(exc, name_unknown_keys=False)
        raise TrialDataError(f"{invalid}: {problems}") from None


class LinearModelStrategy:
    """Linear score of volatility-normalised momentum features, weights from a verified artifact.

    Feature ``k`` on bar ``t`` is ``(log close[t] - log close[t - h_k]) / (vol[t] * sqrt(h_k))``
    (a z-score of the ``h_k``-bar move); the position is ``tanh(bias + weights . features)``.
    A bar with zero realised volatility has zero features. Flat until every window is full.
    """

    name: ClassVar[str] = "linear_model"
    params_model: ClassVar[type[BaseModel]] = LinearModelParams

    def __init__(self, model_dir: str | Path | None = None) -> None:
        #: The only directory artifacts are read from; None (the default) refuses them all.
        self.model_dir = model_dir

    def positions(self, *, close: np.ndarray, params: BaseModel) -> np.ndarray:
        """Target positions in ``(-1, 1)`` for ``close`` of shape ``(..., n_bars)``.

        Parameters
        ----------
        close
            Close prices (price units, > 0), shape ``(..., n_bars)``.
        params
            A validated :class:`LinearModelParams`; the artifact is verified on every call.

        Returns
        -------
        numpy.ndarray
            Float64 positions (fraction of equity), same shape as ``close``.
        """
        p = _checked_params(self, params)
        content = load_verified_artifact(model_dir=self.model_dir, path=p.artifact_path, sha256=p.artifact_sha256)
        model = _parse_linear_artifact(p.artifact_path, content)
        log_close = np.log(_validated_close(close))
        vol = _realised_vol(_log_returns(log_close), model.vol_lookback)
        score = np.full_like(log_close, model.bias)
        for horizon, weight in zip(model.horizons, model.weights, strict=True):
            move = np.zeros_like(log_close)
            if log_close.shape[-1] > horizon:
                np.subtract(log_close[..., horizon:], log_close[..., :-horizon], out=move[..., horizon:])
            feature = np.zeros_like(log_close)
            np.divide(move, vol * np.sqrt(horizon), out=feature, where=vol > 0)
            score += weight * feature
        positions = np.tanh(score)
        positions[..., _warmup_mask(log_close.shape[-1], max(*model.horizons, model.vol_lookback))] = 0.0
        return positions

    def search_space(self) -> dict[str, SearchDimension]:
        """Empty: the weights come from a fitted artifact, not from sampling."""
        return {}


def _check_protocol(candidate: object, origin: str, error: type[PipelineError]) -> Strategy:
    missing = [
        attribute
        for attribute in ("name", "params_model", "positions", "search_space")
        if not hasattr(candidate, attribute)
    ]
    if missing:
        raise error(f"{origin} is not a strategy: it lacks {', '.join(missing)}")
    name = getattr(candidate, "name")
    if not isinstance(name, str) or not name:
        raise error(f"{origin} is not a strategy: its name must be a non-empty string, got {name!r}")
    params_model = getattr(candidate, "params_model")
    if not (isinstance(params_model, type) and issubclass(params_model, BaseModel)):
        raise error(f"{origin} is not a strategy: params_model must be a pydantic model class")
    if not (callable(getattr(candidate, "positions")) and callable(getattr(candidate, "search_space"))):
        raise error(f"{origin} is not a strategy: positions and search_space must be callable")
    return cast(Strategy, candidate)


def load_strategy_from_import_path(*, import_path: str) -> Strategy:
    """Import ``"package.module:object"`` and check it has the :class:`Strategy` protocol.

    A class is instantiated without arguments; any other object is used as is. The
    strategy is in no registry: add it with :meth:`StrategyRegistry.with_strategies`.

    Parameters
    ----------
    import_path
        ``"package.module:attribute"``; the attribute may be dotted (``"mod:Cls.inner"``).

    Raises
    ------
    TrialDataError
        Naming the path, if it is malformed, fails to import, or lacks the protocol.
    """
    module_name, colon, attribute = import_path.partition(":") if isinstance(import_path, str) else ("", "", "")
    if not colon or not module_name or not attribute:
        raise TrialDataError(f"strategy import path {import_path!r} must look like 'package.module:object'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
        if isinstance(target, type):
            target = target()
    except Exception as exc:  # noqa: BLE001 - plug-in code may raise anything on import; report it with the path
        raise TrialDataError(
            f"strategy import path {import_path!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return _check_protocol(target, f"strategy import path {import_path!r}", TrialDataError)


class StrategyRegistry:
    """The strategies a trial may name, by name: an immutable value, passed to what evaluates trials.

    Built from the built-ins (`BUILT_IN_STRATEGIES`) and the configuration's plug-ins
    (`resources.strategy_plugins.StrategyPluginsResource.registry`); adding one gives a new
    registry, so what a process evaluates with is always the value it was handed.
    """

    def __init__(self, strategies: Iterable[Strategy] = ()) -> None:
        by_name: dict[str, Strategy] = {}
        for strategy in strategies:
            checked = _check_protocol(strategy, f"object {strategy!r}", ConfigurationError)
            if checked.name in by_name and by_name[checked.name] is not checked:
                raise ConfigurationError(f"strategy name {checked.name!r} is given twice; choose another name")
            by_name[checked.name] = checked
        self._by_name: Mapping[str, Strategy] = MappingProxyType(by_name)

    def __repr__(self) -> str:
        return f"StrategyRegistry({', '.join(self.names())})"

    def names(self) -> tuple[str, ...]:
        """Names of the strategies, sorted."""
        return tuple(sorted(self._by_name))

    def with_strategies(self, *strategies: Strategy, replace: bool = False) -> StrategyRegistry:
        """This registry and ``strategies``.

        Parameters
        ----------
        strategies
            Objects with the :class:`Strategy` protocol.
        replace
            Let a strategy replace one of the same name (the built-in ``linear_model`` with the
            configured model directory); otherwise a name already taken is an error.

        Raises
        ------
        ConfigurationError
            If an object lacks the protocol, or a name is taken and ``replace`` is false.
        """
        checked = [_check_protocol(s, f"object {s!r}", ConfigurationError) for s in strategies]
        if not replace:
            for strategy in checked:
                if strategy.name in self._by_name and self._by_name[strategy.name] is not strategy:
                    raise ConfigurationError(
                        f"strategy name {strategy.name!r} is already taken; choose another name"
                    )
        replaced = {strategy.name for strategy in checked}
        return StrategyRegistry([*(s for name, s in self._by_name.items() if name not in replaced), *checked])

    def get(self, *, name: str) -> Strategy:
        """The strategy called ``name``.

        Raises
        ------
        TrialDataError
            If no strategy has that name; the message lists the known names.
        """
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise TrialDataError(f"unknown strategy {name!r}; known strategies: {', '.join(self.names())}") from None

    def build(self, *, name: str, params: Mapping[str, Any]) -> tuple[Strategy, BaseModel]:
        """Look up a strategy and validate a trial's params for it.

        Parameters
        ----------
        name
            The strategy's name (the trial's ``strategy`` user attribute).
        params
            The trial's params (JSON scalars).

        Returns
        -------
        tuple
            ``(strategy, validated params model)``.

        Raises
        ------
        TrialDataError
            Unknown strategy (listing the known ones) or params that do not validate
            (pydantic's messages per field: wrong type, out of range, unknown or missing key;
            never the values, which may name files and digests).
        """
        strategy = self.get(name=name)
        if not isinstance(params, Mapping):
            raise TrialDataError(f"params for strategy {name!r} must be a mapping, got {type(params).__name__}")
        try:
            model = strategy.params_model.model_validate(dict(params))
        except ValidationError as exc:
            # Not chained: the ValidationError would carry the values into the run's error record.
            raise TrialDataError(f"params for strategy {name!r} are invalid: {validation_problems(exc)}") from None
        return strategy, model


#: The strategies Gauntlet ships; ``linear_model`` reads no artifact until a registry built from
#: the configuration gives it a model directory.
BUILT_IN_STRATEGIES = StrategyRegistry([MomentumStrategy(), MeanReversionStrategy(), LinearModelStrategy()])
