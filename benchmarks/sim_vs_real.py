"""How close is the simulator to real people? The same plain measurement of both, in numbers.

    .venv/bin/python benchmarks/sim_vs_real.py [--dataset DIR] [--seed S]

Real: the two subjects of ../shared/datasets (uci_pt_s1, uci_pt_s2), right thigh unit u3
(Xsens MTx, 25 Hz), test.txt of e1 (seated straight-leg raise), e3 (supine straight-leg
raise), e4 (side-lying abduction) and e5 (prone extension): 30 executions each, in three
blocks of 10 (with a 5 s hold, too fast, low amplitude).
Simulated: the "people" scenarios of the development suite (simulators/scenarios/
*-people-*.toml, exercises done in reps), and for reference the suite's clean sessions of
the same exercises.

Everything goes through one plain measurement, independent of the motion core:

- at rest: the gyro's bias (median over the quietest 2 s windows) and noise (their
  standard deviation per axis);
- movement: the bias-corrected gyro's speed over 5 deg/s (0.2 s mean); a quiet stretch of
  12 s or more separates blocks (sets);
- reps: within a block, the tilt of the accelerometer (0.2 s mean) along its main
  direction of change, less its running minimum (+-8 s), above half its 95th percentile;
  a rep runs from where the speed rises above 2.5 deg/s to where it falls below again;
- per rep: range as the accelerometer's tilt from its direction just before the rep, and
  as the angle the bias-corrected gyro turns through (integrated); peak speed from the
  gyro and, independently, the turning rate of the accelerometer's direction; the hold is
  the longest stretch near the top (over half the range) slower than a fifth of the peak,
  and its sag the tilt lost from its first 0.4 s to its last;
- rests: their length, the tilt's peak-to-peak within rests of 1.5 s or more (sway), and
  how far the resting level moves between reps and within a block (drift).

Subject 2's thigh gyroscope disagrees with its own accelerometer: it turns through 50-95
deg where the accelerometer tilts by 15-25 deg, and peaks at 100-200 deg/s where the
accelerometer's direction turns at 55-95 deg/s. A fixed rotation between the two sensors'
frames explains part of it (the misfit of the gravity rate it predicts drops by half), not
all. The table gives both figures; the tilt ones are the direct measure of the thigh's
static angle.

Part 3 is the earlier one-session check: ten side-lying abduction reps at the library's
dosage with an MTx-class sensor against subject 1's first block.
"""

import argparse
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from _common import DATASET_DIR, load_dataset_file
from hipsense.exercises import ExerciseKind, load_library
from hipsense_sim import ImuSpec, ScenarioSpec, SetSpec, load_suite, simulate

F64 = NDArray[np.float64]
RATE_HZ = 25.0
EXERCISES = ("e1", "e3", "e4", "e5")
SUBJECTS = ("uci_pt_s1", "uci_pt_s2")

QUIET_WINDOW_S = 2.0
MOVE_DPS = 5.0
"""Moving: the bias-corrected gyro over this (0.2 s mean); well above rest noise."""
ONSET_DPS = 2.5
"""A rep starts and ends where the speed crosses this."""
IDLE_S = 12.0
"""A quiet stretch this long separates blocks: longer than any hold of a rep exercise."""
BASELINE_S = 8.0
"""Half width of the running minimum under the tilt: reaches the rest on both sides of a
rep with a 10 s hold."""
HOLD_MIN_S = 1.0
SAG_EDGE_S = 0.4
SWAY_MIN_S = 1.5


