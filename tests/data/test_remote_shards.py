"""http(s) shards: unreachable hosts fail at once naming the URL; only transient HTTP errors are retried.

A real HTTP server on localhost stands in for the shard host; "no-such-host.invalid" can never
resolve (RFC 6761), whether or not this machine has DNS.
"""
import http.server
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import webdataset as wds

from soundstage.data.audio_datamodule import AudioDataModule
from soundstage.data.audio_io import encode_flac
from soundstage.data.remote import RETRIES_ENV, TIMEOUT_ENV, RemoteShardError, open_url
from soundstage.errors import SoundstageError

SR = 8000


@pytest.fixture
def remote_settings(monkeypatch):
    def set_(timeout=5.0, retries=3):
        monkeypatch.setenv(TIMEOUT_ENV, str(timeout))
        monkeypatch.setenv(RETRIES_ENV, str(retries))
    set_()
    return set_


@pytest.fixture
def server(tmp_path):
    """Serves ``good.tar``; ``state['fail']`` holds HTTP codes to answer first, one per request."""
    path = tmp_path / "good.tar"
    with wds.TarWriter(str(path)) as tw:
        for i in range(4):
            wave = (0.3 * np.sin(np.arange(SR) * (0.05 + 0.01 * i))).astype(np.float32)
            tw.write({"__key__": f"k{i}", "flac": encode_flac(wave, SR), "json": b"{}"})
    body = path.read_bytes()
    state = {"fail": [], "requests": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"] += 1
            if state["fail"]:
                self.send_error(state["fail"].pop(0))
                return
            if self.path != "/good.tar":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()


def test_unresolvable_host_fails_at_once_naming_the_url(remote_settings):
    with pytest.raises(RemoteShardError, match=r"^cannot reach http://no-such-host.invalid/a.tar: (DNS lookup of "
                                               r"'no-such-host.invalid' failed|no DNS answer)") as err:
        open_url("http://no-such-host.invalid/a.tar")
    assert isinstance(err.value, SoundstageError) and "\n" not in str(err.value)


def test_refused_and_silent_hosts_fail_with_the_url(remote_settings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(RemoteShardError, match=rf"cannot reach http://127.0.0.1:{port}/a.tar: .*refused"):
        open_url(f"http://127.0.0.1:{port}/a.tar")
    remote_settings(timeout=0.5)
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/a.tar"
        with pytest.raises(RemoteShardError, match=rf"cannot reach {url}: .*timed out \(timeout 0.5 s\)"):
            open_url(url)


def test_transient_http_errors_are_retried_and_others_are_not(server, remote_settings):
    base, state = server
    remote_settings(retries=2)
    state["fail"] = [503, 429]
    assert len(open_url(f"{base}/good.tar").read()) > 0
    assert state["requests"] == 3
    state["requests"], state["fail"] = 0, [503, 503, 503]
    with pytest.raises(RemoteShardError, match=rf"cannot fetch {base}/good.tar: HTTP 503 .* after 3 tries"):
        open_url(f"{base}/good.tar")
    state["requests"], state["fail"] = 0, []
    with pytest.raises(RemoteShardError, match=r"HTTP 404"):
        open_url(f"{base}/missing.tar")
    assert state["requests"] == 1


def test_training_stream_stops_on_an_unreachable_shard_instead_of_skipping(server, remote_settings):
    base, _ = server
    good = AudioDataModule(f"{base}/good.tar", None, sample_rate=SR, batch_size=2, segment_samples=2000,
                           batches_per_epoch=2, shuffle_buffer=1)
    assert len(list(good.train_dataloader())) == 2
    bad = AudioDataModule("http://no-such-host.invalid/x-{000000..000001}.tar", None, sample_rate=SR, batch_size=2,
                          segment_samples=2000, batches_per_epoch=2, shuffle_buffer=1)
    with pytest.raises(RemoteShardError, match="cannot reach http://no-such-host.invalid/x-00000"):
        list(bad.train_dataloader())
    assert bad.num_skipped == 0


def test_data_info_on_an_unreachable_url_exits_non_zero_in_one_line():
    out = subprocess.run([sys.executable, "-m", "soundstage.cli", "data", "info", "http://no-such-host.invalid/a.tar"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        line for line in out.stderr.strip().splitlines() if line.startswith("error: data info: http://no-such-host")]
    assert "cannot reach http://no-such-host.invalid/a.tar" in out.stderr
