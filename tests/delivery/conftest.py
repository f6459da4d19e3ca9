"""APNs credentials whose public key the simulator trusts, and a transport factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushcore.gateways.apns import ApnsOptions
from pushcore.gateways.simulators import Simulators
from pushcore.providers.apns import ApnsTokenSigner
from pushcore.providers.credentials import ApnsCredentials
from pushcore.transport.aioapns_backend import AioapnsTransport

KEY_ID = "KEY1234567"
TOPIC = "com.example.app"
TransportFactory = Callable[[Simulators], AioapnsTransport]


@pytest.fixture(scope="session")
def apns_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def credentials(apns_key: ec.EllipticCurvePrivateKey) -> ApnsCredentials:
    pem = apns_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return ApnsCredentials(team_id="ABCDE12345", key_id=KEY_ID, private_key=pem, topic=TOPIC)


@pytest.fixture(scope="session")
def apns_options(apns_key: ec.EllipticCurvePrivateKey) -> ApnsOptions:
    """The simulator verifies JWT signatures only when it is given the public keys."""
    public = apns_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ApnsOptions(keys={KEY_ID: public.decode()}, topics=[TOPIC])


@pytest.fixture(scope="session")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("delivery-ca")  # certificate generation is the slow part


@pytest.fixture
async def make_transport(credentials: ApnsCredentials) -> AsyncIterator[TransportFactory]:
    made: list[AioapnsTransport] = []

    def make(sims: Simulators) -> AioapnsTransport:
        transport = AioapnsTransport(
            topic=credentials.topic,
            signer=ApnsTokenSigner.from_credentials(credentials),
            origin=sims.apns.origin,
            ca_file=str(sims.ca_file),
            connections=2,
            max_in_flight=200,
        )
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.aclose()
