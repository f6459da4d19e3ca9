"""The demo campaign: every real part of pushcore on this machine, checked end to end.

1. Start the APNs, FCM and Web Push simulators (granian engine, TLS with a fresh CA), the
   API (``pushcore api``) and the workers (``pushcore worker``) as separate processes.
2. Create an app whose credentials point at the simulators; register a few installations
   through the API and bulk-load the rest (COPY) with ~5% dead tokens.
3. Send a broadcast, then a primary-only message to 1,000 users, through the HTTP API,
   with a progress bar; print each message's report.
4. Check the reports against the simulators' own counts: every live registration
   delivered exactly once per message that targeted it, every dead one deleted.
5. Stop everything it started.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from pushcore.config import Settings
from pushcore.demo.seed import Seeded, seed, sim_key

CA_DIR = Path(".local/simulators")
USERS_TARGETED = 1000
READY_TIMEOUT = 60.0


def run(
    settings: Settings, devices: int, processes: int, threads: int, *, keep_running: bool = False
) -> int:
    import uvloop

    if settings.admin_token is None:
        settings = dataclasses.replace(settings, admin_token="demo-" + secrets.token_urlsafe(24))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        ok = runner.run(_campaign(settings, devices, processes, threads, keep_running))
    return 0 if ok else 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(settings: Settings, sims: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    env.update(
        PUSHCORE_DATABASE_URL=settings.database_url,
        PUSHCORE_REDIS_URL=settings.redis_url,
        PUSHCORE_BROKER=settings.broker,
        PUSHCORE_RABBITMQ_URL=settings.rabbitmq_url,
        PUSHCORE_ADMIN_TOKEN=settings.admin_token or "",
        PUSHCORE_CA_FILE=str(sims.ca_file),
        PUSHCORE_APNS_ORIGIN=sims.apns.origin,
        PUSHCORE_APNS_SANDBOX_ORIGIN=sims.apns.origin,
        PUSHCORE_FCM_ORIGIN=sims.fcm.origin,
        PUSHCORE_WEBPUSH_ALLOW_LOOPBACK="true",
        PUSHCORE_LOG_LEVEL="WARNING",
    )
    return env


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_demo() -> None:
    """Runs in each child before it execs: the kernel sends it SIGTERM when the demo dies,
    even by SIGKILL (a test's timeout), so no worker outlives the demo to take the work of
    a later run on the same database.  Linux only; elsewhere a no-op."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Processes:
    """Child processes started by the demo, stopped with SIGTERM (then SIGKILL); they die
    with the demo too (:func:`_die_with_demo`)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self.procs.append(
            subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", "pushcore", *args],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
                # the child is a fresh interpreter that execs at once: no lock to inherit
                preexec_fn=_die_with_demo,  # noqa: PLW1509
            )
        )
        log.close()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                # the main process only: it forwards the signal to its own children (a
                # second SIGTERM makes a Dramatiq worker kill itself instead of stopping)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


async def _campaign(
    settings: Settings, devices: int, processes: int, threads: int, keep_running: bool = False
) -> bool:
    from pushcore.db.pool import create_pool
    from pushcore.gateways.simulators import Simulators

    log_dir = Path(".local/demo")
    log_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before anything runs)
    children = Processes(log_dir)
    async with Simulators.start(engine="granian", ca_dir=CA_DIR) as sims:
        print(
            f"simulators: APNs {sims.apns.origin}, FCM {sims.fcm.origin}, "
            f"Web Push {sims.webpush.origin} (CA {sims.ca_file})"
        )
        env = _env(settings, sims)
        port = _free_port()
        try:
            children.start("api", ["api", "--port", str(port)], env)
            children.start(
                "worker", ["worker", "--processes", str(processes), "--threads", str(threads)], env
            )
            print(
                f"API on http://127.0.0.1:{port}; {processes} worker processes x {threads} "
                f"threads (logs in {log_dir}/)"
            )
            base = f"http://127.0.0.1:{port}"
            pool = await create_pool(settings, max_size=2)
            try:
                async with aiohttp.ClientSession(
                    base_url=base, timeout=aiohttp.ClientTimeout(total=60)
                ) as http:
                    await _wait_ready(http)
                    ok, server_key = await _run_campaign(http, pool, settings, sims, devices)
            finally:
                await pool.close()
            if keep_running:
                await _keep_running(base, server_key, settings)
            return ok
        finally:
            children.stop()


async def _keep_running(base: str, server_key: str, settings: Settings) -> None:
    """Leave everything running for a person to look around, until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"\nThe web console: {base}/console/\n"
        f"  sign in with the demo app's server key: {server_key}\n"
        f"  or the admin token (every app): {settings.admin_token}\n"
        "Everything keeps running; Ctrl+C stops it.",
        flush=True,
    )
    await stop.wait()


