import numpy as np
import pytest

from prunebench.errors import BadInputError
from prunebench.measure.timer import Measurement, Timer


def scripted(clock, durations):
    """fn that makes each call take the next scripted duration on the fake clock."""
    it = iter(durations)
    calls = []

    def fn():
        d = next(it)
        calls.append(d)
        clock.advance(d)

    return fn, calls


def test_stops_at_min_runs_when_min_time_already_reached(fake_clock):
    fn, calls = scripted(fake_clock, [1.0] * 100)
    m = Timer(fn, warmup=2, min_runs=5, min_time=0.5, clock=fake_clock).run()
    assert m.n == 5 and len(calls) == 7  # 2 warm-up + 5 timed
    assert m.samples == (1.0,) * 5


def test_continues_until_min_time(fake_clock):
    fn, _ = scripted(fake_clock, [0.01] * 1000)
    m = Timer(fn, warmup=0, min_runs=3, min_time=0.5, clock=fake_clock).run()
    # each call 10 ms; 0.5 s needs 50 calls
    assert m.n == 50


def test_max_runs_and_max_time_cap(fake_clock):
    fn, _ = scripted(fake_clock, [0.01] * 1000)
    assert Timer(fn, warmup=0, min_runs=5, min_time=100, max_runs=20, max_time=1000,
                 clock=fake_clock).run().n == 20
    fn, _ = scripted(fake_clock, [0.5] * 1000)
    m = Timer(fn, warmup=0, min_runs=2, min_time=3.0, max_time=3.0, clock=fake_clock).run()
    assert m.n == 6


def test_between_runs_outside_timed_region(fake_clock):
    fn, _ = scripted(fake_clock, [0.002] * 100)
    flushes = []

    def flush():
        flushes.append(1)
        fake_clock.advance(5.0)  # slow flush must not enter the samples

    m = Timer(fn, warmup=0, min_runs=4, min_time=0, clock=fake_clock, between=flush).run()
    assert m.n == 4 and len(flushes) == 4
    assert max(m.samples) == pytest.approx(0.002)


def test_statistics_match_numpy():
    rng = np.random.default_rng(0)
    s = tuple(rng.lognormal(-6, 0.3, size=257))
    m = Measurement(s, batch=8)
    a = np.array(s)
    assert m.median == pytest.approx(np.median(a))
    assert m.mean == pytest.approx(a.mean())
    assert m.p90 == pytest.approx(np.quantile(a, 0.9))
    assert m.p99 == pytest.approx(np.quantile(a, 0.99))
    assert m.iqr == pytest.approx(np.quantile(a, 0.75) - np.quantile(a, 0.25))
    assert m.throughput == pytest.approx(8 / np.median(a))
    lat = m.latency_ms()
    assert lat["p50"] == pytest.approx(np.median(a) * 1e3)


def test_noisy_flag_and_warning(fake_clock):
    quiet = Measurement((1.0, 1.0, 1.01, 0.99, 1.0))
    assert not quiet.noisy
    loud = Measurement((1.0, 2.0, 1.0, 2.0, 1.0, 2.0))
    assert loud.iqr / loud.median > 0.1 and loud.noisy
    fn, _ = scripted(fake_clock, [0.01, 0.03] * 50)
    with pytest.warns(UserWarning, match="IQR"):
        Timer(fn, warmup=0, min_runs=10, min_time=0, clock=fake_clock).run(label="x")


@pytest.mark.parametrize("kw", [{"min_runs": 0}, {"warmup": -1}, {"min_time": -1},
                                {"min_runs": 2.5}, {"max_runs": 1, "min_runs": 5}])
def test_bad_settings(kw):
    with pytest.raises(BadInputError):
        Timer(lambda: None, **kw)


# ---------------------------------------------------------------- side by side (run_beside)

def test_beside_alternates_blocks_and_drops_each_blocks_first_call(fake_clock):
    """fn takes 1 ms, the reference 2 ms; blocks of 5 ms: fn's block holds 5 calls (the first
    dropped), the reference's 3 (5 ms reached after the third call; the first dropped)."""
    order = []

    def fn():
        order.append("f")
        fake_clock.advance(0.001)

    def ref():
        order.append("r")
        fake_clock.advance(0.002)

    m, r = Timer(fn, warmup=1, min_runs=8, min_time=0.0, clock=fake_clock).run_beside(
        ref, block_s=0.005)
    assert order[:2] == ["f", "r"]                       # warm-up of both
    blocks = "".join(order[2:])
    assert blocks.startswith("fffffrrrfffffrrr")
    assert m.samples == pytest.approx((0.001,) * m.n) and r.samples == pytest.approx((0.002,) * r.n)
    # stops once both hold min_runs samples: fn 4 per block, reference 2 per block
    assert (m.n, r.n) == (16, 8) and blocks == "fffffrrr" * 4


