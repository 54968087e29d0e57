"""The operator's window end to end: the real daemon and the real `heygemd web`, a job dropped
in the inbox, and a real headless Chromium (Debian's chromium + chromium-driver, through
selenium) watching the page until the job is done; /metrics parsed as Prometheus text; paths
that try to leave the outbox get nothing; beyond loopback a token is needed."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.integration.conftest import Harness, wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_web(harness: Harness, port: int, *, ready: bool = True) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **harness.env}
    with open(harness.root / f"web-{port}.log", "ab") as out:  # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "heygemd", "--config", str(harness.root / "config.toml"),
             "web"], cwd=harness.root, env=env, stdout=out, stderr=subprocess.STDOUT)
    harness.procs.append(proc)
    if ready:
        wait_for(lambda: proc.poll() is not None or get(port, "/api/status")[0] == 200, 60,
                 "the web page")
        assert proc.poll() is None, (harness.root / f"web-{port}.log").read_text()[-2000:]
    return proc


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A raw GET: the path goes out exactly as given (no client-side normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = get(port, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("the page test needs Debian's chromium and chromium-driver: "
                    "apt-get install chromium chromium-driver (make test does this as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=420,900",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver: Any, css: str) -> str:
    """The first match's visible text; "" when there is none, or the page's poll (every
    1.5 s) replaced it between finding and reading."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found and found[0].is_displayed() else ""
    except StaleElementReferenceException:
        return ""


def on_page(driver: Any, read: Any, timeout: float = 20) -> Any:
    """``read(driver)`` once the page holds still for it: the poll may replace the elements
    it reads midway, and then it is read again; falsy answers are waited past."""
    from selenium.common.exceptions import StaleElementReferenceException

    def attempt() -> Any:
        try:
            return read(driver)
        except StaleElementReferenceException:
            return None

    return wait_for(attempt, timeout, "a steady read of the page")