async def _wait_ready(http: aiohttp.ClientSession) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            async with http.get("/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("demo: the API did not become ready; see .local/demo/api.log")
        await asyncio.sleep(0.2)


async def _call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    *,
    expect: tuple[int, ...] = (200, 201, 202),
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, path, json=body, headers=headers) as resp:
        answer = await resp.json()
        if resp.status not in expect:
            raise SystemExit(f"demo: {method} {path} -> {resp.status}: {answer}")
        return answer


def _credentials(fcm_origin: str) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from pushcore.providers.credentials import private_key_pem as pem

    return {
        "apns": {
            "team_id": "DEMOTEAM01",
            "key_id": "DEMOKEY001",
            "topic": "com.example.demo",
            "private_key": pem(ec.generate_private_key(ec.SECP256R1())),
        },
        "fcm": {
            "service_account": {
                "type": "service_account",
                "project_id": "pushcore-demo",
                "private_key": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
                "client_email": "sender@pushcore-demo.iam.gserviceaccount.com",
                "token_uri": f"{fcm_origin}/token",
            }
        },
        "webpush": {
            "vapid_private_key": pem(ec.generate_private_key(ec.SECP256R1())),
            "subject": "mailto:ops@example.com",
        },
    }


async def _run_campaign(
    http: aiohttp.ClientSession, pool: Any, settings: Settings, sims: Any, devices: int
) -> tuple[bool, str]:
    """Run and check the campaign; (all checks passed, the app's server key)."""
    admin = settings.admin_token
    app = await _call(
        http, "POST", "/v1/apps", admin, {"name": "Demo campaign", **_credentials(sims.fcm.origin)}
    )
    code, key = app["app_code"], app["server_key"]
    app_id = await pool.fetchval("SELECT id FROM apps WHERE code = $1", code)
    started = time.monotonic()
    seeded = await seed(pool, app_id, devices, sims.webpush.origin)
    print(
        f"registered {seeded.total:,} installations ({seeded.users:,} users, "
        f"{sum(len(s) for s in seeded.dead.values()):,} dead tokens) in "
        f"{time.monotonic() - started:.1f} s"
    )
    for sim in sims:
        await sim.reset_stats()

    broadcast = await _send(
        http,
        code,
        key,
        {"target": {"all": True}, "notification": {"title": "Big sale", "body": "Today only"}},
    )
    report_1 = await _follow(http, code, key, broadcast, "broadcast")
    # who the primary-only message will reach, by the same rule the planner applies
    users = [f"user-{i}" for i in range(1, USERS_TARGETED + 1)]
    reached = await pool.fetch(
        """
        SELECT i.platform, i.token FROM users u JOIN installations i ON i.user_id = u.id
        WHERE u.app_id = $1 AND u.external_id = ANY($2) AND i.push_enabled
          AND i.id = coalesce(u.primary_installation_id,
                              (SELECT max(j.id) FROM installations j
                               WHERE j.user_id = u.id AND j.push_enabled))
        """,
        app_id,
        users,
    )
    second = await _send(
        http,
        code,
        key,
        {
            "target": {"external_user_ids": users},
            "primary_only": True,  # the push: the inbox holds it for the user anyway
            "inbox": {"topic": "orders"},
            "notification": {"title": "Your order shipped"},
        },
    )
    report_2 = await _follow(http, code, key, second, "primary-only to 1,000 users")
    inbox_ok = await _inbox(http, code, key, users=seeded.users, order=second, ordered=len(users))
    expected_second = {(r["platform"], sim_key(r["platform"], r["token"])) for r in reached}
    ok = inbox_ok & await _check(
        pool,
        app_id,
        sims,
        seeded=seeded,
        first=report_1,
        second=report_2,
        expected_second=expected_second,
    )
    return ok, key


