"""Tests for mailstats.tracking.tokens: the wire format, round trips and rejection."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstats.tracking.tokens import MAX_ID, Purpose, Signer, new_secret

SECRET = b"0123456789abcdef0123456789abcdef"
SIGNER = Signer(SECRET)

destination_ids = st.integers(min_value=1, max_value=MAX_ID)
link_ids = st.integers(min_value=0, max_value=MAX_ID)
purposes = st.sampled_from(Purpose)
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def forge(payload: bytes, purpose: Purpose = Purpose.CLICK, secret: bytes = SECRET) -> str:
    """Build a correctly signed token around any payload, canonical or not."""
    mac = hmac.new(secret, purpose.value.encode() + payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")


def test_wire_format_is_varints_then_truncated_hmac() -> None:
    payload = varint(300) + varint(5)
    assert payload == b"\xac\x02\x05"
    assert SIGNER.sign(Purpose.CLICK, 300, 5) == forge(payload)


def test_known_token_stays_stable() -> None:
    # Tokens already sent in mail must keep verifying after any refactoring.
    assert SIGNER.sign(Purpose.OPEN, 1) == forge(b"\x01\x00", Purpose.OPEN)
    assert Signer(b"k" * 32).sign(Purpose.CLICK, 42, 7) == "KgcDx8VAnOq6J5iMH_8"


@given(purposes, destination_ids, link_ids)
def test_round_trip(purpose: Purpose, destination_id: int, link_id: int) -> None:
    token = SIGNER.sign(purpose, destination_id, link_id)
    assert SIGNER.verify(purpose, token) == (destination_id, link_id)
    assert len(token) <= 48
    assert set(token) <= set(B64_ALPHABET)


def test_largest_ids_fit_in_48_characters() -> None:
    token = SIGNER.sign(Purpose.UNSUBSCRIBE, MAX_ID, MAX_ID)
    assert len(token) == 40
    assert SIGNER.verify(Purpose.UNSUBSCRIBE, token) == (MAX_ID, MAX_ID)


def test_link_id_defaults_to_zero() -> None:
    assert SIGNER.verify(Purpose.OPEN, SIGNER.sign(Purpose.OPEN, 9)) == (9, 0)


@given(destination_ids, link_ids)
def test_token_of_another_purpose_is_rejected(destination_id: int, link_id: int) -> None:
    token = SIGNER.sign(Purpose.CLICK, destination_id, link_id)
    assert SIGNER.verify(Purpose.OPEN, token) is None
    assert SIGNER.verify(Purpose.UNSUBSCRIBE, token) is None


def test_token_of_another_secret_is_rejected() -> None:
    token = Signer(new_secret()).sign(Purpose.CLICK, 1, 1)
    assert SIGNER.verify(Purpose.CLICK, token) is None


@given(
    purposes,
    destination_ids,
    link_ids,
    st.integers(min_value=0),
    st.characters(codec="utf-8"),
)
def test_any_single_character_change_never_yields_another_pair(
    purpose: Purpose, destination_id: int, link_id: int, index: int, char: str
) -> None:
    token = SIGNER.sign(purpose, destination_id, link_id)
    at = index % len(token)
    altered = token[:at] + char + token[at + 1 :]
    assert SIGNER.verify(purpose, altered) in (None, (destination_id, link_id))
    if altered != token:
        assert SIGNER.verify(purpose, altered) is None


@given(purposes, destination_ids, link_ids, st.integers(min_value=0))
def test_truncated_token_is_rejected(
    purpose: Purpose, destination_id: int, link_id: int, length: int
) -> None:
    token = SIGNER.sign(purpose, destination_id, link_id)
    assert SIGNER.verify(purpose, token[: length % len(token)]) is None


@given(purposes, destination_ids, link_ids, st.text(min_size=1, max_size=4))
def test_extended_token_is_rejected(
    purpose: Purpose, destination_id: int, link_id: int, extra: str
) -> None:
    token = SIGNER.sign(purpose, destination_id, link_id)
    assert SIGNER.verify(purpose, token + extra) is None


@given(st.text(max_size=60))
def test_verify_never_raises(text: str) -> None:
    assert SIGNER.verify(Purpose.CLICK, text) is None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t + "=", id="padding"),
        pytest.param(lambda t: t + "==", id="double-padding"),
        pytest.param(lambda t: t.replace("-", "+").replace("_", "/"), id="standard-alphabet"),
        pytest.param(lambda t: t[:5] + "\n" + t[5:], id="newline"),
        pytest.param(lambda t: t[:5] + "é" + t[6:], id="non-ascii"),
        pytest.param(lambda t: " " + t, id="leading-space"),
    ],
)
def test_malformed_encodings_are_rejected(mangle: Callable[[str], str]) -> None:
    token = SIGNER.sign(Purpose.CLICK, 4_000_000, 12_345)
    assert "-" in token or "_" in token  # so the alphabet case changes something
    altered = mangle(token)
    assert altered != token
    assert SIGNER.verify(Purpose.CLICK, altered) is None


def test_unused_low_bits_in_last_character_are_rejected() -> None:
    token = SIGNER.sign(Purpose.CLICK, 1, 0)
    assert len(token) == 19  # 14 bytes leave two unused bits in the last character
    last = B64_ALPHABET.index(token[-1])
    altered = token[:-1] + B64_ALPHABET[last ^ 1]
    decoded = base64.urlsafe_b64decode(altered + "=")
    assert decoded == base64.urlsafe_b64decode(token + "=")
    assert SIGNER.verify(Purpose.CLICK, altered) is None


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x81\x00\x00", id="padded-destination"),
        pytest.param(b"\x01\x80\x00", id="padded-link"),
        pytest.param(b"\x01\x00\x00", id="trailing-byte"),
        pytest.param(b"\x00\x00", id="destination-zero"),
        pytest.param(b"\x01", id="missing-link"),
        pytest.param(b"\x01\x81", id="truncated-link"),
        pytest.param(b"\xff" * 9 + b"\x01\x00", id="destination-over-63-bits"),
        pytest.param(b"\x01" + b"\x80" * 9 + b"\x00", id="ten-byte-link"),
    ],
)
def test_correctly_signed_non_canonical_payloads_are_rejected(payload: bytes) -> None:
    assert SIGNER.verify(Purpose.CLICK, forge(payload)) is None


def test_canonical_forged_payload_verifies() -> None:
    # The counterpart of the test above: forge() itself produces accepted tokens.
    assert SIGNER.verify(Purpose.CLICK, forge(b"\x81\x01\x00")) == (129, 0)


@pytest.mark.parametrize(
    ("destination_id", "link_id"),
    [(0, 0), (-1, 0), (1, -1), (MAX_ID + 1, 0), (1, MAX_ID + 1)],
)
def test_sign_rejects_ids_out_of_range(destination_id: int, link_id: int) -> None:
    with pytest.raises(ValueError, match="_id must be between"):
        SIGNER.sign(Purpose.CLICK, destination_id, link_id)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        Signer(b"")


def test_new_secret_is_32_fresh_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert len(first) == 32
    assert isinstance(first, bytes)
    assert first != second
