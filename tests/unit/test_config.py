"""The node's configuration (``config.toml``) and home folder: what ``init`` writes loads
back to the defaults, and every mistake is one ConfigError naming the file and the field;
nothing is coerced or silently dropped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hashfed.federation.config import (
    LimitsConfig,
    NodeConfig,
    PullConfig,
    ServerConfig,
    load_config,
    render_config,
)
from hashfed.federation.home import (
    CONFIG_FILE,
    DB_FILE,
    KEYS_DIR,
    add_key,
    init_home,
    open_home,
    remove_key,
)
from hashfed.keys import Signer
from hashfed.keys.errors import ConfigError, KeyFileError, ProtocolError, StoreError
from hashfed.keys.keyfile import write_signer
from tests.helpers import db_snapshot


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / CONFIG_FILE
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_the_rendered_config_loads_to_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, render_config("acme.example")))
    assert config == NodeConfig(org="acme.example")
    assert config.default_collection == "default"
    assert config.server == ServerConfig() and config.limits == LimitsConfig() and config.pull == PullConfig()


def test_the_commented_defaults_are_the_real_defaults(tmp_path: Path) -> None:
    """Uncommenting every ``# name = value`` line under [limits] and [pull] changes nothing:
    the file documents the defaults the code uses."""
    text = render_config("acme.example")
    head, _, tail = text.partition("[limits]")
    uncommented = re.sub(r"^# (\w+ = )", r"\1", tail, flags=re.M)
    assert uncommented.count(" = ") == len(LimitsConfig.model_fields) + len(PullConfig.model_fields)
    assert load_config(write(tmp_path, head + "[limits]" + uncommented)) == NodeConfig(org="acme.example")


def test_settings_are_read(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            'org = "acme.example"\ndefault_collection = "csam"\n'
            '[server]\nport = 0\npublic_urls = ["https://hashfed.acme.example"]\nlocal_port = 8471\n'
            'local_token = "s3cret"\n'
            "[limits]\nmax_body_bytes = 4096\n"
            "[pull]\ninterval_s = 1\npage_batches = 2\n",
        )
    )
    assert config.default_collection == "csam"
    assert config.server.public_urls == ("https://hashfed.acme.example",)
    assert (config.server.port, config.server.local_port, config.server.local_token) == (0, 8471, "s3cret")
    assert config.limits.max_body_bytes == 4096
    assert (config.pull.interval_s, config.pull.page_batches) == (1.0, 2)
    with pytest.raises(Exception, match="frozen"):
        config.org = "other.example"  # type: ignore[misc]


ORG = 'org = "acme.example"\n'

BAD_CONFIGS: list[tuple[str, str | bytes, str]] = [
    ("unknown top-level key", ORG + 'colection = "csam"\n', "colection: Extra inputs are not permitted"),
    ("unknown key in [limits]", ORG + "[limits]\nmax_body_byte = 1\n", "limits.max_body_byte: Extra inputs"),
    ("unknown section", ORG + "[peers]\nb = 1\n", "peers: Extra inputs"),
    ("org missing", 'default_collection = "csam"\n', "org: Field required"),
    ("bad org", 'org = "Acme Example"\n', "bad org id 'Acme Example'"),
    ("bad default collection", ORG + 'default_collection = "CSAM!"\n', "bad collection 'CSAM!'"),
    (
        "port out of range",
        ORG + "[server]\nport = 70000\n",
        "server.port: Input should be less than or equal to 65535",
    ),
    ("negative port", ORG + "[server]\nlocal_port = -1\n", "server.local_port"),
    ("port as text", ORG + '[server]\nport = "8470"\n', "server.port: Input should be a valid integer"),
    ("port as a boolean", ORG + "[server]\nlocal_port = true\n", "server.local_port"),
    ("zero interval", ORG + "[pull]\ninterval_s = 0\n", "pull.interval_s: Input should be greater than 0"),
    ("number as text", ORG + '[pull]\ntimeout_s = "120"\n', "pull.timeout_s: Input should be a valid number"),
    (
        "empty lookup token",
        ORG + '[server]\nlocal_token = ""\n',
        "server.local_token: String should have at least 1",
    ),
    (
        "public URL without scheme",
        ORG + '[server]\npublic_urls = ["hashfed.example"]\n',
        "is not an http:// or https:// URL",
    ),
    (
        "public URL without host",
        ORG + '[server]\npublic_urls = ["https://"]\n',
        "is not an http:// or https:// URL",
    ),
    ("public URL with bad port", ORG + '[server]\npublic_urls = ["https://h.example:99999"]\n', "bad URL"),
    ("public URLs not a list", ORG + '[server]\npublic_urls = "https://h.example"\n', "server.public_urls"),
    ("not TOML", ORG + "[server\n", "cannot read"),
    ("not UTF-8", b'org = "\xff"\n', "cannot read"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_configs_are_one_clear_error(tmp_path: Path, text: str | bytes, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert type(caught.value) is ConfigError
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_config_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run 'hashfed init' first"):
        load_config(tmp_path / CONFIG_FILE)


# -- the home folder ----------------------------------------------------------------------


def test_init_makes_a_home(tmp_path: Path) -> None:
    home_path = tmp_path / "node"
    signer = init_home(home_path, "acme.example")
    home = open_home(home_path)
    assert home.org == "acme.example"
    assert [s.vkey() for s in home.signers] == [signer.vkey()]
    (key_file,) = (home_path / KEYS_DIR).iterdir()
    assert (key_file.stat().st_mode & 0o777, (home_path / KEYS_DIR).stat().st_mode & 0o777) == (0o600, 0o700)
    assert home.db_path == home_path / DB_FILE and home.db_path.exists()


def _leftover_key(path: Path) -> None:
    (path / KEYS_DIR).mkdir(parents=True)
    write_signer(path / KEYS_DIR / "old.key", Signer.generate("old.example"))


BAD_INITS = [
    ("bad org", "Acme", None, ProtocolError, "bad org id 'Acme'"),
    (
        "init twice",
        "acme.example",
        lambda p: init_home(p, "acme.example"),
        ConfigError,
        "already holds a node",
    ),
    ("keys left behind", "acme.example", _leftover_key, ConfigError, "already holds signing keys"),
]


@pytest.mark.parametrize(
    ("org", "setup", "error", "message"), [c[1:] for c in BAD_INITS], ids=[c[0] for c in BAD_INITS]
)
def test_init_refuses(tmp_path: Path, org: str, setup, error: type[Exception], message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "node"
    if setup is not None:
        setup(path)
    before = sorted(
        (p.relative_to(tmp_path), p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")
    )
    with pytest.raises(error, match=message):
        init_home(path, org)
    after = sorted(
        (p.relative_to(tmp_path), p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")
    )
    assert after == before


def _key_mode_0644(path: Path) -> None:
    (key,) = (path / KEYS_DIR).glob("*.key")
    os.chmod(key, 0o644)


def _no_key(path: Path) -> None:
    for key in (path / KEYS_DIR).glob("*.key"):
        key.unlink()


def _key_of_another_org(path: Path) -> None:
    write_signer(path / KEYS_DIR / "other.key", Signer.generate("other.example"))


BAD_HOMES = [
    ("key file readable by others", _key_mode_0644, KeyFileError, "readable by group or others (mode 0644)"),
    ("no key", _no_key, ConfigError, "no signing key in"),
    ("key of another org", _key_of_another_org, ConfigError, "is for other.example, not acme.example"),
    ("config removed", lambda p: (p / CONFIG_FILE).unlink(), ConfigError, "no config at"),
]


@pytest.mark.parametrize(
    ("damage", "error", "message"), [c[1:] for c in BAD_HOMES], ids=[c[0] for c in BAD_HOMES]
)
def test_open_home_refuses(tmp_path: Path, damage, error: type[Exception], message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "node"
    init_home(path, "acme.example")
    damage(path)
    before = db_snapshot(path / DB_FILE)
    with pytest.raises(error) as caught:
        open_home(path)
    assert type(caught.value) is error and message in str(caught.value)
    assert db_snapshot(path / DB_FILE) == before


def test_key_rotation(tmp_path: Path) -> None:
    path = tmp_path / "node"
    old = init_home(path, "acme.example")
    with pytest.raises(ConfigError, match="refusing to remove the only signing key"):
        remove_key(path, old.key_id)
    new = add_key(path, "acme.example")
    # Both sign checkpoints; the oldest signs requests, since every peer still trusts it
    # until it is removed. The order is the files' sequence, not their times or hashes.
    assert sorted(p.name.split("-")[0] for p in (path / "keys").glob("*.key")) == ["0001", "0002"]
    for key_file in (path / "keys").glob("*.key"):
        os.utime(key_file, ns=(1, 1) if key_file.name.startswith("0002") else (2**40, 2**40))
    assert [s.key_id for s in open_home(path).signers] == [old.key_id, new.key_id]
    with pytest.raises(ConfigError, match="no signing key acme.example\\+00000000"):
        remove_key(path, "acme.example+00000000")
    remove_key(path, old.key_id)
    assert [s.key_id for s in open_home(path).signers] == [new.key_id]


def test_init_that_fails_half_way_leaves_nothing_behind(tmp_path: Path) -> None:
    """A failed init removes what it made, so the same command can be rerun."""
    path = tmp_path / "node"
    path.mkdir()
    (path / DB_FILE).mkdir()  # the store cannot be made: a folder is in its place
    with pytest.raises(StoreError):
        init_home(path, "acme.example")
    assert sorted(p.name for p in path.iterdir()) == [DB_FILE]  # our key gone, theirs kept
    (path / DB_FILE).rmdir()
    init_home(path, "acme.example")
    assert len(open_home(path).signers) == 1
