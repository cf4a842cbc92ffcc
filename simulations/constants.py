"""Named constants shared by every simulation module. Change them here and only here."""

from __future__ import annotations

#: Basis point as a fraction.
BPS = 1e-4

#: Seconds in a calendar day.
SECONDS_PER_DAY = 86_400

#: Calendar days in a year, used to annualise from bar durations.
DAYS_PER_YEAR = 365.25

#: Bar length of the synthetic market in seconds (hourly bars, traded around the clock).
SYNTHETIC_BAR_SECONDS = 3_600

#: Synthetic bars per calendar day.
SYNTHETIC_BARS_PER_DAY = SECONDS_PER_DAY // SYNTHETIC_BAR_SECONDS

#: Bars per year of the synthetic market (for annualising Sharpe and volatility).
SYNTHETIC_PERIODS_PER_YEAR = SYNTHETIC_BARS_PER_DAY * DAYS_PER_YEAR

#: Seed of the default synthetic market; every trial of every study sees the same data.
DEFAULT_MARKET_SEED = 20_260_101

# --- CGE model (simulations/cge) -------------------------------------------------------

#: Largest accepted SAM imbalance |row sum - column sum| per account, relative to
#: max(row sum, column sum, 1): SAMs read from CSV balance up to float rounding only.
SAM_BALANCE_TOLERANCE = 1e-9

#: Default Armington elasticity of substitution between imports and domestic goods
#: (Hosoe, Gasawa & Hashimoto 2010, ch. 6).
CGE_ARMINGTON_ELASTICITY = 2.0

#: Default CET elasticity of transformation between exports and domestic supply (same source).
CGE_TRANSFORMATION_ELASTICITY = 2.0

#: Solver acceptance: largest reduced-system residual (log units, i.e. relative) of a solution.
CGE_SOLVER_TOLERANCE = 1e-10

#: Largest relative residual of any textbook equation at an accepted equilibrium.
CGE_RESIDUAL_TOLERANCE = 1e-9

#: Largest relative residual of the equation dropped by Walras' law (balance of payments).
CGE_WALRAS_TOLERANCE = 1e-8

#: Residual evaluations the solver may spend on one equilibrium before giving up.
CGE_SOLVER_MAX_EVALUATIONS = 2_000

# --- Market data, strategies, backtest, metrics, gates (simulations/market.py .. gates.py) ---

#: Longest indicator window a strategy param may ask for, in bars.
MAX_INDICATOR_LOOKBACK_BARS = 10_000

# --- CGE stress scenarios (simulations/cge/scenarios.py, simulations/stress.py) --------

#: Number of CGE scenarios every trial is stressed against.
N_CGE_SCENARIOS = 200

#: Seed of the scrambled Sobol draw of the scenario shocks.
CGE_SCENARIO_SEED = 20_100_601

#: Seed of the scenario price paths.
CGE_PATH_SEED = 20_100_602

#: Horizon of the historical changes that size the shocks, in quarters (year-on-year).
CGE_SHOCK_HORIZON_QUARTERS = 4

#: Gross investment over the capital stock (per year), turning investment growth into
#: capital-stock growth (US private fixed investment / net stock is about 0.1).
CGE_INVESTMENT_CAPITAL_RATIO = 0.10

#: Range of the import-tariff rate multiplier (0 = free trade, 2 = tariffs doubled).
CGE_TARIFF_MULTIPLIER_MIN = 0.0
CGE_TARIFF_MULTIPLIER_MAX = 2.0

#: Expected arithmetic return of the traded asset at the benchmark equilibrium, per year.
CGE_BASE_DRIFT = 0.05

#: Drift per unit log change of real GDP (per year): profits are a levered claim on output,
#: about three times as cyclical as GDP.
CGE_DRIFT_PER_OUTPUT = 3.0

#: Drift per unit log change of the real return to capital (per year).
CGE_DRIFT_PER_CAPITAL_RETURN = 1.0

#: Annualised diffusion volatility at the benchmark (zero shock); about the synthetic
#: market's long-run volatility (0.004 per hourly bar is 0.37 a year, 0.39 with its jumps).
CGE_BASE_VOLATILITY = 0.40

#: Relative volatility increase per unit of standardised shock size.
CGE_VOLATILITY_PER_SHOCK_SIZE = 0.5

