"""The report in a real browser: headless Chromium over the DevTools protocol.

Renders the report of a tiny synthetic study (stores through the real writer) and checks
what a reader sees: no console errors, every image decoded with a non-zero size, and the
overview figure above the first table. Saves a full-page screenshot and prints its path.
Skipped only where Chromium is absent and CI is unset (CI installs it: .ci/run).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from scorerate.report.build import make_report
from scorerate.study.aggregate import aggregate, write_study

sys.path.insert(0, str(Path(__file__).parent / "workflow"))
from synthetic import write_run  # noqa: E402

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                        "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="no chromium on this machine (CI installs it)")

#: what the page reports back once loaded
PROBE = """(() => {
  const imgs = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  const top = el => el ? el.getBoundingClientRect().top + window.scrollY : null;
  return JSON.stringify({imgs, overview: top(document.getElementById('overview-figure')),
                         table: top(document.querySelector('table')),
                         height: document.documentElement.scrollHeight});
})()"""


class DevTools:
    """A minimal DevTools-protocol client over tornado's websocket (tornado comes with
    distributed): send commands, collect events."""

    def __init__(self, ws):
        self.ws, self.next_id, self.events = ws, 0, []

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        mid = self.next_id
        await self.ws.write_message(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = await asyncio.wait_for(self.ws.read_message(), 60)
            assert msg is not None, "chromium closed the DevTools connection"
            data = json.loads(msg)
            if data.get("id") == mid:
                assert "error" not in data, data
                return data["result"]
            self.events.append(data)

    async def wait_event(self, method: str, timeout: float = 60) -> dict:
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        end = time.monotonic() + timeout
        while True:
            msg = await asyncio.wait_for(self.ws.read_message(), max(0.1, end - time.monotonic()))
            assert msg is not None, "chromium closed the DevTools connection"
            data = json.loads(msg)
            self.events.append(data)
            if data.get("method") == method:
                return data


async def _inspect(port: int, url: str, shot: Path) -> tuple[dict, list[str]]:
    import urllib.request

    from tornado.websocket import websocket_connect

    req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(req, timeout=30) as resp:  # a new tab to drive
        target = json.loads(resp.read())
    ws = await websocket_connect(target["webSocketDebuggerUrl"], max_message_size=1 << 28)
    dt = DevTools(ws)
    for domain in ("Page", "Runtime", "Log"):
        await dt.call(f"{domain}.enable")
    await dt.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000,
                  deviceScaleFactor=1, mobile=False)
    await dt.call("Page.navigate", url=url)
    await dt.wait_event("Page.loadEventFired")
    probe = json.loads((await dt.call("Runtime.evaluate", expression=PROBE,
                                      returnByValue=True))["result"]["value"])
    png = await dt.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    shot.write_bytes(base64.b64decode(png["data"]))
    errors = []
    for ev in dt.events:
        p = ev.get("params", {})
        if ev.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error",
                                                                                 "assert"):
            errors.append(json.dumps(p.get("args")))
        elif ev.get("method") == "Runtime.exceptionThrown":
            errors.append(json.dumps(p.get("exceptionDetails")))
        elif ev.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            errors.append(p["entry"].get("text", ""))
    ws.close()
    return probe, errors


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float = 60) -> int:
    """Chromium writes its chosen port to DevToolsActivePort in the profile directory."""
    f = profile / "DevToolsActivePort"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if f.is_file() and f.read_text().strip():
            return int(f.read_text().split()[0])
        assert proc.poll() is None, "chromium exited before opening DevTools"
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


def test_report_in_headless_chromium(tmp_path):
    assert CHROMIUM is not None, "CI must have chromium (.ci/run installs it)"
    runs = [write_run(tmp_path / "runs", d=d, n=n, seed=s) for d in (1, 2)
            for n in (100, 300, 1000) for s in (0, 1, 2)]
    study = write_study(aggregate(runs, config={"d": [1, 2]}), tmp_path / "study.zarr")
    index = make_report(study, tmp_path / "report",
                        provenance={"git commit": "test"})
    # a profile outside tmp_path would outlive the test; /tmp keeps socket paths short
    profile = Path(tempfile.mkdtemp(prefix="scorerate-chromium-"))
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shot = tmp_path / "report.png"
    try:
        port = _devtools_port(profile, proc)
        probe, errors = asyncio.run(asyncio.wait_for(
            _inspect(port, index.resolve().as_uri(), shot), 120))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"\nscreenshot of the report: {shot}")
    assert errors == []
    assert len(probe["imgs"]) >= 7  # overview + 3 figures per d for d = 1, 2
    for complete, width, height in probe["imgs"]:
        assert complete and width > 0 and height > 0
    assert probe["overview"] is not None and probe["table"] is not None
    assert probe["overview"] < probe["table"]
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000