def _mean_filter(x: F64, k: float) -> F64:
    """Centred moving mean over `k` samples (edges padded with the end values)."""
    n = max(1, round(k))
    kernel = np.ones(n) / n
    pad = np.pad(x, ((n // 2, n - 1 - n // 2), (0, 0)), mode="edge")
    return np.stack([np.convolve(pad[:, i], kernel, mode="valid") for i in range(x.shape[1])], 1)


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    e = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(e[::2].tolist(), e[1::2].tolist(), strict=True))


def _merge(runs: list[tuple[int, int]], gap: float, shortest: float) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in runs:
        if out and s - out[-1][1] < gap:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return [(s, e) for s, e in out if e - s >= shortest]


def _angle_deg(a: F64, ref: F64) -> F64:
    c = (a @ ref) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(ref))
    return np.asarray(np.degrees(np.arccos(np.clip(c, -1, 1))), dtype=np.float64)


def _turned_deg(w_rad_s: F64, rate: float) -> F64:
    """Angle between the first sample's orientation and each later one, from the gyro."""
    v = 0.5 * (w_rad_s[1:] + w_rad_s[:-1]) / rate
    th = np.linalg.norm(v, axis=1)
    half = np.sin(th / 2) / np.maximum(th, 1e-15)
    steps = np.column_stack([np.cos(th / 2), v * half[:, None]]).tolist()
    out = [1.0]
    w0, x0, y0, z0 = 1.0, 0.0, 0.0, 0.0
    # Plain floats: a sequential product of small quaternions is fastest without numpy.
    for dw, dx, dy, dz in steps:
        w0, x0, y0, z0 = (
            w0 * dw - x0 * dx - y0 * dy - z0 * dz,
            w0 * dx + x0 * dw + y0 * dz - z0 * dy,
            w0 * dy - x0 * dz + y0 * dw + z0 * dx,
            w0 * dz + x0 * dy - y0 * dx + z0 * dw,
        )
        out.append(min(1.0, abs(w0)))
    return np.asarray(2 * np.degrees(np.arccos(out)), dtype=np.float64)


@dataclass
class Rep:
    block: int
    start_s: float
    end_s: float
    peak_dps: float
    """Peak of the bias-corrected gyro's norm."""
    tilt_rate_dps: float
    """Peak turning rate of the accelerometer's direction (0.2 s mean)."""
    range_tilt_deg: float
    range_gyro_deg: float
    hold_s: float
    sag_deg: float
    base_deg: float
    """The resting level before the rep: tilt from where its block began."""


@dataclass
class Stream:
    start_s: float
    """Still before the first movement."""
    bias_dps: F64
    rest_std_dps: float
    reps: list[Rep] = field(default_factory=list)
    block_rests_s: list[float] = field(default_factory=list)
    rest_sway_deg: list[float] = field(default_factory=list)

    def blocks(self) -> list[list[Rep]]:
        out: dict[int, list[Rep]] = {}
        for r in self.reps:
            out.setdefault(r.block, []).append(r)
        return list(out.values())


def measure_stream(acc: F64, gyr_rad_s: F64, rate: float) -> Stream:
    """The plain measurement of one raw recording (see the module's docstring)."""
    gd = np.degrees(gyr_rad_s)
    n = len(gd)
    k = max(2, round(QUIET_WINDOW_S * rate))
    win = gd[: n // k * k].reshape(-1, k, 3)
    sd = np.linalg.norm(win.std(axis=1), axis=1)
    # The quietest window and those close to it: rest, wherever it is in the stream.
    floor = float(sd.min())
    quiet = sd <= max(1.5 * floor, floor + 0.5)
    bias = np.median(win[quiet].reshape(-1, 3), axis=0)
    rest_std = float(win[quiet].std(axis=1).mean())
    speed_raw = np.linalg.norm(gd - bias, axis=1)
    speed = np.linalg.norm(_mean_filter(gd - bias, 0.2 * rate), axis=1)
    a = _mean_filter(acc, 0.2 * rate)
    u_all = a / np.linalg.norm(a, axis=1, keepdims=True)
    tilt_rate = np.degrees(np.linalg.norm(np.gradient(u_all, axis=0), axis=1)) * rate
    bursts = _merge(_runs(speed > MOVE_DPS), 0.4 * rate, 0.15 * rate)
    if not bursts:
        return Stream(n / rate, bias, rest_std)

    def onset(i: int, stop: int) -> int:
        while i > stop and speed[i - 1] > ONSET_DPS:
            i -= 1
        return i

    def offset(i: int, stop: int) -> int:
        start = i
        while i < stop and speed[i] > ONSET_DPS:
            i += 1
        if i == stop and stop < n:
            # Reps that run into each other: part where the thigh is slowest between them.
            i = start + int(np.argmin(speed[start:stop]))
        return i

    groups = [[bursts[0]]]
    for b in bursts[1:]:
        if b[0] - groups[-1][-1][1] >= IDLE_S * rate:
            groups.append([b])
        else:
            groups[-1].append(b)
    st = Stream(onset(bursts[0][0], 0) / rate, bias, rest_std)
    last = 0
    for bi, group in enumerate(groups):
        b0 = onset(group[0][0], last)
        b1 = min(n, group[-1][1] + round(0.5 * rate))
        ref = np.median(a[max(0, b0 - round(rate)) : max(b0, 1)], axis=0)
        # The block's tilt along its main direction of change, signed so that reps go up.
        d = u_all[b0:b1] - ref / np.linalg.norm(ref)
        main = np.linalg.svd(d, full_matrices=False)[2][0]
        th = np.degrees(np.arcsin(np.clip(d @ main, -1, 1)))
        head = th[: round(1.5 * rate)]
        if head.max() < -head.min():
            th = -th
        w = round(BASELINE_S * rate)
        rel = th - sliding_window_view(np.pad(th, w, mode="edge"), 2 * w + 1).min(axis=1)
        cores = _merge(_runs(rel > 0.5 * np.percentile(rel, 95)), 0.3 * rate, 0.25 * rate)
        block: list[Rep] = []
        for ci, (cs, ce) in enumerate(cores):
            nxt = b0 + cores[ci + 1][0] if ci + 1 < len(cores) else n
            s, e = onset(b0 + cs, last), offset(b0 + ce, nxt)
            before = np.median(a[max(0, s - round(0.3 * rate)) : s + 1], axis=0)
            tilt = _angle_deg(a[s:e], before)
            rng = float(tilt.max())
            peak = float(speed_raw[s:e].max())
            near_top = (speed[s:e] < max(ONSET_DPS, 0.2 * peak)) & (tilt > 0.5 * rng)
            h0, h1 = max(_runs(near_top), key=lambda r: r[1] - r[0], default=(0, 0))
            sag = 0.0
            if h1 - h0 >= HOLD_MIN_S * rate:
                edge = round(SAG_EDGE_S * rate)
                sag = float(tilt[h0 : h0 + edge].mean() - tilt[h1 - edge : h1].mean())
            block.append(
                Rep(
                    block=bi,
                    start_s=s / rate,
                    end_s=e / rate,
                    peak_dps=peak,
                    tilt_rate_dps=float(tilt_rate[s:e].max()),
                    range_tilt_deg=rng,
                    range_gyro_deg=float(_turned_deg(np.radians(gd[s:e] - bias), rate).max()),
                    hold_s=(h1 - h0) / rate,
                    sag_deg=sag,
                    base_deg=float(_angle_deg(before, ref)),
                )
            )
            last = e
        if block:
            # A twitch within a block is not a rep: a third of the block's typical range.
            typical = float(np.median([r.range_tilt_deg for r in block]))
            st.reps += [r for r in block if r.range_tilt_deg >= 0.3 * typical]
        if bi + 1 < len(groups):
            st.block_rests_s.append((onset(groups[bi + 1][0][0], last) - last) / rate)
    spans = [(0.0, st.reps[0].start_s)] if st.reps else []
    spans += [(r.end_s, q.start_s) for r, q in zip(st.reps, st.reps[1:], strict=False)]
    for t0, t1 in spans:
        if t1 - t0 >= SWAY_MIN_S:
            core = a[round(t0 * rate) + round(0.25 * rate) : round(t1 * rate) - round(0.25 * rate)]
            smooth = _mean_filter(core, 0.5 * rate)
            st.rest_sway_deg.append(float(np.ptp(_angle_deg(smooth, np.median(core, axis=0)))))
    return st


# -- gyro against accelerometer ---------------------------------------------------------


@dataclass
class GravityRate:
    """Sums over moving samples that give the gyro's misfit for any frame rotation R.

    The accelerometer's unit direction u turns as du/dt = u x (R w) if the gyro's frame
    is R away from it. With |u| = 1, |du - u x Rw|^2 = |du|^2 - 2 c.(Rw) + |w|^2 - (u.Rw)^2
    where c = -(u x du): sums of |du|^2, |w|^2, w c^T and vec(u w^T) vec(u w^T)^T.
    """

    du2: float = 0.0
    w2: float = 0.0
    wc: F64 = field(default_factory=lambda: np.zeros((3, 3)))
    uw: F64 = field(default_factory=lambda: np.zeros((9, 9)))

    def add(self, acc: F64, gyr_rad_s: F64, bias_dps: F64, rate: float) -> None:
        a = _mean_filter(acc, 0.4 * rate)
        w = _mean_filter(gyr_rad_s, 0.4 * rate) - np.radians(bias_dps)
        u = a / np.linalg.norm(a, axis=1, keepdims=True)
        du = np.gradient(u, axis=0) * rate
        moving = np.linalg.norm(w, axis=1) > np.radians(MOVE_DPS)
        u, du, w = u[moving], du[moving], w[moving]
        c = -np.cross(u, du)
        self.du2 += float((du**2).sum())
        self.w2 += float((w**2).sum())
        self.wc += w.T @ c
        uw = (u[:, :, None] * w[:, None, :]).reshape(-1, 9)
        self.uw += uw.T @ uw

    def misfit(self, rot: F64) -> float:
        """Root of the summed squared misfit of du/dt, as a share of du/dt's."""
        r = rot.reshape(9)
        sq = self.du2 - 2 * float(np.trace(rot @ self.wc)) + self.w2 - float(r @ self.uw @ r)
        return float(np.sqrt(max(sq, 0.0) / self.du2))


def _rotation(q: F64) -> F64:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def best_frame_rotation(g: GravityRate) -> tuple[float, float]:
    """The fixed gyro-to-accelerometer rotation that fits best: (angle deg, misfit)."""
    rng = np.random.default_rng(0)
    # A random search over all rotations, then a shrinking local one.
    best = np.array([1.0, 0.0, 0.0, 0.0])
    best_fit = g.misfit(np.eye(3))
    for q in rng.normal(size=(20000, 4)):
        fit = g.misfit(_rotation(q))
        if fit < best_fit:
            best, best_fit = q / np.linalg.norm(q), fit
    step = 0.1
    for i in range(1500):
        q = best + rng.normal(0, step, 4)
        fit = g.misfit(_rotation(q))
        if fit < best_fit:
            best, best_fit = q / np.linalg.norm(q), fit
        if i % 500 == 499:
            step /= 3
    return float(2 * np.degrees(np.arccos(min(1.0, abs(best[0]))))), best_fit


# -- the population ----------------------------------------------------------------------


@dataclass
class Measured:
    label: str
    streams: list[Stream]
    low_set: list[bool]
    """Whether each stream has a low-amplitude block (the real ones all do)."""
    gravity_rate: GravityRate = field(default_factory=GravityRate)
    truth_errors: dict[str, list[float]] = field(default_factory=dict)


def measure_real(folder: Path) -> Measured:
    m = Measured(folder.name, [], [])
    for e in EXERCISES:
        rec = load_dataset_file(folder / "data" / e / "u3" / "test.txt")
        st = measure_stream(rec.acc_m_s2, rec.gyr_rad_s, RATE_HZ)
        m.streams.append(st)
        m.low_set.append(True)
        m.gravity_rate.add(rec.acc_m_s2, rec.gyr_rad_s, st.bias_dps, RATE_HZ)
    return m


def measure_simulated(label: str, specs: list[ScenarioSpec]) -> Measured:
    m = Measured(label, [], [], truth_errors={"range": [], "peak": [], "start": []})
    for full in specs:
        # The first side's sets: the real recordings have no side switch in them.
        spec = full.model_copy(
            update={"sets": [s for s in full.sets if s.side == full.sets[0].side]}
        )
        sim = simulate(spec)
        rec, rate = sim.recording, float(spec.imu.rate_hz)
        st = measure_stream(rec.acc_m_s2, rec.gyr_rad_s, rate)
        m.streams.append(st)
        m.low_set.append(any(s.rom_scale < 1 for s in spec.sets))
        m.gravity_rate.add(rec.acc_m_s2, rec.gyr_rad_s, st.bias_dps, rate)
        # How well the plain measurement reads the truth: the nearest true rep to each.
        truth = sim.truth["reps"]
        for r in st.reps:
            mid = (r.start_s + r.end_s) / 2
            t = min(truth, key=lambda x: abs((x["start_s"] + x["end_s"]) / 2 - mid))
            m.truth_errors["range"].append(r.range_tilt_deg - t["rom_deg"])
            m.truth_errors["peak"].append(r.peak_dps - t["peak_dps"])
        if truth:
            m.truth_errors["start"].append(st.start_s - truth[0]["start_s"])
    return m


def _pooled(m: Measured, what: str) -> list[float]:
    reps = [r for st in m.streams for r in st.reps]
    held = [r for r in reps if r.hold_s >= 2.0]
    match what:
        case "start":
            return [st.start_s for st in m.streams]
        case "bias":
            return [float(np.linalg.norm(st.bias_dps)) for st in m.streams]
        case "bias_axis":
            return [float(np.abs(st.bias_dps).max()) for st in m.streams]
        case "rest_std":
            return [st.rest_std_dps for st in m.streams]
        case "sway":
            return [v for st in m.streams for v in st.rest_sway_deg]
        case "drift_step":
            return [
                abs(q.base_deg - r.base_deg)
                for st in m.streams
                for b in st.blocks()
                for r, q in itertools.pairwise(b)
            ]
        case "drift_spread":
            return [
                float(np.ptp([r.base_deg for r in b]))
                for st in m.streams
                for b in st.blocks()
                if len(b) > 1
            ]
        case "rest_reps":
            return [
                q.start_s - r.end_s
                for st in m.streams
                for b in st.blocks()
                for r, q in itertools.pairwise(b)
            ]
        case "rest_blocks":
            return [v for st in m.streams for v in st.block_rests_s]
        case "duration":
            return [r.end_s - r.start_s for r in reps]
        case "peak":
            return [r.peak_dps for r in reps]
        case "tilt_rate":
            return [r.tilt_rate_dps for r in reps]
        case "range_tilt":
            return [r.range_tilt_deg for r in reps]
        case "range_gyro":
            return [r.range_gyro_deg for r in reps]
        case "gyro_over_tilt":
            return [r.range_gyro_deg / r.range_tilt_deg for r in reps if r.range_tilt_deg > 1]
        case "hold":
            return [r.hold_s for r in reps]
        case "sag":
            return [r.sag_deg for r in held]
        case "sag_share":
            return [r.sag_deg / r.range_tilt_deg for r in held]
        case "low_share":
            out = []
            for st, low in zip(m.streams, m.low_set, strict=True):
                meds = [np.median([r.range_tilt_deg for r in b]) for b in st.blocks()]
                if low and len(meds) > 1:
                    out.append(float(min(meds) / max(meds)))
            return out
        case "reps_per_block":
            return [float(len(b)) for st in m.streams for b in st.blocks()]
    raise ValueError(what)


ROWS = [
    ("start", "still before the first movement, s"),
    ("bias", "gyro bias at rest |b|, deg/s"),
    ("bias_axis", "gyro bias, largest axis, deg/s"),
    ("rest_std", "gyro noise at rest (sd/axis), deg/s"),
    ("sway", "rest sway, tilt peak-to-peak, deg"),
    ("drift_step", "rest level change rep to rep, deg"),
    ("drift_spread", "rest level spread in a block, deg"),
    ("rest_reps", "rest between reps, s"),
    ("rest_blocks", "rest between blocks (sets), s"),
    ("reps_per_block", "reps found per block"),
    ("duration", "rep duration, s"),
    ("peak", "peak speed, gyro, deg/s"),
    ("tilt_rate", "peak speed, accel tilt rate, deg/s"),
    ("range_tilt", "range per rep, accel tilt, deg"),
    ("range_gyro", "range per rep, gyro-integrated, deg"),
    ("gyro_over_tilt", "gyro range / tilt range"),
    ("hold", "hold near the top, s"),
    ("sag", "hold sag (holds >= 2 s), deg"),
    ("sag_share", "hold sag, share of the range"),
    ("low_share", "low block range / widest block's"),
]


def _cell(v: list[float]) -> str:
    if not v:
        return "-"
    p10, p50, p90 = np.percentile(v, [10, 50, 90])
    digits = 2 if abs(p90) < 10 else 0
    return f"{p50:.{digits}f} [{p10:.{digits}f}, {p90:.{digits}f}]"


def print_population(columns: list[Measured]) -> None:
    width = 22
    print("median [10th, 90th percentile] over reps, rests or recordings")
    print(f"{'':38}" + "".join(f"{c.label:>{width}}" for c in columns))
    for key, label in ROWS:
        print(f"{label:38}" + "".join(f"{_cell(_pooled(c, key)):>{width}}" for c in columns))
    fits = []
    for c in columns:
        angle, fit = best_frame_rotation(c.gravity_rate)
        fits.append((c.gravity_rate.misfit(np.eye(3)), angle, fit))
    print(
        f"{'gyro vs accel misfit, frames as given':38}"
        + "".join(f"{f[0]:>{width}.2f}" for f in fits)
    )
    print(
        f"{'  with the best fixed rotation':38}"
        + "".join(f"{f'{f[2]:.2f} ({f[1]:.0f} deg)':>{width}}" for f in fits)
    )


def print_real_detail(real: list[Measured]) -> None:
    print("per recording (real): blocks 1 with hold / 2 fast / 3 low amplitude, medians")
    head = (
        f"{'':14}{'start s':>8}{'|bias|':>7}{'reps':>9}{'peak gyro':>15}{'tilt rate':>13}"
        f"{'range tilt':>14}{'range gyro':>14}{'sag deg':>9}{'rest s':>8}"
    )
    print(head)
    for m in real:
        for e, st in zip(EXERCISES, m.streams, strict=True):
            blocks = st.blocks()

            def per_block(attr: str, blocks: list[list[Rep]] = blocks) -> str:
                return "/".join(f"{np.median([getattr(r, attr) for r in b]):.0f}" for b in blocks)

            held = [r.sag_deg for r in st.reps if r.hold_s >= 2.0]
            rests = [q.start_s - r.end_s for b in blocks for r, q in itertools.pairwise(b)]
            print(
                f"{m.label[-2:] + ' ' + e:14}{st.start_s:8.1f}{np.linalg.norm(st.bias_dps):7.2f}"
                f"{'/'.join(str(len(b)) for b in blocks):>9}{per_block('peak_dps'):>15}"
                f"{per_block('tilt_rate_dps'):>13}{per_block('range_tilt_deg'):>14}"
                f"{per_block('range_gyro_deg'):>14}{np.median(held) if held else 0:9.1f}"
                f"{np.median(rests):8.2f}"
            )


# -- part 3: one session, as before ------------------------------------------------------


def _lowpass(x: F64, seconds: float) -> F64:
    k = max(1, round(seconds * RATE_HZ))
    kernel = np.ones(k) / k
    return np.stack([np.convolve(x[:, i], kernel, mode="same") for i in range(x.shape[1])], 1)


def _rest_windows(gyr: F64, window_s: float = 2.0) -> F64:
    """Per-axis gyro std (deg/s) over each non-overlapping window."""
    k = round(window_s * RATE_HZ)
    m = gyr.shape[0] // k
    w = np.rad2deg(gyr[: m * k]).reshape(m, k, 3)
    return np.asarray(w.std(axis=1), dtype=np.float64)


def measure(acc: F64, gyr: F64, reps_wanted: int) -> dict[str, float]:
    """Rest noise, ROM, rep duration and hold from raw accelerometer and gyroscope."""
    stds = _rest_windows(gyr)
    quiet = stds[np.argsort(stds.mean(axis=1))[: max(3, len(stds) // 10)]]
    a = _lowpass(acc, 0.2)
    rest = np.median(a[: round(2 * RATE_HZ)], axis=0)
    cosang = (a @ rest) / (np.linalg.norm(a, axis=1) * np.linalg.norm(rest))
    tilt = np.rad2deg(np.arccos(np.clip(cosang, -1, 1)))
    # Half way between the resting and the held level, per recording.
    low, high = np.percentile(tilt, 10), np.percentile(tilt, 90)
    above = tilt > (low + high) / 2
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    reps = [(s, e) for s, e in zip(edges[::2], edges[1::2], strict=True) if e - s > RATE_HZ]
    reps = reps[:reps_wanted]
    rom = np.array([tilt[s:e].max() - low for s, e in reps])
    width = np.array([(e - s) / RATE_HZ for s, e in reps])
    cycle = np.diff([s for s, _ in reps]) / RATE_HZ
    hold = [np.count_nonzero(tilt[s:e] > tilt[s:e].max() - 5.0) / RATE_HZ for s, e in reps]
    peak_w = [np.rad2deg(np.linalg.norm(gyr[s:e], axis=1)).max() for s, e in reps]
    return {
        "reps found": float(len(reps)),
        "gyro std at rest, deg/s": float(quiet.mean()),
        "gyro bias at rest, deg/s": float(np.rad2deg(np.abs(np.median(gyr, axis=0))).mean()),
        "acc |a| at rest, m/s^2": float(np.linalg.norm(acc[: round(2 * RATE_HZ)], axis=1).mean()),
        "ROM mean, deg": float(rom.mean()),
        "ROM sd, deg": float(rom.std()),
        "rep width at half range, s": float(width.mean()),
        "rep width sd, s": float(width.std()),
        "rep cycle (start to start), s": float(np.median(cycle)),
        "time within 5 deg of peak, s": float(np.mean(hold)),
        "peak angular speed, deg/s": float(np.mean(peak_w)),
    }


def real(dataset: Path) -> tuple[F64, F64]:
    """The real side-lying recording's raw accelerometer and gyroscope."""
    rec = load_dataset_file(dataset / "data" / "e4" / "u3" / "test.txt")
    return rec.acc_m_s2, rec.gyr_rad_s


def simulated(seed: int) -> tuple[F64, F64]:
    """Ten simulated side-lying abduction reps at 25 Hz with an MTx-class sensor."""
    spec = ScenarioSpec(
        name="sim-vs-real",
        exercise="side-lying-hip-abduction",
        seed=seed,
        sets=[SetSpec(reps=10)],
        imu=ImuSpec(
            rate_hz=25,
            accel_range_g=8,
            gyro_range_dps=1000,
            gyro_noise_dps_sqrt_hz=0.05,
            accel_noise_ug_sqrt_hz=200.0,
            noise_bandwidth_hz=40.0,
            gyro_bias_dps=0.5,
        ),
    )
    rec = simulate(spec).recording
    return rec.acc_m_s2, rec.gyr_rad_s


def _trace(acc: F64, label: str, seconds: float = 40.0) -> str:
    a = _lowpass(acc, 0.2)
    rest = np.median(a[: round(2 * RATE_HZ)], axis=0)
    cosang = (a @ rest) / (np.linalg.norm(a, axis=1) * np.linalg.norm(rest))
    tilt = np.rad2deg(np.arccos(np.clip(cosang, -1, 1)))
    start = int(np.argmax(tilt > 10)) - round(2 * RATE_HZ)
    seg = tilt[max(0, start) : max(0, start) + round(seconds * RATE_HZ)]
    bars = " .:-=+*#%@"
    cols = seg[: len(seg) // 10 * 10].reshape(-1, 10).max(axis=1)
    line = "".join(bars[min(9, int(v / 60 * 9.99))] for v in cols)
    return f"{label:>5} |{line}|  (0.4 s per column, ' '=0 deg .. '@'>=60 deg)"


def print_one_session(dataset: Path, seed: int) -> None:
    r_acc, r_gyr = real(dataset)
    # The first block: up to the first long idle period after 10 executions.
    first_block = slice(0, round(0.36 * len(r_acc)))
    s_acc, s_gyr = simulated(seed)
    rows = [measure(r_acc[first_block], r_gyr[first_block], 10), measure(s_acc, s_gyr, 10)]
    print(f"{'side-lying abduction, 25 Hz':34} {'real (MTx)':>11} {'simulated':>11}")
    for key in rows[0]:
        print(f"{key:34} {rows[0][key]:11.3f} {rows[1][key]:11.3f}")
    print()
    print(_trace(r_acc, "real"))
    print(_trace(s_acc, "sim"))


def main() -> int:
    """Print the comparison tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=DATASET_DIR, help="subject 1's folder")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    folders = [args.dataset.parent / s for s in SUBJECTS]
    if not all((f / "data").is_dir() for f in folders):
        print(f"no datasets at {', '.join(str(f) for f in folders)}")
        return 1
    lib = load_library()
    reps_kind = {k for k, ex in lib.items() if ex.kind is ExerciseKind.REPS}
    suite = load_suite()
    people = [s for s in suite if "-people-" in s.name and s.exercise in reps_kind]
    people_ex = {s.exercise for s in people}
    clean = [s for s in suite if s.name in {f"{e}-clean" for e in people_ex}]
    real_cols = [measure_real(f) for f in folders]
    sim_people = measure_simulated(f"sim people ({len(people)})", people)
    sim_clean = measure_simulated(f"sim clean ({len(clean)})", clean)
    real_cols[0].label, real_cols[1].label = "real s1", "real s2"

    print("1. Real subjects, thigh unit u3, test.txt")
    print_real_detail(real_cols)
    print()
    print("2. Real subjects against the simulated population (rep exercises)")
    print_population([*real_cols, sim_people, sim_clean])
    print()
    errs = sim_people.truth_errors
    print(
        "   the measurement against the simulator's truth (people): range tilt - rom_deg "
        f"{_cell(errs['range'])} deg, peak gyro - peak_dps {_cell(errs['peak'])} deg/s, "
        f"start - first rep's start_s {_cell(errs['start'])} s"
    )
    print()
    print("3. One session: side-lying abduction, library dosage, MTx-class sensor")
    print_one_session(folders[0], args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
