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
