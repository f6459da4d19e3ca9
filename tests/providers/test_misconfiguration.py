"""Misconfiguration answers: the simulators answer a wrong FCM project, APNs topic or key
environment as the real services do, and the providers mark the dead-token ones
``suspect`` (for the send path's deletion safety valve) and nothing else.  Pure: the
simulators' ``handle`` and the providers' ``classify``, no sockets."""

from __future__ import annotations

import json

import pytest

from pushcore.fanout import valve
from pushcore.gateways import fates
from pushcore.gateways.apns import ApnsOptions, ApnsSimulator
from pushcore.gateways.core import SimRequest, SimResponse
from pushcore.gateways.fcm import FcmOptions, FcmSimulator
from pushcore.providers.apns import ApnsProvider
from pushcore.providers.base import Outcome, Result
from pushcore.providers.credentials import ApnsCredentials, FcmCredentials
from pushcore.providers.fcm import FcmProvider
from pushcore.transport.base import Response
from tests.gateways.helpers import apns_headers

SCOPE = ["https://www.googleapis.com/auth/firebase.messaging"]


def _response(answer: SimResponse) -> Response:
    return Response(answer.status, headers=dict(answer.headers), body=answer.body)


def _fcm_send(sim: FcmSimulator, project: str, token: str) -> SimResponse:
    auth = {"authorization": f"Bearer {sim.mint_access_token('sa@x', SCOPE)}"}
    body = json.dumps({"message": {"token": token}}).encode()
    return sim.handle(SimRequest("POST", f"/v1/projects/{project}/messages:send", auth, body))


def _apns_send(sim: ApnsSimulator, token: str, **headers: str) -> SimResponse:
    return sim.handle(SimRequest("POST", f"/3/device/{token}", apns_headers(**headers), b"{}"))


def test_fcm_simulator_answers_sender_id_mismatch_for_another_project(
    fcm_credentials: FcmCredentials,
) -> None:
    provider = FcmProvider(fcm_credentials)
    sim = FcmSimulator(FcmOptions(project="right"))
    live, dead = fates.fcm_token(1), fates.fcm_token(2, fates.Fate.DEAD)
    assert _fcm_send(sim, "right", live).status == 200
    assert _fcm_send(sim, "right", dead).status == 404
    for token in (live, dead):
        answer = _fcm_send(sim, "wrong", token)
        assert answer.status == 403
        result = provider.classify(_response(answer))
        assert (result.outcome, result.reason, result.suspect) == (
            Outcome.INVALID,
            "SENDER_ID_MISMATCH",
            True,
        )
    unregistered = provider.classify(_response(_fcm_send(sim, "right", dead)))
    assert (unregistered.outcome, unregistered.suspect) == (Outcome.INVALID, False)
    # without a project every project is the right one, as before
    assert _fcm_send(FcmSimulator(), "anything", live).status == 200


def test_apns_simulator_answers_device_token_not_for_topic(
    apns_credentials: ApnsCredentials,
) -> None:
    provider = ApnsProvider(apns_credentials)
    sim = ApnsSimulator(ApnsOptions(device_topic="com.example.app"))
    live, dead = fates.apns_token(1), fates.apns_token(2, fates.Fate.DEAD)
    assert _apns_send(sim, live).status == 200
    voip = _apns_send(sim, live, **{"apns-topic": "com.example.app.voip"})
    assert voip.status == 200  # the same app's VoIP topic
    for token in (live, dead):
        answer = _apns_send(sim, token, **{"apns-topic": "com.example.other"})
        result = provider.classify(_response(answer))
        assert (answer.status, result.reason, result.outcome, result.suspect) == (
            400,
            "DeviceTokenNotForTopic",
            Outcome.INVALID,
            True,
        )
    bad = provider.classify(_response(_apns_send(sim, fates.apns_token(3, fates.Fate.INVALID))))
    assert (bad.reason, bad.suspect) == ("BadDeviceToken", True)  # also a wrong environment
    gone = provider.classify(_response(_apns_send(sim, dead)))
    assert (gone.reason, gone.outcome, gone.suspect) == ("Unregistered", Outcome.INVALID, False)


def test_apns_simulator_answers_bad_environment_key_as_a_sender_error(
    apns_credentials: ApnsCredentials,
) -> None:
    provider = ApnsProvider(apns_credentials)
    sim = ApnsSimulator(ApnsOptions(sandbox_keys=["KEY1234567"]))  # the helpers' key id
    answer = _apns_send(sim, fates.apns_token(1))
    result = provider.classify(_response(answer))
    assert (answer.status, result.reason, result.outcome, result.suspect) == (
        403,
        "BadEnvironmentKeyInToken",
        Outcome.SENDER_ERROR,
        False,
    )
    assert _apns_send(ApnsSimulator(ApnsOptions(sandbox_keys=["OTHER"])), "ab" * 32).status == 200


@pytest.mark.parametrize(
    ("suspect", "registrations", "share", "minimum", "expected"),
    [
        (51, 100, 0.5, 100, True),
        (50, 100, 0.5, 100, False),  # "more than" the share
        (99, 99, 0.5, 100, False),  # too few answers to judge
        (1000, 1000, 1.0, 100, False),  # share 1: the valve is off
        (1, 100, 0.0, 100, True),
    ],
)
def test_valve_rule(
    suspect: int, registrations: int, share: float, minimum: int, expected: bool
) -> None:
    assert valve.tripped(suspect, registrations, share=share, minimum=minimum) is expected


def test_valve_counts_only_suspect_answers() -> None:
    results = [
        Result(Outcome.INVALID, "SENDER_ID_MISMATCH", suspect=True),
        Result(Outcome.INVALID, "SENDER_ID_MISMATCH", suspect=True),
        Result(Outcome.INVALID, "UNREGISTERED"),
        Result(Outcome.DELIVERED, "ok"),
    ]
    assert valve.suspect_reasons(results) == {"SENDER_ID_MISMATCH": 2}
