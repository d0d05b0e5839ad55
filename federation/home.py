"""A node's home folder: ``config.toml``, ``keys/*.key`` (0600), and ``hashfed.db``.

    DIR/
      config.toml        settings (federation.config)
      keys/NNNN-<hash>.key  the org's signing keys, numbered in creation order; all of
                         them sign every checkpoint, the oldest signs requests, so a
                         rotation holds two until peers trust the new one
      hashfed.db         the store (federation.store), WAL mode

Everything in it is the org's own: the folder is made 0700 and its files 0600, whatever
the umask (``config.toml`` holds the lookup listener's token, the store holds what peers
shared in confidence), and ``serve`` refuses a home that group or others can read
(``require_private``), as ``keys.keyfile`` refuses a key file.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from hashfed.federation.config import NodeConfig, load_config, render_config
from hashfed.federation.store import Store
from hashfed.keys import Signer
from hashfed.keys.errors import ConfigError
from hashfed.keys.keyfile import load_signer, write_signer
from hashfed.keys.names import check_org

CONFIG_FILE = "config.toml"
KEYS_DIR = "keys"
DB_FILE = "hashfed.db"


@dataclass(frozen=True)
class Home:
    path: Path
    config: NodeConfig
    signers: tuple[Signer, ...]

    @property
    def org(self) -> str:
        return self.config.org

    @property
    def db_path(self) -> Path:
        return self.path / DB_FILE

    def open_store(self) -> Store:
        return Store(self.db_path)


def init_home(path: Path, org: str) -> Signer:
    """Make a new home: folder, config, a fresh key and an empty store. All or nothing:
    if any step fails, what it made is removed, so the same command can simply be rerun."""
    check_org(org)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file, not a folder")
    if (path / CONFIG_FILE).exists():
        raise ConfigError(f"{path} already holds a node (found {CONFIG_FILE})")
    if any((path / KEYS_DIR).glob("*.key")):
        # Left by a config deleted by hand: a new key next to them would make a node
        # with keys of two identities.
        raise ConfigError(f"{path / KEYS_DIR} already holds signing keys; refusing to add another")
    made: list[Path] = []  # only what this call created, removed again if it fails
    try:
        for folder in (path, path / KEYS_DIR):
            if not folder.exists():
                folder.mkdir(mode=0o700, parents=True)
                made.append(folder)
            os.chmod(folder, 0o700)  # exact, whatever the umask, and for a folder given empty
        signer, key_file = _write_new_key(path, org)
        made.append(key_file)
        db = path / DB_FILE
        if not db.exists():
            made += [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        Store(db).close()  # the store creates a new file 0600 (and SQLite its -wal, -shm)
        config_path = path / CONFIG_FILE
        made.append(config_path)
        _write_private(config_path, render_config(org).encode("utf-8"))
    except BaseException:
        for item in reversed(made):
            if item.is_dir() and not item.is_symlink():
                item.rmdir()
            else:
                item.unlink(missing_ok=True)
        raise
    return signer


def _write_private(path: Path, data: bytes) -> None:
    """Write a new file readable by its owner only (0600 from its first byte)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)  # the umask may only narrow the mode; make it exact
        file.write(data)


def require_private(path: Path) -> None:
    """ConfigError (one line, with the fix) if group or others can read the home folder,
    its config or its store: for ``serve``, which holds them open for as long as it runs."""
    for item in (path, path / CONFIG_FILE, *(path / f"{DB_FILE}{end}" for end in ("", "-wal", "-shm"))):
        try:
            mode = stat.S_IMODE(item.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            fix = "700" if item == path else "600"
            raise ConfigError(
                f"{item} is readable by group or others (mode {mode:04o}); run chmod {fix} {item}"
            )


# Key files are named "<sequence>-<key hash>.key": the sequence keeps their creation order
# (the oldest signs requests) however the folder is copied, which file times would not.
_KEY_NAME = re.compile(r"(\d{4,})-[0-9a-f]{8}\.key")


def _write_new_key(path: Path, org: str) -> tuple[Signer, Path]:
    keys_dir = path / KEYS_DIR
    numbers = [int(m.group(1)) for f in keys_dir.glob("*.key") if (m := _KEY_NAME.fullmatch(f.name))]
    signer = Signer.generate(org)
    key_file = keys_dir / f"{max(numbers, default=0) + 1:04d}-{signer.key_hash.hex()}.key"
    write_signer(key_file, signer)
    return signer, key_file


def add_key(path: Path, org: str) -> Signer:
    """Generate a key for ``org`` and write it 0600 under ``keys/``, after the others."""
    return _write_new_key(path, org)[0]


def _load_keys(keys_dir: Path) -> list[tuple[Path, Signer]]:
    """Every key file with its signer, oldest first (by the sequence in the name)."""
    files = sorted(keys_dir.glob("*.key")) if keys_dir.is_dir() else []
    return [(f, load_signer(f)) for f in files]


def remove_key(path: Path, key_id: str) -> None:
    """Delete a signing key (after a rotation); the last key cannot be removed."""
    open_home(path)  # the home must be sound before a key goes
    keys = _load_keys(path / KEYS_DIR)
    matches = [f for f, signer in keys if signer.key_id == key_id]
    if not matches:
        raise ConfigError(f"no signing key {key_id}; 'hashfed keys list' shows them")
    if len(keys) == 1:
        raise ConfigError("refusing to remove the only signing key")
    os.remove(matches[0])


def open_home(path: Path) -> Home:
    """Load config and keys; ConfigError (one clear line) when anything is off."""
    config = load_config(path / CONFIG_FILE)
    keys_dir = path / KEYS_DIR
    # Oldest key first: it signs requests (``signers[0]``), since during a rotation every
    # peer still trusts it until 'keys remove' retires it; every key signs checkpoints.
    signers = tuple(signer for _file, signer in _load_keys(keys_dir))
    if not signers:
        raise ConfigError(f"no signing key in {keys_dir}")
    for signer in signers:
        if signer.name != config.org:
            raise ConfigError(f"key {signer.key_id} is for {signer.name}, not {config.org}")
    return Home(path=path, config=config, signers=signers)
