"""Progress lines off a terminal: how much is done, the seconds so far and the time left, at most every
LOG_EVERY_S seconds and at the end."""
import logging

import pytest

from miniplaces import progress as prog


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(prog, "clock", lambda: now[0])
    return now


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "miniplaces"]


def test_a_long_stage_logs_each_step_with_the_time_left_at_the_rate_so_far(clock, caplog):
    caplog.set_level(logging.INFO, logger="miniplaces")
    with prog.Ticker("FashionMNIST final model", 15, "epochs") as ticker:
        for _ in range(15):
            clock[0] += 60.0          # one epoch a minute
            ticker.update()
    lines = _lines(caplog)
    assert len(lines) == 15
    assert lines[0] == "FashionMNIST final model: 1/15 epochs (60.0s, about 14 min left)"
    assert lines[4] == "FashionMNIST final model: 5/15 epochs (300.0s, about 10 min left)"
    assert lines[13] == "FashionMNIST final model: 14/15 epochs (840.0s, about 60 s left)"
    assert lines[-1] == "FashionMNIST final model: 15/15 epochs (900.0s)"


def test_a_short_stage_logs_its_end_only_and_a_quiet_one_nothing(clock, caplog):
    caplog.set_level(logging.INFO, logger="miniplaces")
    items = list(prog.progress(range(5), "layer4 feature maps"))
    assert items == list(range(5))
    assert _lines(caplog) == ["layer4 feature maps: 5/5 (0.0s)"]
    caplog.clear()
    ticker = prog.Ticker("FashionMNIST grid", 18, "trials")
    clock[0] += prog.LOG_EVERY_S - 1
    ticker.update()                   # under LOG_EVERY_S since the start: no line
    clock[0] += 2
    ticker.update(0)                  # nothing done: no line either
    ticker.update()
    assert _lines(caplog) == ["FashionMNIST grid: 2/18 trials (31.0s, about 5 min left)"]
    caplog.clear()
    with prog.silent(3, "epochs") as quiet:
        for _ in range(3):
            clock[0] += 100
            quiet.update()
    assert _lines(caplog) == []


@pytest.mark.parametrize("seconds, text", [(0.4, "about 5 s left"), (41, "about 45 s left"),
                                           (89, "about 90 s left"), (90, "about 2 min left"),
                                           (601, "about 11 min left")])
def test_time_left_is_rounded_up(seconds, text):
    assert prog.time_left(seconds) == text


def test_in_process_trials_count_each_epoch_and_the_epochs_a_diverged_trial_never_ran(monkeypatch):
    from types import SimpleNamespace

    from miniplaces.report import trial_runner

    specs = [SimpleNamespace(name=name, config=SimpleNamespace(epochs=epochs)) for name, epochs in
             (("ok", 3), ("diverged after 2", 4))]

    def fake_run_trial(spec, env, on_epoch, cache):
        for epoch in range(1, (2 if spec.name.startswith("diverged") else 3) + 1):
            on_epoch({"epoch": epoch})
        return {"name": spec.name}, False
    monkeypatch.setattr(trial_runner, "run_trial", fake_run_trial)
    steps = []

    class Recording(prog.Ticker):
        def update(self, n=1):
            steps.append(n)
            super().update(n)
    made = []

    def track(total, unit, settle):
        made.append((total, unit, settle))
        return Recording("", total, unit, quiet=True, settle=settle)
    outcomes = trial_runner.run_local(specs, SimpleNamespace(workers=1), track)
    assert [r["name"] for r, _ in outcomes] == ["ok", "diverged after 2"]
    assert made == [(7, "epochs", 1)]
    assert steps == [1, 1, 1, 0, 1, 1, 2]


def test_trials_side_by_side_project_the_time_left_once_the_first_bunch_has_finished(clock, caplog):
    caplog.set_level(logging.INFO, logger="miniplaces")
    ticker = prog.Ticker("FashionMNIST grid", 18, "trials", settle=2)
    for finished_at in (120, 125, 240, 246):   # two lanes: trials end two by two, every 120 s
        clock[0] = 100 + finished_at
        ticker.update()
    assert _lines(caplog) == ["FashionMNIST grid: 1/18 trials (120.0s)",       # not 'about 34 min left'
                              "FashionMNIST grid: 3/18 trials (240.0s, about 20 min left)"]


def _forecasts(clock, workers: int, finishes: list[tuple[float, int]], total: int) -> list[float | None]:
    """The seconds left after each (time, job) finish of a pool that starts at the clock's time."""
    start = clock[0]
    forecast = prog.PoolForecast(total, workers)
    out = []
    for at, job in finishes:
        clock[0] = start + at
        out.append(forecast.finished(job))
    return out


def test_a_pool_forecast_knows_when_each_trial_started(clock):
    # two lanes of 120-s trials: 18 trials end at 120, 120, 240, 240, ..., 1080 s
    finishes = [(120 * (1 + k // 2), k) for k in range(18)]
    left = _forecasts(clock, 2, finishes, 18)
    assert left[0] == pytest.approx(960)     # the rate of the first trial alone would say 2040
    assert left[2] == pytest.approx(840) and left[-2] == pytest.approx(0) and left[-1] == 0
    # the end of a grid: the last trial has run beside the third for most of its time
    left = _forecasts(clock, 2, [(130, 0), (140, 1), (262, 2), (272, 3)], 4)
    assert left[2] == pytest.approx(140 + (130 + 140 + 132) / 3 - 262)  # 12 s; the rate so far: 87 s
    assert left[-1] == 0


def test_a_pool_forecast_leaves_cache_hits_out_of_the_mean(clock):
    forecast = prog.PoolForecast(3, 1)
    clock[0] += 0.1
    assert forecast.finished(0, timed=False) is None   # nothing timed yet: the Ticker's rate decides
    clock[0] += 100
    assert forecast.finished(1) == pytest.approx(100)  # one 100-s trial still queued
    clock[0] += 100
    assert forecast.finished(2) == 0


def test_the_ticker_shows_a_forecast_it_is_given(clock, caplog):
    caplog.set_level(logging.INFO, logger="miniplaces")
    ticker = prog.Ticker("FashionMNIST grid", 4, "trials", settle=2)
    clock[0] += 267.3
    for left in (200.0, None, 3.0):   # lines come at most every LOG_EVERY_S: only the first shows
        ticker.update(left=left)
    clock[0] += 9
    ticker.update(left=0.0)
    assert _lines(caplog) == ["FashionMNIST grid: 1/4 trials (267.3s, about 4 min left)",
                              "FashionMNIST grid: 4/4 trials (276.3s)"]
