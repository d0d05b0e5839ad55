"""A node's home folder: ``config.toml``, ``keys/*.key`` (0600), and ``hashfed.db``.

    DIR/
      config.toml        settings (federation.config)
      keys/<hash>.key    the org's signing keys; all of them sign every checkpoint, so a
                         rotation holds two until peers trust the new one
      hashfed.db         the store (federation.store), WAL mode
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keys import Signer
from keys.errors import ConfigError
from keys.keyfile import load_signer, write_signer
from protocol.names import check_org

from .config import NodeConfig, load_config, render_config
from .store import Store

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
    """Make a new home: folder, config, a fresh key and an empty store."""
    check_org(org)
    if (path / CONFIG_FILE).exists():
        raise ConfigError(f"{path} already holds a node (found {CONFIG_FILE})")
    if any((path / KEYS_DIR).glob("*.key")):
        # Left by an init that failed half-way, or a config deleted by hand: a new key next
        # to them would make a node with keys of two identities.
        raise ConfigError(f"{path / KEYS_DIR} already holds signing keys; refusing to add another")
    path.mkdir(parents=True, exist_ok=True)
    keys_dir = path / KEYS_DIR
    keys_dir.mkdir(mode=0o700, exist_ok=True)
    signer = add_key(path, org)
    config_path = path / CONFIG_FILE
    config_path.write_text(render_config(org), encoding="utf-8")
    Store(path / DB_FILE).close()
    return signer


def add_key(path: Path, org: str) -> Signer:
    """Generate a key for ``org`` and write it 0600 under ``keys/``."""
    signer = Signer.generate(org)
    write_signer(path / KEYS_DIR / f"{signer.key_hash.hex()}.key", signer)
    return signer


def remove_key(path: Path, key_id: str) -> None:
    """Delete a signing key (after a rotation); the last key cannot be removed."""
    home = open_home(path)
    matches = [s for s in home.signers if s.key_id == key_id]
    if not matches:
        raise ConfigError(f"no signing key {key_id}; 'hashfed keys list' shows them")
    if len(home.signers) == 1:
        raise ConfigError("refusing to remove the only signing key")
    os.remove(path / KEYS_DIR / f"{matches[0].key_hash.hex()}.key")


def open_home(path: Path) -> Home:
    """Load config and keys; ConfigError (one clear line) when anything is off."""
    config = load_config(path / CONFIG_FILE)
    keys_dir = path / KEYS_DIR
    # Oldest key first: it signs requests (``signers[0]``), since during a rotation every
    # peer still trusts it until 'keys remove' retires it; every key signs checkpoints.
    files = (
        sorted(keys_dir.glob("*.key"), key=lambda f: (f.stat().st_mtime_ns, f.name))
        if keys_dir.is_dir()
        else []
    )
    if not files:
        raise ConfigError(f"no signing key in {keys_dir}")
    signers = tuple(load_signer(f) for f in files)
    for signer in signers:
        if signer.name != config.org:
            raise ConfigError(f"key {signer.key_id} is for {signer.name}, not {config.org}")
    return Home(path=path, config=config, signers=signers)
