"""Plug-in strategies for the look-ahead tests: one that peeks at the next bar, and causal ones.

Importable as ``tests.simulations.look_ahead_strategies:PeekingStrategy`` by the pipeline tests.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.signal import lfilter


class HorizonParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    horizon: int = Field(default=1, ge=1, le=500)


class PeekingStrategy:
    """Long when the close ``horizon`` bars later is higher: the position on bar t uses bar t + horizon.

    The last ``horizon`` bars, which have nothing to peek at, compare with the last close.
    """

    name = "peeking"
    params_model = HorizonParams

    def positions(self, *, close, params):
        close = np.asarray(close, dtype=float)
        h = params.horizon
        later = np.concatenate([close[..., h:], np.repeat(close[..., -1:], min(h, close.shape[-1]), axis=-1)], axis=-1)
        return np.sign(later[..., : close.shape[-1]] - close)

    def search_space(self):
        return {"horizon": ("int", 1, 5, False)}


class WindowParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    window: int = Field(ge=2, le=5000)


class WholeSeriesZScore:
    """Short above the mean of the whole series, long below it: every bar uses every later bar."""

    name = "whole_series_zscore"
    params_model = WindowParams

    def positions(self, *, close, params):
        close = np.asarray(close, dtype=float)
        return -np.sign(close - close.mean(axis=-1, keepdims=True))

    def search_space(self):
        return {"window": ("int", 2, 100, False)}


class TrailingMeanCross:
    """Long above the trailing mean of ``window`` closes, short below it (causal, cumulative sums)."""

    name = "trailing_mean_cross"
    params_model = WindowParams

    def positions(self, *, close, params):
        close = np.asarray(close, dtype=float)
        w = params.window
        total = np.cumsum(close, axis=-1)
        total[..., w:] = total[..., w:] - total[..., :-w]
        signal = np.sign(close - total / w)
        signal[..., : w - 1] = 0.0
        return signal

    def search_space(self):
        return {"window": ("int", 2, 100, False)}


class ExponentialTrend:
    """Position proportional to the log price's distance from its exponential moving average (causal, a recursive filter)."""

    name = "exponential_trend"
    params_model = WindowParams

    def positions(self, *, close, params):
        x = np.log(np.asarray(close, dtype=float))
        alpha = 2.0 / (params.window + 1.0)
        ema = lfilter([alpha], [1.0, alpha - 1.0], x - x[..., :1], axis=-1) + x[..., :1]
        return np.clip((x - ema) * 50.0, -1.0, 1.0)

    def search_space(self):
        return {"window": ("int", 2, 100, False)}


class DrawdownBreaker:
    """Long while the price is within ``window`` basis points of its running high, else flat (causal)."""

    name = "drawdown_breaker"
    params_model = WindowParams

    def positions(self, *, close, params):
        close = np.asarray(close, dtype=float)
        high = np.maximum.accumulate(close, axis=-1)
        return (close >= high * (1.0 - params.window * 1e-4)).astype(float)

    def search_space(self):
        return {"window": ("int", 2, 100, False)}


CAUSAL = (TrailingMeanCross(), ExponentialTrend(), DrawdownBreaker())