def test_beside_ratio_survives_a_slow_spell_that_fools_separate_runs(fake_clock):
    """The machine runs everything 2x slower for a while (the first 0.6 s). Timed one after
    the other, fn (truly 2x faster) looks as fast as the reference; side by side the ratio of
    medians is the true 0.5."""
    def machine(cost):
        def call():
            slow = 2.0 if fake_clock.t < 0.6 else 1.0
            fake_clock.advance(cost * slow)
        return call

    fn, ref = machine(0.0005), machine(0.001)
    alone_fn = Timer(fn, warmup=0, min_runs=5, min_time=0.6, clock=fake_clock).run()
    alone_ref = Timer(ref, warmup=0, min_runs=5, min_time=0.6, clock=fake_clock).run()
    assert alone_fn.median / alone_ref.median == pytest.approx(1.0)   # misleading

    fake_clock.t = 0.0
    m, r = Timer(fn, warmup=0, min_runs=5, min_time=2.0, clock=fake_clock).run_beside(ref)
    assert m.median / r.median == pytest.approx(0.5)


def test_beside_long_calls_keep_every_sample_and_caps_apply(fake_clock):
    fn, _ = scripted(fake_clock, [0.01] * 100)
    ref, _ = scripted(fake_clock, [0.02] * 100)
    m, r = Timer(fn, warmup=0, min_runs=3, min_time=0, clock=fake_clock).run_beside(
        ref, block_s=0.005)
    assert (m.n, r.n) == (3, 3)        # one call a block: nothing dropped
    fn, _ = scripted(fake_clock, [0.01] * 1000)
    ref, _ = scripted(fake_clock, [0.01] * 1000)
    m, r = Timer(fn, warmup=0, min_runs=100, min_time=0, max_time=0.2,
                 clock=fake_clock).run_beside(ref, block_s=0.0)
    assert m.n == r.n == 10            # 0.2 s of 20 ms pairs


def test_beside_rejects_a_bad_block(fake_clock):
    fn, _ = scripted(fake_clock, [0.01] * 10)
    with pytest.raises(BadInputError, match="block_s"):
        Timer(fn, clock=fake_clock).run_beside(fn, block_s=float("nan"))


def test_beside_settle_runs_untimed_first_and_hides_the_other_pools_spin(fake_clock):
    """After the reference's block, the other runtime's threads spin for 3 ms and every call
    of fn made then takes twice as long (ONNX Runtime's pool before OpenVINO calls, measured).
    Without settling that spell sits in fn's samples; settling 5 ms untimed leaves it out."""
    state = {"spin_until": -1.0}

    def fn():
        slow = 2.0 if fake_clock.t < state["spin_until"] else 1.0
        fake_clock.advance(0.001 * slow)

    def ref():
        fake_clock.advance(0.001)
        state["spin_until"] = fake_clock.t + 0.003

    m, _ = Timer(fn, warmup=1, min_runs=20, min_time=0.0, clock=fake_clock).run_beside(
        ref, block_s=0.005)
    assert max(m.samples) == pytest.approx(0.002)          # polluted
    m, r = Timer(fn, warmup=1, min_runs=20, min_time=0.0, clock=fake_clock).run_beside(
        ref, block_s=0.005, settle_s=0.005)
    assert m.samples == pytest.approx((0.001,) * m.n) and m.n >= 20
    with pytest.raises(BadInputError):
        Timer(fn, clock=fake_clock).run_beside(ref, settle_s=-1)


def test_among_takes_each_reference_in_turn_and_waits_for_the_slowest(fake_clock):
    """fn 1 ms, two references of 2 and 6 ms, blocks of 5 ms: rounds of f*5, a*3, b*1 (a 6 ms
    call ends its block at once and is kept); it stops when every one holds min_runs."""
    order = []

    def make(tag, s):
        def call():
            order.append(tag)
            fake_clock.advance(s)
        return call

    m, (a, b) = Timer(make("f", 0.001), warmup=1, min_runs=3, min_time=0.0,
                      clock=fake_clock).run_among([make("a", 0.002), make("b", 0.006)],
                                                  block_s=0.005, label="x")
    assert order[:3] == ["f", "a", "b"]
    assert "".join(order[3:]) == "fffffaaab" * 3
    assert (m.n, a.n, b.n) == (12, 6, 3)
    assert b.samples == pytest.approx((0.006,) * 3)
    assert a.label == "x (reference 0)" and b.label == "x (reference 1)"