#: Jumps per year at the benchmark.
CGE_BASE_JUMP_INTENSITY = 4.0

#: Relative jump-intensity increase per unit of standardised shock size.
CGE_JUMP_INTENSITY_PER_SHOCK_SIZE = 1.0

#: Mean and standard deviation of a jump's log size (jumps are crashes on average).
CGE_JUMP_LOG_MEAN = -0.03
CGE_JUMP_LOG_STD = 0.04

#: Mean block length of the stress paths' bootstrap of the instrument's history, in weeks
#: of bars: long enough that trends of a few weeks and short-horizon autocorrelation survive
#: inside a block, short enough that a year of history gives dozens of distinct blocks.
STRESS_BOOTSTRAP_MEAN_BLOCK_WEEKS = 2.0

#: Fewest history bars the stress paths resample (about two weeks of hourly bars).
STRESS_MIN_HISTORY_BARS = 250

#: A scenario is catastrophic when its total return is <= minus this loss (fraction).
STRESS_CATASTROPHIC_LOSS = 0.90

#: Tail probability of the expected shortfall of scenario returns.
STRESS_EXPECTED_SHORTFALL_LEVEL = 0.05

# --- Market data, strategies, backtest, metrics (continued) -------------------------------

#: Calendar days of the fixed train, backtest and forward windows, counted back from the
#: end of the data (train, then backtest, then forward, contiguous).
DEFAULT_TRAIN_DAYS = 365
DEFAULT_BACKTEST_DAYS = 180
DEFAULT_FORWARD_DAYS = 60

#: Days of synthetic data by default: exactly the three default windows.
DEFAULT_SYNTHETIC_DAYS = DEFAULT_TRAIN_DAYS + DEFAULT_BACKTEST_DAYS + DEFAULT_FORWARD_DAYS

#: First bar of the synthetic market (ISO-8601, UTC).
SYNTHETIC_START_ISO = "2024-01-01T00:00:00+00:00"

#: Price of the synthetic market's first open (price units).
SYNTHETIC_START_PRICE = 100.0

#: Long-run per-bar volatility of synthetic log returns (0.004 hourly is about 37 % a year).
SYNTHETIC_BAR_VOL = 0.004

#: AR(1) persistence per bar of synthetic log volatility (volatility clustering; half-life ~34 bars).
SYNTHETIC_VOL_PERSISTENCE = 0.98

#: Stationary standard deviation of synthetic log volatility.
SYNTHETIC_LOG_VOL_STD = 0.35

#: Degrees of freedom of the Student-t innovations (fat tails; rescaled to unit variance).
SYNTHETIC_NOISE_DOF = 5.0

#: Mean spell lengths in bars of the hidden regimes: trending, mean-reverting, random walk.
SYNTHETIC_TREND_SPELL_BARS = 360.0
SYNTHETIC_REVERTING_SPELL_BARS = 120.0
SYNTHETIC_RANDOM_SPELL_BARS = 120.0

#: Drift per bar of a trending spell in units of the current bar volatility. Calibrated
#: (24 seeds, default costs) so that momentum with a 240-bar lookback earns an
#: annualised Sharpe of about 1.0, while params drawn at random from the search
#: spaces average about 0 before costs and below 0 after.
SYNTHETIC_TREND_DRIFT_PER_VOL = 0.065

#: Half-life in bars of the deviation from the spell's anchor in a mean-reverting spell.
SYNTHETIC_REVERSION_HALF_LIFE_BARS = 48.0

#: Probability of a jump on a bar (about one a month on hourly bars) and the jump's log-size std.
SYNTHETIC_JUMP_PROBABILITY = 1.0 / 720.0
SYNTHETIC_JUMP_STD = 0.03

#: Scale of a bar's wicks beyond its open/close, as a fraction of the bar's volatility.
SYNTHETIC_WICK_VOL_FRACTION = 0.5

#: Volume of a bar at long-run volatility (units), and the log-normal noise of volume.
SYNTHETIC_BASE_VOLUME = 1_000.0
SYNTHETIC_VOLUME_LOG_STD = 0.3

