"""The Places365 download against a server on 127.0.0.1 that the test starts: every way a download
ends (complete, 404, an HTML page, a cut connection, a stall) leads to the documented outcome, and
nothing partial is ever left in the cache."""
from __future__ import annotations

import contextlib
import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from checkpoints import resnet_state, write_official

import generate_report
from miniplaces.errors import UserError
from miniplaces.inputs.places_model import provision

ARCH = "resnet18"
CATEGORIES = "".join(f"/c/class{i:03d} {i}\n" for i in range(365)).encode()
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>Service unavailable</h1></body></html>"


class Server:
    """Serves the checkpoint and the categories under /MODE/..., each mode failing in its own way."""

    def __init__(self, checkpoint: bytes):
        self.checkpoint = checkpoint
        self.requests: list[str] = []
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                server.requests.append(self.path)
                mode, _, name = self.path.strip("/").partition("/")
                body = CATEGORIES if name.endswith(".txt") else server.checkpoint
                if mode == "missing":
                    self.send_error(404, "File not found")
                    return
                if mode == "endless":   # no Content-Length, bytes until the client gives up (or 256 MiB)
                    self.send_response(200)
                    self.end_headers()
                    chunk = b"\0" * (1 << 16)
                    with contextlib.suppress(OSError):
                        for _ in range(4096):
                            self.wfile.write(chunk)
                    self.close_connection = True
                    return
                if mode.startswith("html") or (mode == "nolabels" and name.endswith(".txt")):
                    # a proxy's error page, with or without an honest type
                    kind = "application/octet-stream" if mode == "html-as-binary" else "text/html"
                    self.send_response(200)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(HTML_PAGE)))
                    self.end_headers()
                    self.wfile.write(HTML_PAGE)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(10**12 if mode == "huge" else len(body)))
                self.end_headers()
                if mode in ("ok", "nolabels"):
                    self.wfile.write(body)
                elif mode == "huge":   # the client hangs up after the header
                    with contextlib.suppress(OSError):
                        self.wfile.write(body)
                elif mode == "cut":
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif mode == "stall":
                    self.wfile.write(body[:4096])
                    self.wfile.flush()
                    server.stop.wait(10)  # far past the client's timeout

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    buffer = io.BytesIO()
    write_official(buffer, resnet_state(ARCH), legacy=False)  # type: ignore[arg-type]
    srv = Server(buffer.getvalue())
    yield srv
    srv.close()


@pytest.fixture
def places(tmp_path, monkeypatch, server):
    """Point the downloads at ``server``/MODE, with a private cache and a 0.5 s timeout."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MINIPLACES_DOWNLOAD_TIMEOUT", "0.5")

    def use(mode: str, strict: bool = False, offline: bool = False):
        monkeypatch.setenv("MINIPLACES_WEIGHTS_URL", f"{server.base}/{mode}/{{arch}}_places365.pth.tar")
        monkeypatch.setenv("MINIPLACES_CATEGORIES_URL", f"{server.base}/{mode}/categories_places365.txt")
        return provision(None, None, ARCH, tmp_path / "cache", "cpu", 0, strict=strict, offline=offline)

    use.cache_files = lambda: sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    return use


def test_download_fills_the_cache_and_a_second_run_needs_no_network(places, server, capsys):
    model = places("ok")
    assert not model.demo
    assert model.weights.endswith(f"torch/hub/checkpoints/{ARCH}_places365.pth.tar")
    assert model.labels[:2] == ["class000", "class001"]
    assert Path(model.weights).read_bytes() == server.checkpoint
    assert "100%" in capsys.readouterr().err  # the progress bar ran to the end
    assert places.cache_files() == [Path("cache/weights/categories_places365.txt"),
                                    Path(f"torch/hub/checkpoints/{ARCH}_places365.pth.tar")]
    before = len(server.requests)
    again = places("missing")  # the server would now fail: the cache must answer
    assert not again.demo and again.sha256 == model.sha256 and again.labels == model.labels
    assert len(server.requests) == before


@pytest.mark.parametrize("mode, reason", [
    ("missing", "HTTP Error 404"),
    ("html", "HTML page"),
    ("html-as-binary", "HTML page"),
    ("cut", "closed after"),
    ("stall", "no data for 0.5 s"),
    ("endless", "the server sent more than 51.1 MB, larger than the official file"),
    ("huge", "the server announced 1000000000000 bytes, more than 51.1 MB"),
])
def test_failed_download_gives_demo_with_the_reason_and_leaves_no_file(places, mode, reason):
    model = places(mode)
    assert model.demo
    assert reason in model.demo_reason and "could not download" in model.demo_reason
    assert places.cache_files() == []
    with pytest.raises(UserError) as err:
        places(mode, strict=True)
    assert reason in str(err.value) and "--strict" in str(err.value)
    assert places.cache_files() == []


def test_bad_categories_download_keeps_the_weights_and_labels_by_index(places):
    model = places("nolabels")
    assert not model.demo and model.labels[0] == "class 0"
    assert places.cache_files() == [Path(f"torch/hub/checkpoints/{ARCH}_places365.pth.tar")]


def test_strict_cli_exits_2_on_a_cut_download(tmp_path, monkeypatch, server):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MINIPLACES_WEIGHTS_URL", f"{server.base}/cut/{{arch}}_places365.pth.tar")
    code = generate_report.main(["--strict", "--only", "filters", "--arch", ARCH, "--no-pdf", "-q",
                                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    assert code == 2
    assert not (tmp_path / "torch").exists() or not any((tmp_path / "torch").rglob("*.tar*"))


@pytest.mark.parametrize("value", ["soon", "inf", "nan", "-1"])  # inf and nan: issue 38
def test_bad_timeout_setting_is_a_user_error(places, monkeypatch, value):
    monkeypatch.setenv("MINIPLACES_DOWNLOAD_TIMEOUT", value)
    with pytest.raises(UserError, match="MINIPLACES_DOWNLOAD_TIMEOUT"):
        places("ok")


def test_file_urls_are_capped_too(places, tmp_path, monkeypatch, server):
    """A file:// mirror works; a device (endless /dev/zero) or a FIFO is refused at once, nothing written."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / f"{ARCH}_places365.pth.tar").write_bytes(server.checkpoint)
    os.mkfifo(mirror / "fifo")
    for url, reason in [("file:///dev/zero", "/dev/zero is not a regular file"),
                        ((mirror / "fifo").as_uri(), "fifo is not a regular file")]:
        monkeypatch.setenv("MINIPLACES_WEIGHTS_URL", url)
        monkeypatch.setenv("MINIPLACES_CATEGORIES_URL", url)
        model = provision(None, None, ARCH, tmp_path / "cache", "cpu", 0, strict=False, offline=False)
        assert model.demo and reason in model.demo_reason
        assert places.cache_files() == [Path(f"mirror/{ARCH}_places365.pth.tar")]
    monkeypatch.setenv("MINIPLACES_WEIGHTS_URL", f"{mirror.as_uri()}/{{arch}}_places365.pth.tar")
    model = provision(None, None, ARCH, tmp_path / "cache", "cpu", 0, strict=False, offline=False)
    assert not model.demo and Path(model.weights).read_bytes() == server.checkpoint
