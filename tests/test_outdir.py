"""The out dir is checked before long work: free space and writability."""
from __future__ import annotations

import shutil
from collections import namedtuple

import pytest

from miniplaces import outdir
from miniplaces.errors import UserError


def test_full_disk_is_refused_before_work(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1024, 1024))
    with pytest.raises(UserError, match="MiB free"):
        with outdir.lock_out_dir(tmp_path / "out"):
            pytest.fail("the body must not run on a full disk")


def test_lock_is_released_after_a_run(tmp_path):
    with outdir.lock_out_dir(tmp_path / "out"):
        pass
    with outdir.lock_out_dir(tmp_path / "out"):  # a second run later is fine
        pass


def test_second_concurrent_run_is_refused(tmp_path):
    with outdir.lock_out_dir(tmp_path / "out"):
        with pytest.raises(UserError, match="another run"):
            with outdir.lock_out_dir(tmp_path / "out"):
                pass


def test_out_dir_under_a_regular_file_is_refused_even_as_root(tmp_path):
    """mkdir under a regular file fails for every user (ENOTDIR), unlike a chmod'ed directory."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create or write there"):
        with outdir.lock_out_dir(blocker / "out"):
            pytest.fail("the body must not run")


def test_out_dir_where_nothing_can_be_written_is_refused_even_as_root(tmp_path):
    """The write probe is a directory here: writing it fails for root too (EISDIR), so the check is
    exercised."""
    out = tmp_path / "out"
    (out / ".write-probe").mkdir(parents=True)
    with pytest.raises(UserError, match="not writable"):
        with outdir.lock_out_dir(out):
            pytest.fail("the body must not run")
    with pytest.raises(UserError, match="not writable"):   # again: the failed run released its lock
        with outdir.lock_out_dir(out):
            pass