#: A step between consecutive bars longer than this many bar intervals of the calendar's open
#: time (sessions, for daily bars) fails validation: weekends and holidays never count, so 4
#: lets through a provider's few missing bars but not a missing trading week or a day of hours.
DEFAULT_GAP_TOLERANCE_BARS = 4.0

#: Calendar codes besides exchange codes: crypto trades around the clock, spot FX on weekdays.
CALENDAR_24_7 = "24/7"
CALENDAR_24_5 = "24/5"
#: The calendar of a market whose configuration names none (the synthetic market trades 24/7).
DEFAULT_CALENDAR = CALENDAR_24_7
#: Spot FX rolls from one session to the next at 17:00 New York (DST included) ...
FX_ROLL_HOUR = 17
FX_ROLL_TIMEZONE = "America/New_York"
#: ... and does not trade on these (month, day) dates, whatever weekday they fall on.
FX_CLOSED_DATES = ((12, 25), (1, 1))

#: The trial user attribute in which a study declares the last bar it was tuned on (ISO-8601
#: timestamp); a trial whose declared end reaches the backtest window is stopped.
TRAIN_WINDOW_END_ATTR = "train_window_end"

#: Fewest bars a train, backtest or forward window may hold (a Sharpe ratio, a drawdown and a
#: paper session need more than a handful of returns).
MIN_BARS_PER_WINDOW = 30

#: Default trading costs per unit of traded notional, in basis points (same model everywhere).
DEFAULT_FEE_BPS = 2.0
DEFAULT_SLIPPAGE_BPS = 1.0

#: A return series counts as having zero variance when its std is at most this multiple of
#: |mean| (float rounding makes a constant series' std a few ulps, not exactly 0).
ZERO_STD_RELATIVE_TOLERANCE = 1e-9

#: Confidence of the minimum track record length (Bailey & Lopez de Prado 2012).
DEFAULT_TRACK_RECORD_CONFIDENCE = 0.95

#: The paper gate's sequential test (simulations/sequential.py): looks (market days) that only
#: estimate the returns' scale before any evidence counts, and the precision of its mixing
#: distribution. With these, at most 2.5 % of sessions at the floor are promoted at any look
#: for a 5 % level (tests/simulations/test_sequential.py), and a true annualised Sharpe ratio
#: of 2 on a market open every day is promoted in about a fifth of sessions within 250 market
#: days (`gauntlet calibrate --horizons-only --horizon-confidence 0.95`).
SEQUENTIAL_BURN_IN_LOOKS = 5
SEQUENTIAL_PRIOR_PRECISION = 10.0
#: Market days after which a paper session the sequential test has not decided is rejected by
#: default: about a year of an exchange's sessions, so no trial waits at gate 3 for ever.
SEQUENTIAL_MAX_DAYS = 250

#: Bars of market history before the backtest window that precede every stress path, so a
#: trial's indicators start warm on the scenarios as they do in its backtest (60 days hourly).
STRESS_WARMUP_BARS = 1_440

# --- Deployment (simulations/deployment.py, resources/registry.py) -----------------------

#: Trials live at once by default (slots of the deployment registry).
DEFAULT_LIVE_CAPACITY = 3

# --- Paper venue (simulations/paper.py, resources/paper_broker.py) -------------------------

#: Market seconds a `wall` paper clock releases per wall-clock second (1.0: real time).
DEFAULT_PAPER_CLOCK_SPEED = 1.0

# --- Gate calibration (simulations/calibration.py, simulations/calibration_train.py) -------

#: Seed of a calibration run: every simulated study's market and sampler seeds derive from it.
CALIBRATION_SEED = 20_260_301

#: Simulated studies per market by default (the null market and each planted Sharpe ratio).
CALIBRATION_STUDIES = 100

#: Optuna trials per simulated study by default. Rates are reported for each count; the
#: last is the study size the error-rate target refers to (20 ends the backtest gate's
#: early phase, 50 its mid phase).
CALIBRATION_TRIALS_PER_STUDY = (20, 50)

#: Planted annualised Sharpe ratios (after default costs) by default; the first is the
#: one the error-rate target refers to.
CALIBRATION_PLANTED_SHARPES = (2.0,)

#: Best trials of a simulated study (by in-sample objective) that go through the gates.
CALIBRATION_CANDIDATES_PER_STUDY = 5

