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


@pytest.mark.parametrize("bad", ["100/ms", "1.5/s", " 100/s", "100/s ", "100/s\n", "0/s", "01/s", "100 /s",
                                 "100/sec", "100/m", "100/hour", "100/d", "+5/s", "١٠/s"])
def test_rates_parse_exactly_as_documented(bad):
    with pytest.raises(UnitError):
        parse_rate(bad)


def test_the_documented_rates():
    assert parse_rate("5/h") == pytest.approx(5 / 3600) and parse_rate("1/s") == 1.0


@pytest.mark.parametrize("bad", [" 30s", "30s ", "30s\n", "1.0s", "30 s", "３０s", "+30s"])
def test_durations_and_sizes_take_no_spaces_or_other_digits(bad):
    with pytest.raises(UnitError):
        parse_duration(bad)
    with pytest.raises(UnitError):
        parse_size(bad.replace("s", "MB"))
