from gateway.stats import Histogram


def test_percentiles_are_within_one_bucket() -> None:
    h = Histogram()
    for i in range(1, 1001):
        h.observe(i / 1000)  # 1 ms .. 1 s
    s = h.summary()
    assert s.count == 1000
    assert abs(s.p50_ms - 500) / 500 < 0.07
    assert abs(s.p99_ms - 990) / 990 < 0.07
    assert s.max_ms == 1000
    assert abs(s.mean_ms - 500.5) < 1e-6


def test_empty_and_merge() -> None:
    a, b = Histogram(), Histogram()
    assert a.summary().format() == "no samples"
    a.observe(0.002)
    b.observe(0.004)
    a.merge(b)
    assert a.count == 2 and a.max == 0.004
    assert a.percentile(1.0) == 0.004