#: The planted momentum parameterisation whose true Sharpe ratio a planted market states
#: (a long-lookback trend follower; the bench's and the demo's reference params).
CALIBRATION_PLANTED_LOOKBACK_BARS = 240
CALIBRATION_PLANTED_VOL_LOOKBACK_BARS = 168
CALIBRATION_PLANTED_TARGET_BAR_VOL = 0.003

#: Years of hourly bars in the long sample on which the planted drift is solved for its
#: Sharpe ratio (the batch-means standard error of that Sharpe ratio is reported).
CALIBRATION_EDGE_SAMPLE_YEARS = 100

#: Seed of that long sample (independent of every study's market).
CALIBRATION_EDGE_SEED = 20_260_302

#: Blocks of the long sample for the batch-means standard error of the planted Sharpe ratio.
CALIBRATION_EDGE_BLOCKS = 20

#: Error-rate target of the gate chain, per study: at most 1 % of null studies promote a
#: trial, at most 5 % of planted-edge studies promote none.
CALIBRATION_MAX_FALSE_POSITIVE_RATE = 0.01
CALIBRATION_MAX_FALSE_NEGATIVE_RATE = 0.05

#: Confidence of the reported error-rate intervals (Clopper-Pearson).
CALIBRATION_CONFIDENCE = 0.95

#: The forward paper-trading horizon curve (simulations.calibration.horizon_curve): the
#: market days of trading after which it reads whether a session has been promoted, the
#: planted annualised Sharpe ratio whose false negatives it counts (the target's), the
#: confidence of the sequential test it runs (1 - the target false-positive rate: a strategy
#: at the floor is promoted in at most 1 % of sessions, at any look), and the simulated sessions per
#: arm (about a second; a false-positive rate near 0.2 % then has an interval under half a
#: point wide).
HORIZON_DAYS = (7, 30, 60, 120, 250)
HORIZON_PLANTED_SHARPE = CALIBRATION_PLANTED_SHARPES[0]
HORIZON_CONFIDENCE = 1.0 - CALIBRATION_MAX_FALSE_POSITIVE_RATE
HORIZON_SESSIONS = 2_000

#: Threshold grid of the recommendation sweep: a backtest Sharpe floor in every phase
#: (annualised), the paper grading's Sharpe floor (annualised), win-rate floor (0 drops
#: the check: trend followers win a quarter to a third of their trades whatever their
#: edge), drawdown cap (a 60-day session of a 30 %-volatility strategy often falls more
#: than 10 % whatever its edge) and the paper grades that pass. Each list also holds
#: DESIGN.md's value and the calibrated default, so a sweep around either policy tries both.
CALIBRATION_BACKTEST_SHARPE_FLOORS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
CALIBRATION_PAPER_SHARPE_FLOORS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0)
CALIBRATION_PAPER_WIN_RATE_FLOORS = (0.0,)
CALIBRATION_PAPER_DRAWDOWN_CAPS = (0.10, 0.25)
CALIBRATION_REQUIRED_GRADE_SETS = (("A",), ("A", "B"))

# --- Look-ahead check (simulations/causality.py) --------------------------------------------

#: Cut points per check, one drawn in each of this many equal strata of the evaluated window:
#: every part of the window is probed, and the check stays a few per cent of a trial's
#: evaluation (``make bench``: look_ahead_check_share_of_trial_evaluation).
CAUSALITY_CUTS = 8

#: Seed of the cut points and of the perturbation of the bars after each cut: the same trial
#: on the same data is checked at the same bars every time it is evaluated.
CAUSALITY_SEED = 20_260_401

#: Range of the seeded factor each log return after a cut is scaled by, its sign flipped:
#: every later bar moves (a rule that peeks at the sign of a later move sees it reversed,
#: one that peeks at its size sees it changed) while prices stay positive and on the data's scale.
CAUSALITY_PERTURBATION_SCALE = (0.5, 1.5)

# --- Market names (the configuration and `resources.market_data`) ---------------------------

#: The instrument of every study no pattern routes elsewhere: the configuration's ``market``.
DEFAULT_INSTRUMENT = "default"
#: Instrument names are partition keys of the shared assets: short, and safe in a UI backfill.
INSTRUMENT_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
#: A table name, optionally schema-qualified: identifiers only, so it is never SQL text.
TABLE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"
