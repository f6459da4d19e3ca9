"""``python -m pushcore.gateways`` (= ``pushcore simulators``) as a real process."""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
import sys
from pathlib import Path

import httpx
import pytest

from pushcore.gateways import fates
from tests.gateways.helpers import apns_headers

LINE = re.compile(r"^(apns|fcm|webpush) (https://127\.0\.0\.1:\d+) ca=(\S+)$")


@pytest.mark.parametrize("engine", ["h2", "granian"])
async def test_cli_prints_origins_serves_and_stops_on_sigterm(ca_dir: Path, engine: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pushcore.gateways", "--engine", engine, "--ca-dir", str(ca_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [
            (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip() for _ in range(3)
        ]
        found = {m[1]: (m[2], m[3]) for m in map(LINE.match, lines) if m}
        assert set(found) == {"apns", "fcm", "webpush"}, lines
        origin, ca_file = found["apns"]
        assert Path(ca_file) == (ca_dir / "ca.pem").resolve()
        verify = ssl.create_default_context(cafile=ca_file)
        async with httpx.AsyncClient(http2=True, verify=verify) as client:
            r = await client.post(f"{origin}/3/device/{fates.apns_token(1)}",
                                  headers=apns_headers(), content=b"{}")  # fmt: skip
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    "args", [["--apns-port", "70000"], ["--engine", "nginx"], ["--latency", "-1"]]
)
async def test_cli_bad_arguments_exit_2(args: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pushcore.gateways", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"usage:" in err


async def test_cli_port_in_use_exits_1(ca_dir: Path) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pushcore.gateways", "--engine", "h2",
            "--ca-dir", str(ca_dir), "--fcm-port", str(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 1
        assert b"address already in use" in err.lower()
    finally:
        server.close()
        await server.wait_closed()


def test_register_adds_the_simulators_command() -> None:
    import argparse

    from pushcore.gateways.cli import register, run

    parser = argparse.ArgumentParser(prog="pushcore")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulators", "--engine", "h2", "--apns-port", "0"])
    assert (args.handler, args.engine, args.host) == (run, "h2", "127.0.0.1")


@pytest.mark.parametrize(
    "args",
    [["--goaway-after", "3"], ["--refuse-connections"], ["--max-concurrent-streams", "5"]],
)
async def test_cli_connection_faults_need_the_h2_engine(args: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pushcore.gateways", "--engine", "granian", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"pushcore simulators:" in err


def test_fault_flags_build_the_fault_set() -> None:
    import argparse

    from pushcore.gateways.cli import _faults, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = (
        "--engine h2 --refuse-connections --goaway-after 5 --goaway-first --rst-fraction 0.1"
        " --rst-code 7 --rst-limit 2 --drop-after 9 --max-concurrent-streams 4 --error-every 3"
        " --error-status 503"
    )
    args = parser.parse_args(flags.split(" "))
    faults, tf = _faults(args)
    assert (faults.refuse_connections, faults.error_every, faults.error_status) == (True, 3, 503)
    assert (tf.goaway_after, tf.rst_fraction, tf.rst_code, tf.drop_after) == (5, 0.1, 7, 9)
    assert (tf.goaway_first, tf.rst_limit, tf.max_concurrent_streams) == (True, 2, 4)
