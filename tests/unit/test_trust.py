"""Unit tests for keys.trust: trusted orgs, key lookup, read rights."""

from __future__ import annotations

import dataclasses

import pytest

from hashfed.keys import ConfigError, Signer, TrustedOrg, TrustStore, Verifier

ACME_OLD = Signer.from_seed("acme.example", bytes(range(32))).verifier()
ACME_NEW = Signer.from_seed("acme.example", bytes(range(1, 33))).verifier()
NGO = Signer.from_seed("ngo.example", bytes(range(2, 34))).verifier()
STRANGER = Signer.from_seed("stranger.example", bytes(range(3, 35))).verifier()


def _store() -> TrustStore:
    return TrustStore(
        [
            TrustedOrg("acme.example", (ACME_OLD, ACME_NEW), readable=frozenset()),
            TrustedOrg("ngo.example", (NGO,), readable=frozenset({"acme.example/csam"}), accept_push=True),
        ]
    )


def test_lookup_by_org() -> None:
    store = _store()
    acme = store.get("acme.example")
    assert acme is not None and acme.org == "acme.example"
    assert store.get("stranger.example") is None
    assert store.verifiers_for("acme.example") == (ACME_OLD, ACME_NEW)
    assert store.verifiers_for("stranger.example") == ()


def test_lookup_by_key_id_finds_each_rotation_key() -> None:
    store = _store()
    assert store.by_key_id(ACME_OLD.key_id) == ACME_OLD
    assert store.by_key_id(ACME_NEW.key_id) == ACME_NEW
    assert store.by_key_id(NGO.key_id) == NGO
    assert store.by_key_id(STRANGER.key_id) is None
    assert store.by_key_id("acme.example+00000000") is None


def test_iteration_length_membership_and_org_list() -> None:
    store = _store()
    assert len(store) == 2
    assert [t.org for t in store] == ["acme.example", "ngo.example"] == list(store.orgs())
    assert "ngo.example" in store and "stranger.example" not in store
    assert len(TrustStore([])) == 0


MAY_READ = [
    ("own_log", "acme.example", "acme.example/csam", True),
    ("own_other_collection", "acme.example", "acme.example/other", True),
    ("granted", "ngo.example", "acme.example/csam", True),
    ("not_granted_collection", "ngo.example", "acme.example/other", False),
    ("not_granted_at_all", "acme.example", "ngo.example/csam", False),
    ("unknown_reader", "stranger.example", "acme.example/csam", False),
    # The org of a log may always read it (PROTOCOL §6); authentication already needed its key.
    ("unknown_reader_own_log", "stranger.example", "stranger.example/csam", True),
    ("org_id_prefix_is_not_the_org", "acme", "acme.example/csam", False),
    ("log_id_without_collection", "acme.example", "acme.example", False),
    ("log_id_with_two_slashes", "acme.example", "acme.example/csam/x", False),
    ("log_id_bad_collection", "acme.example", "acme.example/CSAM", False),
]


@pytest.mark.parametrize(
    ("reader", "log_id", "expected"), [c[1:] for c in MAY_READ], ids=[c[0] for c in MAY_READ]
)
def test_may_read(reader: str, log_id: str, expected: bool) -> None:
    assert _store().may_read(reader, log_id) is expected


def test_trusted_org_coerces_collections_and_is_frozen() -> None:
    trusted = TrustedOrg("acme.example", [ACME_OLD], readable={"ngo.example/csam"})  # type: ignore[arg-type]
    assert trusted.verifiers == (ACME_OLD,)
    assert trusted.readable == frozenset({"ngo.example/csam"})
    assert isinstance(trusted.readable, frozenset)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trusted.accept_push = True  # type: ignore[misc]


BAD_ORGS = [
    ("bad_org_id", lambda: TrustedOrg("Acme.example", (ACME_OLD,))),
    ("key_of_another_org", lambda: TrustedOrg("acme.example", (ACME_OLD, NGO))),
    ("same_key_twice", lambda: TrustedOrg("acme.example", (ACME_OLD, ACME_OLD))),
    ("not_a_verifier", lambda: TrustedOrg("acme.example", (ACME_OLD.vkey(),))),  # type: ignore[arg-type]
    ("readable_not_a_log_id", lambda: TrustedOrg("acme.example", (ACME_OLD,), readable=frozenset({"acme"}))),
    ("readable_given_as_a_string", lambda: TrustedOrg("acme.example", (), readable="ngo.example/csam")),  # type: ignore
    ("accept_push_not_bool", lambda: TrustedOrg("acme.example", (ACME_OLD,), accept_push="yes")),  # type: ignore
    (
        "duplicate_org",
        lambda: TrustStore([TrustedOrg("acme.example", (ACME_OLD,)), TrustedOrg("acme.example", (ACME_NEW,))]),
    ),
    ("not_a_trusted_org", lambda: TrustStore([ACME_OLD])),  # type: ignore[list-item]
]


@pytest.mark.parametrize("build", [b for _, b in BAD_ORGS], ids=[i for i, _ in BAD_ORGS])
def test_bad_trust_configuration_is_a_config_error(build: object) -> None:
    with pytest.raises(ConfigError):
        build()  # type: ignore[operator]


def test_an_org_without_keys_yet_is_allowed_and_has_none() -> None:
    store = TrustStore([TrustedOrg("ngo.example", ())])
    assert store.verifiers_for("ngo.example") == () and store.by_key_id(NGO.key_id) is None


def test_verifier_name_mismatch_names_the_key() -> None:
    with pytest.raises(ConfigError, match="ngo.example"):
        TrustedOrg("acme.example", (Verifier.from_vkey(NGO.vkey()),))