def test_the_page_follows_a_job_to_its_verdicts(harness: Harness, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    port = free_port()
    harness.configure(web={"listen": f"127.0.0.1:{port}"})
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "60"
    daemon = harness.start()
    start_web(harness, port)
    before = samples(port)
    browser.get(f"http://127.0.0.1:{port}/")
    wait_for(lambda: text_of(browser, "#results-empty"), 20, "the empty page")
    assert "idle" in text_of(browser, "#state")
    harness.make_job("spring lesson", {"speech.wav": "speech.wav", "anna.mp4": "face.mp4",
                                       "blank.mp4": "noface.mp4"})
    seen = wait_for(lambda: text_of(browser, "#running-percent") and
                    (text_of(browser, "#running-name"), text_of(browser, "#running-words"),
                     text_of(browser, "#running-percent")), 60, "the running job on the page")
    assert seen[0] == "spring lesson"
    assert "% of the job" in seen[2] and ("video" in seen[1] or "checking" in seen[1])
    card = 'article.result[data-job="spring lesson"]'
    wait_for(lambda: text_of(browser, card), 120, "the finished job on the page")
    report = harness.published()["spring lesson"]
    assert report["status"] == "partial"
    shown = on_page(browser, lambda d: {
        v.get_attribute("data-video"): v.text
        for v in d.find_elements(By.CSS_SELECTOR, f"{card} .video")})
    refused = next(v for v in report["videos"] if v["name"] == "blank.mp4")
    assert shown["anna.mp4"].startswith("OK") and "→ anna.mp4" in shown["anna.mp4"]
    assert shown["blank.mp4"].lower().startswith("rejected")
    assert refused["message"] in shown["blank.mp4"]  # the same words as RESULT.txt
    made = next(v for v in report["videos"] if v["name"] == "anna.mp4")
    assert made["preview"] == "anna.preview.jpg"
    assert "OK       anna.mp4 -> anna.mp4 (preview: anna.preview.jpg)" in (
        harness.outbox / "spring lesson" / "RESULT.txt").read_text()
    assert browser.find_elements(By.CSS_SELECTOR, f'{card} [data-video="anna.mp4"] a.preview img')
    # every picture loads (lazily, and again after each poll redraws the card)
    on_page(browser, lambda d: (images := d.find_elements(By.CSS_SELECTOR, f"{card} img"))
            and all(d.execute_script("return arguments[0].complete && "
                                     "arguments[0].naturalWidth > 0", img) for img in images))
    # the card comes from the store; the idle line from status.json, written just after
    wait_for(lambda: "Nothing is being made" in text_of(browser, "#idle"), 10, "the idle line")
    browser.save_screenshot(str(harness.root / "page.png"))
    assert (harness.root / "page.png").stat().st_size > 10_000
    after = samples(port)
    key = ("heygemd_jobs_total", (("outcome", "partial"),))
    assert after[key] == before.get(key, 0) + 1
    done = ("heygemd_videos_total", (("outcome", "done"),))
    assert after[done] == before.get(done, 0) + 1
    assert after[("heygemd_output_seconds_total", ())] > 1.0
    assert after[("heygemd_daemon_up", ())] == 1.0
    assert harness.stop(daemon) == 0


def test_files_come_only_from_the_jobs_own_list(harness: Harness) -> None:
    port = free_port()
    harness.configure(web={"listen": f"127.0.0.1:{port}"})
    harness.start()
    start_web(harness, port)
    harness.make_job("pics", {"speech.wav": "speech.wav", "blank.mp4": "noface.mp4"})
    harness.wait_published(1)
    job_id = harness.published()["pics"]["job_id"]
    # The folder is renamed into the outbox before the store records the job as finished, and
    # the page serves a job's files only once the store has: wait for that, not for the folder.
    wait_for(lambda: get(port, f"/files/{job_id}/0")[0] == 200, 30, "the job's first picture")
    for path in ("/files/../../etc/passwd", "/files/%2e%2e/%2e%2e/etc/passwd",
                 f"/files/{job_id}/../../../etc/passwd", f"/files/{job_id}/99",
                 f"/files/{job_id}/-1", "/files/nope/0", "/static/../../../etc/passwd",
                 "/..%2f..%2f..%2fetc%2fpasswd"):
        status, body = get(port, path)
        assert status == 404 and b"root:" not in body, (path, status)


def test_beyond_loopback_a_token_is_needed(harness: Harness) -> None:
    port = free_port()
    harness.configure(web={"listen": f"0.0.0.0:{port}"})
    proc = start_web(harness, port, ready=False)
    assert proc.wait(60) == 2
    assert "web.token" in (harness.root / f"web-{port}.log").read_text()
    harness.configure(web={"listen": f"0.0.0.0:{port}", "token": "s3cret-token"})
    start_web(harness, port, ready=False)
    wait_for(lambda: get(port, "/api/status")[0] == 401, 60, "the page behind its token")
    assert get(port, "/metrics")[0] == 401
    good = {"Authorization": "Bearer s3cret-token"}
    assert get(port, "/api/status", good)[0] == 200
    assert get(port, "/metrics", good)[0] == 200
    status, _ = get(port, "/?token=s3cret-token")
    assert status == 303  # remembered in a cookie, dropped from the address
    assert get(port, "/api/status", {"Authorization": "Bearer wrong"})[0] == 401


def test_the_page_reads_a_stopped_daemons_store_from_a_read_only_folder(
    harness: Harness, tmp_path: Path
) -> None:
    """As under heygemd-web.service (ReadOnlyPaths= on the state folder): after a clean stop
    SQLite's -wal/-shm files are gone and a reader may not make them; the page and /metrics
    still answer, with the daemon shown as stopped."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("this check needs root and unshare(1) (util-linux) for a read-only bind mount")
    proc = harness.start()
    harness.good_job("before")
    harness.wait_published(1)
    assert harness.stop(proc) == 0
    state = harness.root / "state"
    assert not (state / "jobs.sqlite3-shm").exists()
    script = (
        "import json; from heygemd.settings import load_settings; from heygemd.web import data, "
        "metrics; from prometheus_client import generate_latest, CollectorRegistry; "
        f"s = load_settings(__import__('pathlib').Path({str(harness.root / 'config.toml')!r})); "
        "d = data.page_data(s, 0.0); r = CollectorRegistry(); "
        "r.register(metrics.StoreCollector(s)); text = generate_latest(r).decode(); "
        "print(json.dumps({'stopped': d['stopped'], 'problems': d['problems'], "
        "'results': [c['name'] for c in d['results']], 'up': 'heygemd_daemon_up 0.0' in text}))")
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", f'mount --bind -o ro "{state}" "{state}" && '
         f'"{sys.executable}" -c "$0"', script],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if "mount" in done.stderr and done.returncode != 0:
        pytest.fail(f"a read-only bind mount is not possible here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"stopped": True, "problems": [], "results": ["before"], "up": True}
