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

    from miniplaces import trial_runner

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
