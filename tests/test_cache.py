"""The result cache: keys, atomic entries, corrupt entries recomputed."""
from __future__ import annotations

import os

from miniplaces import atomic
from miniplaces.cache import Cache, digest


def test_key_ignores_dict_order_but_not_values():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


def test_get_or_compute_hits_after_first_call(tmp_path):
    cache, calls = Cache(tmp_path), []
    compute = lambda: calls.append(1) or {"x": 3}  # noqa: E731
    assert cache.get_or_compute("ns", {"k": 1}, compute) == ({"x": 3}, False)
    assert cache.get_or_compute("ns", {"k": 1}, compute) == ({"x": 3}, True)
    assert cache.get_or_compute("ns", {"k": 2}, compute)[1] is False
    assert len(calls) == 2 and len(cache.stats.hits) == 1


def test_corrupt_entry_is_recomputed(tmp_path):
    cache = Cache(tmp_path)
    cache.get_or_compute("ns", {"k": 1}, lambda: [1, 2, 3])
    (entry,) = (tmp_path / "results" / "ns").glob("*.pkl")
    entry.write_bytes(entry.read_bytes()[:5])
    assert cache.get_or_compute("ns", {"k": 1}, lambda: [4]) == ([4], False)


def test_disabled_cache_always_computes(tmp_path):
    cache = Cache(tmp_path, enabled=False)
    cache.get_or_compute("ns", {}, lambda: 1)
    assert cache.get_or_compute("ns", {}, lambda: 2) == (2, False)
    assert not (tmp_path / "results").exists()


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path):
    path = tmp_path / "out.json"
    atomic.write_json(path, {"ok": 1})

    def explode(handle):
        handle.write(b"half")
        raise KeyboardInterrupt

    try:
        atomic.write_with(path, explode)
    except KeyboardInterrupt:
        pass
    assert path.read_text().strip().startswith("{") and '"ok": 1' in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600


def test_code_version_ignores_comments_docstrings_and_layout_not_code(tmp_path):
    from miniplaces.cache import code_version

    def version(source: str) -> str:
        path = tmp_path / "mod.py"
        path.write_text(source)
        return code_version(path)

    plain = version('"""Module."""\ndef f(x):\n    """Why."""\n    return x * 2\n')
    assert version("# a comment\ndef f(x):\n\n    return (x *\n            2)  # doubled\n") == plain
    assert version("def f(x):\n    return x * 3\n") != plain     # a number changes the result
    assert version("def f(y):\n    return y * 2\n") != plain     # so might a name: no guessing
    data = tmp_path / "table.txt"
    data.write_text("1 2")
    before = code_version(data)
    data.write_text("1  2")
    assert code_version(data) != before                          # not Python: every byte counts
