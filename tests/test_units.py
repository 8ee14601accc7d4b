import pytest

from orgloop.units import UnitError, parse_duration, parse_rate, parse_size


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("1s", 1), ("2m", 120), ("1h", 3600), ("7d", 604800)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["1", "1.5s", "s", "1 s x", "-1s", "1sec", 5, None, ""])
def test_bad_durations(bad):
    with pytest.raises(UnitError):
        parse_duration(bad)


def test_rates_and_sizes():
    assert parse_rate("100/s") == 100
    assert parse_rate("10/min") == pytest.approx(1 / 6)
    assert parse_size("100MB") == 100 * 1024 * 1024 and parse_size(4096) == 4096
    for bad in ["0/s", "100", "/s", "10/week"]:
        with pytest.raises(UnitError):
            parse_rate(bad)
    for bad in ["1.5MB", "-1", "10XB", True]:
        with pytest.raises(UnitError):
            parse_size(bad)