async def _inbox(
    http: aiohttp.ClientSession, code: str, key: str, *, users: int, order: str, ordered: int
) -> bool:
    """One inbox-only message to everybody (stored once, nothing pushed), then a user's
    inbox: the two messages, the unread count before and after one is marked seen."""
    news = await _send(
        http,
        code,
        key,
        {
            "target": {"all": True},
            "push": False,
            "inbox": {"topic": "news"},
            "notification": {"title": "New in the shop", "body": "Spring collection"},
        },
    )
    report = await _follow(http, code, key, news, "inbox-only message to every user")
    path = f"/v1/apps/{code}/users/user-1/inbox"
    page = await _call(http, "GET", path, key)
    print(f"  user-1's inbox: {page['count_total']} messages, {page['count_unread']} unread")
    for m in page["messages"]:
        print(f"    [{m['topic']}] {m['notification'].get('title')} (sent {m['sent_at']})")
    seen = await _call(http, "POST", path + "/seen", key, {"message_ids": [news]})
    print(f"  marked the news seen: {seen['count_unread']} unread")
    order_report = await _call(http, "GET", f"/v1/apps/{code}/messages/{order}", key)
    problems = []
    if report["counts"]["inboxed"] != users or report["counts"]["targeted"] != 0:
        problems.append(f"inbox-only message: {report['counts']}")
    if order_report["counts"]["inboxed"] != ordered:
        problems.append(f"order message inboxed {order_report['counts']['inboxed']} of {ordered}")
    if [m["message_id"] for m in page["messages"]] != [news, order]:
        problems.append(f"user-1's inbox holds {page['messages']}")
    if (page["count_unread"], seen["count_unread"]) != (2, 1):
        problems.append(f"unread {page['count_unread']} then {seen['count_unread']}")
    if problems:
        print("INBOX CHECK FAILED:\n  " + "\n  ".join(problems))
    return not problems


async def _send(http: aiohttp.ClientSession, code: str, key: str, body: dict[str, Any]) -> str:
    answer = await _call(http, "POST", f"/v1/apps/{code}/messages", key, body)
    return str(answer["message_id"])


async def _follow(
    http: aiohttp.ClientSession, code: str, key: str, message_id: str, title: str
) -> dict[str, Any]:
    started = time.monotonic()
    while True:
        msg = await _call(http, "GET", f"/v1/apps/{code}/messages/{message_id}", key)
        c = msg["counts"]
        answered = c["targeted"] - c["pending"] - c["retrying"]
        width = 40
        filled = int(width * answered / c["targeted"]) if c["targeted"] else 0
        rate = answered / max(time.monotonic() - started, 1e-6)
        sys.stdout.write(
            f"\r{title}: [{'#' * filled}{'.' * (width - filled)}] "
            f"{answered:,}/{c['targeted']:,} ({rate:,.0f}/s) {msg['status']}   "
        )
        sys.stdout.flush()
        if msg["status"] in ("done", "failed", "cancelled") and c["pending"] == 0:
            break
        await asyncio.sleep(0.5)
    elapsed = time.monotonic() - started
    print(
        f"\n  {title}: {msg['status']} in {elapsed:.1f} s — targeted {c['targeted']:,}, "
        f"delivered {c['delivered']:,}, invalid removed {c['invalid_removed']:,}, "
        f"failed {c['failed']:,}, retrying {c['retrying']:,}"
    )
    if msg["errors"]:
        print(f"  errors: {msg['errors']}")
    result: dict[str, Any] = msg
    return result


async def _check(
    pool: Any,
    app_id: int,
    sims: Any,
    *,
    seeded: Seeded,
    first: dict[str, Any],
    second: dict[str, Any],
    expected_second: set[tuple[str, str]],
) -> bool:
    names = {"ios": sims.apns, "android": sims.fcm, "web": sims.webpush}
    problems: list[str] = []
    live_total = sum(len(s) for s in seeded.live.values())
    dead_total = sum(len(s) for s in seeded.dead.values())
    if first["counts"]["delivered"] != live_total:
        problems.append(f"broadcast delivered {first['counts']['delivered']} of {live_total}")
    if first["counts"]["invalid_removed"] != dead_total:
        problems.append(f"broadcast removed {first['counts']['invalid_removed']} of {dead_total}")
    if second["counts"]["delivered"] != len(expected_second):
        problems.append(
            f"second message delivered {second['counts']['delivered']} of {len(expected_second)}"
        )
    for platform, sim in names.items():
        stats = await sim.fetch_stats(with_tokens=True)
        tokens = stats.get("tokens", {})
        for token in seeded.live[platform]:
            want = 1 + ((platform, token) in expected_second)
            got = tokens.get(token, {}).get("accepted", 0)
            if got != want:
                problems.append(f"{platform} …{token[-8:]} accepted {got} times, expected {want}")
                break
    remaining = await pool.fetchval("SELECT count(*) FROM installations WHERE app_id = $1", app_id)
    if remaining != live_total:
        problems.append(f"{remaining} installations left, expected the {live_total} live ones")
    if problems:
        print("CHECK FAILED:\n  " + "\n  ".join(problems))
        return False
    print(
        f"check: every live registration delivered exactly once per message "
        f"({live_total:,} + {len(expected_second):,}), all {dead_total:,} dead ones "
        f"deleted, the simulators agree"
    )
    return True
