"""Remote stacks (issue 18.4): URLs and /vsicurl/ paths reach GDAL as written and are read window by window;
network failures are one line. Served by a loopback HTTP server with Range support that stops with the test."""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from helpers import make_checkpoint, sar_values, write_stack
from typer.testing import CliRunner

import slgt2_cli as slgt2
from slgt2_cli.cli.app import app
from slgt2_cli.errors import InputError
from slgt2_cli.io.remote import gdal_path, is_remote
from slgt2_cli.io.stacks import open_stack

runner = CliRunner()


class _RangeHandler(BaseHTTPRequestHandler):
    """Serves files of ``root`` with HTTP Range requests (GDAL's /vsicurl/ needs them); counts bytes sent."""

    root: Path = Path()
    sent: list[int] = []

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = self.root / self.path.split("?")[0].lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            start, end = int(m[1]), min(int(m[2]) if m[2] else len(data) - 1, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            data = data[start : end + 1]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if body:
            self.wfile.write(data)
            self.sent.append(len(data))

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Base URL of a loopback server for ``tmp_path / 'www'``; GDAL gives up quickly; stopped afterwards."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "10")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (_RangeHandler,), {"root": root, "sent": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, handler.sent
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _cog_stack(root: Path, h: int = 96, w: int = 128) -> tuple[Path, np.ndarray]:
    values = sar_values(h, w, seed=5)
    write_stack(root / "plain.tif", values)
    with rasterio.open(root / "plain.tif") as src:
        rasterio.shutil.copy(src, root / "s1.tif", driver="COG", BLOCKSIZE=32)
    (root / "plain.tif").unlink()
    return root / "s1.tif", values


@pytest.mark.parametrize("text, expected", [
    ("https://host/a/b.tif", "https://host/a/b.tif"),
    (Path("https://host/a/b.tif"), "https://host/a/b.tif"),  # Path collapsed the //: repaired
    (Path("s3://bucket/k/s1.tif"), "s3://bucket/k/s1.tif"),
    (Path("/vsicurl/https://host/a.tif?sig=1&x=2"), "/vsicurl/https://host/a.tif?sig=1&x=2"),
    ("/vsis3/bucket/s1.tif", "/vsis3/bucket/s1.tif"),
    ("scenes/s1.tif", None),
    ("C:/scenes/s1.tif", None),
])
def test_gdal_path_keeps_urls_and_virtual_paths(text, expected):
    assert gdal_path(text) == expected and is_remote(text) == (expected is not None)


def test_remote_errors_name_the_url_with_its_slashes():
    err = InputError("cannot open", Path("s3://bucket/s1.tif"))
    assert str(err).startswith("s3://bucket/s1.tif: cannot open")


def test_remote_stack_is_read_window_by_window(server):
    base, root, sent = server
    local, values = _cog_stack(root)
    for url in (f"{base}/s1.tif", f"/vsicurl/{base}/s1.tif", Path(f"{base}/s1.tif")):
        with open_stack(url) as stack:
            assert stack.dates is not None and stack.polarisations == ["VV", "VH"] and stack.units == "db"
            sent.clear()
            window = stack.read(rasterio.windows.Window(40, 30, 16, 16))
            np.testing.assert_array_equal(window, values[:, :, 30:46, 40:56])
            assert 0 < sum(sent) < local.stat().st_size / 4  # a few tiles, not the file
    cube = slgt2.open_stack(f"{base}/s1.tif")
    np.testing.assert_array_equal(cube[:, :, 90:, :5].values, values[:, :, 90:, :5])


def test_predict_a_remote_stack_like_a_local_one(server, tmp_path):
    base, root, _ = server
    local, _ = _cog_stack(root)
    ck = make_checkpoint(tmp_path / "ck.pt")
    for stack, out in ((str(local), "local.tif"), (f"{base}/s1.tif", "remote.tif")):
        result = runner.invoke(app, ["predict", str(ck), stack, str(tmp_path / out), "--device", "cpu", "--quiet"])
        assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "remote.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_network_failures_are_one_line(server, tmp_path):
    base, root, _ = server
    ck = make_checkpoint(tmp_path / "ck.pt")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/s1.tif"
    for url in (f"{base}/missing.tif", closed):
        result = runner.invoke(app, ["predict", str(ck), url, str(tmp_path / "m.tif"), "--device", "cpu", "-q"])
        assert result.exit_code == 2, result.output
        line = result.output.strip()
        assert "\n" not in line and line.startswith(f"slgt2: error: {url}: cannot open the remote raster"), line
        assert "credentials" in line
    assert not (tmp_path / "m.tif").exists()


def test_signed_urls_are_not_globs_and_name_their_outputs(tmp_path):
    from slgt2_cli.infer.predictor import output_paths
    from slgt2_cli.infer.run import expand_stacks

    urls = [Path("https://bucket.example.com/s1/a.tif?X-Amz-Signature=1&x=[2]"), Path("s3://bucket/s1/b.tif")]
    assert expand_stacks(urls) == urls
    assert output_paths([Path("https://h/s1/a.tif"), urls[1]], tmp_path) == [tmp_path / "a.tif", tmp_path / "b.tif"]
