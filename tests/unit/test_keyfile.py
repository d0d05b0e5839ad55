"""Unit tests for keys.keyfile: signer key files, mode 0600, never overwritten."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hashfed.keys import ConfigError, KeyFileError, Signer, load_signer, write_signer
from hashfed.keys.keyfile import MAX_KEY_FILE_BYTES

SEED = bytes(range(32))
ORG = "acme.example"
# The Go note signer key of SEED for ORG, written by hand (key hash from test_keys).
KEY_LINE = "PRIVATE+KEY+acme.example+6148f0f7+" + base64.b64encode(b"\x01" + SEED).decode()


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Run with umask 0, so only the code under test decides the mode of what it creates."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _plant(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_write_creates_a_0600_file_in_go_signer_key_format(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "node.key"
    write_signer(path, Signer.from_seed(ORG, SEED))
    assert _mode(path) == 0o600
    assert path.read_text() == KEY_LINE + "\n"


def test_written_key_loads_back_as_the_same_key(tmp_path: Path) -> None:
    signer = Signer.from_seed(ORG, SEED)
    write_signer(str(tmp_path / "node.key"), signer)
    loaded = load_signer(str(tmp_path / "node.key"))
    assert loaded.key_id == signer.key_id
    assert loaded.public_key == signer.public_key
    assert loaded.sign(b"m") == signer.sign(b"m")


def test_generated_key_round_trips(tmp_path: Path) -> None:
    signer = Signer.generate(ORG)
    write_signer(tmp_path / "node.key", signer)
    assert load_signer(tmp_path / "node.key").verifier() == signer.verifier()


def test_write_refuses_to_overwrite_and_leaves_the_file_alone(tmp_path: Path) -> None:
    path = _plant(tmp_path / "node.key", b"precious\n")
    with pytest.raises(KeyFileError, match="already exists"):
        write_signer(path, Signer.generate(ORG))
    assert path.read_bytes() == b"precious\n"


def test_write_refuses_to_follow_a_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "node.key"
    link.symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(KeyFileError):
        write_signer(link, Signer.generate(ORG))
    assert not (tmp_path / "elsewhere.key").exists()


def test_write_into_a_missing_directory_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create"):
        write_signer(tmp_path / "missing" / "node.key", Signer.generate(ORG))


def test_load_accepts_a_key_without_final_newline_and_an_owner_only_mode(tmp_path: Path) -> None:
    path = _plant(tmp_path / "node.key", KEY_LINE.encode(), mode=0o400)
    assert load_signer(path).key_id == "acme.example+6148f0f7"


@pytest.mark.parametrize(
    "mode", [0o640, 0o644, 0o604, 0o660, 0o666, 0o620, 0o602, 0o700 | 0o004], ids=oct
)
def test_load_refuses_a_file_that_group_or_others_can_access(tmp_path: Path, mode: int) -> None:
    path = _plant(tmp_path / "node.key", (KEY_LINE + "\n").encode(), mode=mode)
    with pytest.raises(KeyFileError) as caught:
        load_signer(path)
    message = str(caught.value)
    assert f"key file {path} is readable by group or others (mode {mode:04o}); run chmod 600 {path}" == message


def test_load_refusal_names_mode_0644_as_the_error_says(tmp_path: Path) -> None:
    path = _plant(tmp_path / "node.key", (KEY_LINE + "\n").encode(), mode=0o644)
    with pytest.raises(KeyFileError, match=r"\(mode 0644\); run chmod 600"):
        load_signer(path)


def test_key_file_error_is_a_config_error() -> None:
    assert issubclass(KeyFileError, ConfigError)


def test_load_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    with pytest.raises(KeyFileError, match=f"key file {path} does not exist"):
        load_signer(path)


def test_load_through_a_file_in_the_path_is_a_key_file_error(tmp_path: Path) -> None:
    blocker = _plant(tmp_path / "file", b"x")
    with pytest.raises(KeyFileError, match="cannot open"):
        load_signer(blocker / "node.key")


def test_load_a_directory_is_a_key_file_error(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_signer(directory)


def test_load_a_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "node.key"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_signer(fifo)


def _key_line(payload: bytes) -> bytes:
    return ("PRIVATE+KEY+acme.example+6148f0f7+" + base64.b64encode(payload).decode()).encode()


MALFORMED_FILES = [
    ("empty", b""),
    ("garbage", b"hello\n"),
    ("public_key_instead", b"acme.example+6148f0f7+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4\n"),
    ("wrong_prefix", KEY_LINE.replace("PRIVATE+KEY+", "PRIVATE+KEYS+").encode()),
    ("lower_case_prefix", KEY_LINE.replace("PRIVATE+KEY", "private+key").encode()),
    ("hash_mismatch", KEY_LINE.replace("6148f0f7", "6148f0f8").encode()),
    ("name_mismatch", KEY_LINE.replace("acme.example", "other.example").encode()),
    ("name_not_an_org_id", KEY_LINE.replace("acme.example", "Acme.example").encode()),
    ("bad_base64", (KEY_LINE[:-2] + "!!").encode()),
    ("unknown_algorithm", _key_line(b"\x02" + SEED)),
    ("seed_too_short", _key_line(b"\x01" + SEED[:31])),
    ("seed_too_long", _key_line(b"\x01" + SEED + b"\x00")),
    ("crlf", (KEY_LINE + "\r\n").encode()),
    ("two_newlines", (KEY_LINE + "\n\n").encode()),
    ("second_line", (KEY_LINE + "\n" + KEY_LINE + "\n").encode()),
    ("leading_space", (" " + KEY_LINE).encode()),
    ("not_ascii", b"\xff" + KEY_LINE.encode()),
    ("too_large", (KEY_LINE + "\n").encode() + b"#" * MAX_KEY_FILE_BYTES),
]


@pytest.mark.parametrize("content", [c for _, c in MALFORMED_FILES], ids=[i for i, _ in MALFORMED_FILES])
def test_load_malformed_file_is_a_key_file_error_naming_the_path(tmp_path: Path, content: bytes) -> None:
    path = _plant(tmp_path / "node.key", content)
    with pytest.raises(KeyFileError, match=f"key file {path} "):
        load_signer(path)
