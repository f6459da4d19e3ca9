"""``pushcore demo --keep-running``: after its campaign the console stays up, and the URL
and server key it prints sign in."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from tests.console.helpers import csrf
from tests.fanout.conftest import REDIS_URL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_demo_keeps_the_console_running(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    env.update(
        PUSHCORE_DATABASE_URL=database_url, PUSHCORE_REDIS_URL=REDIS_URL, PYTHONUNBUFFERED="1"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushcore", "demo", "--devices", "2000", "--processes", "1",
         "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while not any("Ctrl+C stops it" in line for line in seen):
            assert time.monotonic() < deadline, "".join(seen)[-3000:]
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(seen)[-3000:]
            seen.append(line)
        out = "".join(seen)
        assert "check: every live registration delivered exactly once" in out
        url = re.search(r"The web console: (http://127\.0\.0\.1:\d+/console/)", out)
        key = re.search(r"server key: (pcs_\S+)", out)
        assert url, out
        assert key, out
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            login = await http.get(url.group(1) + "login")
            token = csrf(await login.text())
            signed = await http.post(
                url.group(1) + "login", data={"credential": key.group(1), "csrf_token": token}
            )
            page = await signed.text()
            assert signed.status == 200
            assert "Demo campaign" in page
            assert "Messages of the last 7 days" in page
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
    assert proc.returncode == 0, "".join(seen)[-3000:]
