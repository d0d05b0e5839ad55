"""The ``hashfed`` command line, run as a user runs it.

Most tests call ``federation.cli.main([...])`` in-process and read stdout/stderr with
capsys; a few run the real thing in a subprocess (``python -m federation.cli`` and the
installed ``hashfed`` script, with ``HASHFED_HOME``). Errors are one line on stderr, exit 2,
no traceback, and leave the store, the config and the keys exactly as they were.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hashfed.federation.cli import main
from hashfed.federation.cli.progress import progress_bar
from hashfed.federation.home import CONFIG_FILE, DB_FILE, KEYS_DIR, open_home
from hashfed.keys import Signer, Verifier
from tests.helpers import Cli, db_snapshot, md5, sha256

ORG = "a.example"
PEER = "b.example"
PEER_KEY = Signer.from_seed(PEER, bytes(range(32))).vkey()
NEW_KEY = Signer.from_seed("c.example", bytes(range(1, 33))).vkey()


def home_state(home: Path) -> dict:
    """The store's rows, and every other file of the home byte for byte."""
    files = {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.startswith(DB_FILE)
    }
    modes = {name: (home / name).stat().st_mode for name in files}
    return {"db": db_snapshot(home / DB_FILE), "files": files, "modes": modes}


def record(
    value: str, *, active: bool = True, labels=(), contributors=(), opinions=(), retracted_by=(),
    type_: str = "md5",
) -> dict:  # type: ignore[no-untyped-def]
    return {
        "type": type_,
        "value": value,
        "active": active,
        "labels": list(labels),
        "contributors": [{"org": o, "collection": c, "labels": list(ls)} for o, c, ls in contributors],
        "opinions": [{"org": o, "collection": c, "opinion": op} for o, c, op in opinions],
        "retracted_by": [{"org": o, "collection": c} for o, c in retracted_by],
    }


# -- the local list: init, add, remove, opinion, publish, lookup, export, status ---------------


def test_init_prints_the_vkey(cli: Cli) -> None:
    home = open_home(cli.home)
    (vkey,) = [s.vkey() for s in home.signers]
    assert Verifier.from_vkey(vkey).name == ORG
    assert cli.ok("keys", "list") == vkey + "\n"
    assert (cli.home / CONFIG_FILE).is_file() and (cli.home / DB_FILE).is_file()


def test_stage_publish_lookup_export(cli: Cli) -> None:
    upper = "ABCDEF0123456789ABCDEF0123456789"
    value = upper.lower()
    out = cli.ok("add", "md5", f"  {upper} ", "--label", "y:2", "--label", "x:1", "--label", "y:2")
    assert out == f"staged add md5 {value}; run 'hashfed publish' to sign it\n"
    cli.ok("opinion", "md5", md5(2), "false_positive")
    cli.ok("add", "sha256", sha256(3), "--collection", "csam")

    # Staged is not published: the merged list has not seen it.
    code, out, err = cli("lookup", "md5", value)
    assert (code, out, err) == (1, "", f"md5 {value}: not in the merged list\n")

    out = cli.ok("publish")
    assert out == (
        "a.example/csam: size 1 (+1 batches, 1 entries), checkpoint signed\n"
        "a.example/default: size 1 (+1 batches, 2 entries), checkpoint signed\n"
    )
    assert cli.ok("publish") == "nothing to publish\n"

    assert json.loads(cli.ok("lookup", "md5", upper, "--json")) == record(
        value, labels=["x:1", "y:2"], contributors=[(ORG, "default", ["x:1", "y:2"])]
    )
    assert cli.ok("lookup", "md5", value) == (
        f"md5 {value}: active\n  labels: x:1, y:2\n  vouched for by a.example/default [x:1, y:2]\n"
    )
    # An opinion without a contribution: looked up (exit 0, inactive), never exported.
    assert json.loads(cli.ok("lookup", "md5", md5(2), "--json")) == record(
        md5(2), active=False, opinions=[(ORG, "default", "false_positive")]
    )
    assert cli.ok("lookup", "md5", md5(2)) == (
        f"md5 {md5(2)}: inactive (no active contribution)\n  false positive according to a.example/default\n"
    )

    assert cli.ok("export") == (
        "type,value,labels,contributors\n"
        f"md5,{value},x:1;y:2,a.example/default\n"
        f"sha256,{sha256(3)},,a.example/csam\n"
    )
    assert json.loads(cli.ok("export", "--format", "json")) == [
        record(value, labels=["x:1", "y:2"], contributors=[(ORG, "default", ["x:1", "y:2"])]),
        record(sha256(3), type_="sha256", contributors=[(ORG, "csam", [])]),
    ]

    cli.ok("remove", "md5", value)
    cli.ok("publish")
    # Retracted, not forgotten (PROTOCOL §8): lookup shows it inactive and who retracted it;
    # exports leave it out.
    assert json.loads(cli.ok("lookup", "md5", value, "--json")) == record(
        value, active=False, retracted_by=[(ORG, "default")]
    )
    assert cli.ok("lookup", "md5", value) == (
        f"md5 {value}: RETRACTED (no active contribution)\n  retracted by {ORG}/default\n"
    )
    assert cli.ok("export") == f"type,value,labels,contributors\nsha256,{sha256(3)},,a.example/csam\n"


def test_status(cli: Cli) -> None:
    cli.ok("add", "md5", md5(1))
    cli.ok("publish")
    cli.ok("add", "md5", md5(2))
    cli.ok("peer", "add", PEER, "--url", "http://127.0.0.1:9", "--key", PEER_KEY, "--grant", "default")
    status = json.loads(cli.ok("status", "--json"))
    assert status["org"] == ORG
    assert status["keys"] == [s.vkey() for s in open_home(cli.home).signers]
    assert status["logs"] == [
        {"org": ORG, "collection": "default", "own": True, "size": 1, "held": 1, "pending_size": None, "readers": [PEER]}
    ]
    assert status["staged"] == {"default": 1}
    assert status["records"] == {"active": 1, "total": 1}
    assert status["peers"] == [
        {
            "org": PEER,
            "url": "http://127.0.0.1:9",
            "keys": [PEER_KEY],
            "accept_push": False,
            "reads": [f"{ORG}/default"],
            "last_success": None,
            "last_error": None,
        }
    ]
    assert status["evidence"] == []
    text = cli.ok("status")
    assert text.splitlines() == [
        f"org {ORG}",
        "merged list: 1 active records (1 in all)",
        f"staged: 1 entries for {ORG}/default (not yet published)",
        "logs:",
        f"  {ORG}/default: own, size 1; readers: {PEER}",
        "peers:",
        f"  {PEER}: http://127.0.0.1:9",
    ]


# -- import -----------------------------------------------------------------------------


def test_import_forms(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "hashes.csv"
    source.write_text(
        "type,value,labels\n"
        "# a comment\n"
        "\n"
        f"md5, {md5(1).upper()} ,ncmec:a1;  ncmec:b2 ;\n"
        f"sha256,{sha256(2)}\n"
        f'md5,{md5(3)},"x:1;\n y:2"\n'
        f"md5,{md5(4)},\n",
        encoding="utf-8",
    )
    assert cli.ok("import", str(source), "--collection", "csam") == (
        "staged 4 entries for a.example/csam; run 'hashfed publish'\n"
    )
    cli.ok("publish")
    rows = list(csv.reader(io.StringIO(cli.ok("export"))))
    assert rows == [
        ["type", "value", "labels", "contributors"],
        ["md5", md5(1), "ncmec:a1;ncmec:b2", "a.example/csam"],
        ["md5", md5(3), "x:1;y:2", "a.example/csam"],
        ["md5", md5(4), "", "a.example/csam"],
        ["sha256", sha256(2), "", "a.example/csam"],
    ]


def test_import_25000_lines_publishes_3_batches(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    lines = [f"md5,{md5(i)},set:{i % 7}" if i % 2 else f"md5,{md5(i)}" for i in range(25_000)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    assert (
        cli.ok("import", str(source)) == "staged 25000 entries for a.example/default; run 'hashfed publish'\n"
    )
    assert cli.ok("publish") == "a.example/default: size 3 (+3 batches, 25000 entries), checkpoint signed\n"

    rows = list(csv.reader(io.StringIO(cli.ok("export"))))
    assert rows[0] == ["type", "value", "labels", "contributors"]
    assert rows[1:] == [
        ["md5", md5(i), f"set:{i % 7}" if i % 2 else "", "a.example/default"] for i in range(25_000)
    ]
    assert json.loads(cli.ok("status", "--json"))["logs"][0]["size"] == 3


# -- every error: one line, exit 2, nothing changed -----------------------------------------


def _csv(text: str | bytes) -> Callable[[Path], list[str]]:
    def setup(home: Path) -> list[str]:
        path = home.parent / "input.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["import", str(path)]

    return setup


def _args(*argv: str) -> Callable[[Path], list[str]]:
    return lambda home: list(argv)


def _key_0644(home: Path) -> list[str]:
    (key,) = (home / KEYS_DIR).glob("*.key")
    os.chmod(key, 0o644)
    return ["add", "md5", md5(7)]


GOOD = f"md5,{md5(1)},x:1\nsha256,{sha256(2)}\n"

ERRORS: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("unknown hash type", _args("add", "tlsh", md5(1)), "unknown hash type 'tlsh'"),
    ("bad value", _args("add", "md5", "xyz"), "'xyz'"),
    ("value one digit short", _args("add", "md5", md5(1)[1:]), "md5"),
    ("bad label", _args("add", "md5", md5(1), "--label", "Bad Label"), "bad label 'Bad Label'"),
    (
        "17 labels",
        _args("add", "md5", md5(1), *[x for i in range(17) for x in ("--label", f"l:{i}")]),
        "17 labels",
    ),
    ("bad collection", _args("add", "md5", md5(1), "--collection", "CSAM!"), "bad collection 'CSAM!'"),
    (
        "bad opinion",
        _args("opinion", "md5", md5(1), "maybe"),
        "opinion: argument opinion: invalid choice: 'maybe'",
    ),
    ("remove bad value", _args("remove", "md5", "12"), "'12'"),
    ("lookup unknown type", _args("lookup", "tlsh", md5(1)), "unknown hash type 'tlsh'"),
    ("lookup bad value", _args("lookup", "md5", "zz"), "'zz'"),
    ("unknown command", _args("frobnicate"), "invalid choice: 'frobnicate'"),
    (
        "export bad format",
        _args("export", "--format", "xml"),
        "export: argument --format: invalid choice: 'xml'",
    ),
    ("init twice", _args("init", "--org", ORG), "already holds a node"),
    ("key file mode 0644", _key_0644, "readable by group or others (mode 0644); run chmod 600"),
    (
        "malformed CSV line",
        _csv(GOOD + "md5,x,y,z\n"),
        "input.csv:3: expected type,value[,labels], got 4 fields",
    ),
    ("CSV bad value", _csv(GOOD + "\n# c\nmd5,nothex\n"), "input.csv:5: "),
    ("CSV bad label", _csv(GOOD + f"md5,{md5(3)},ok:1;NOT OK\n"), "input.csv:3: bad label 'NOT OK'"),
    ("CSV unknown type", _csv(f"tlsh,{md5(1)}\n"), "input.csv:1: unknown hash type 'tlsh'"),
    (
        "CSV line number after a quoted newline",
        _csv(GOOD + f'md5,{md5(3)},"x:1;\n y:2"\nmd5,bad\n'),
        "input.csv:5: ",
    ),
    ("CSV one field", _csv(GOOD + f"{md5(3)}\n"), "input.csv:3: expected type,value[,labels], got 1 fields"),
    ("CSV not UTF-8", _csv(GOOD.encode() + b"md5,\xff\xfe\n"), "input.csv: not UTF-8 text"),
    (
        "CSV field too large",
        _csv(GOOD + "md5," + "a" * 200_000 + "\n"),
        "input.csv:3: not CSV: field larger than field limit",
    ),
    ("CSV stray quote", _csv(GOOD + f'md5,"{md5(3)}"x\n'), "input.csv:3: not CSV"),
    ("CSV unterminated quote", _csv(GOOD + f'md5,"{md5(3)}\n'), "not CSV: unexpected end of data"),
    (
        "CSV missing file",
        _args("import", "no-such.csv"),
        "cannot read no-such.csv: No such file or directory",
    ),
    (
        "peer add bad vkey",
        _args("peer", "add", PEER, "--key", "b.example+1234+AAAA"),
        "peer b.example: bad key",
    ),
    (
        "peer add another org's key",
        _args("peer", "add", "c.example", "--key", PEER_KEY),
        "the key is for 'b.example'",
    ),
    ("peer add own org", _args("peer", "add", ORG, "--key", PEER_KEY), "own org"),
    ("peer add bad org", _args("peer", "add", "B.EXAMPLE", "--key", PEER_KEY), "bad org id 'B.EXAMPLE'"),
    (
        "peer add ftp URL",
        _args("peer", "add", PEER, "--url", "ftp://b.example", "--key", PEER_KEY),
        "is not an http:// or https:// URL with a host",
    ),
    (
        "peer add URL without host",
        _args("peer", "add", PEER, "--url", "https://", "--key", PEER_KEY),
        "with a host",
    ),
    (
        "peer add URL bad port",
        _args("peer", "add", PEER, "--url", "http://b.example:99999", "--key", PEER_KEY),
        "--url: bad URL",
    ),
    (
        "peer add URL with a space",
        _args("peer", "add", PEER, "--url", "http://b.example/x y", "--key", PEER_KEY),
        "plain base URL",
    ),
    # every argument is checked before the peer is stored
    (
        "peer add bad grant",
        _args("peer", "add", "c.example", "--key", NEW_KEY, "--grant", "ok", "--grant", "Not Valid"),
        "bad collection 'Not Valid'",
    ),
    (
        "peer add without key",
        _args("peer", "add", PEER),
        "peer add: the following arguments are required: --key",
    ),
    (
        "grant to unknown peer",
        _args("grant", "c.example", f"{ORG}/default"),
        "no peer c.example; add it first",
    ),
    ("grant a bad log", _args("grant", PEER, "default"), "LOG must be org/collection"),
    (
        "revoke what was never granted",
        _args("revoke", PEER, f"{ORG}/csam"),
        "has no grant for a.example/csam",
    ),
    ("remove unknown peer", _args("peer", "remove", "c.example"), "no peer c.example"),
    ("pull unknown peer", _args("pull", "c.example"), "no peer c.example with a URL"),
    (
        "remove the only key",
        lambda home: ["keys", "remove", open_home(home).signers[0].key_id],
        "refusing to remove the only signing key",
    ),
]


@pytest.fixture
def populated(cli: Cli) -> Cli:
    """A home with something in every table an error could touch."""
    cli.ok("add", "md5", md5(1), "--label", "x:1")
    cli.ok("publish")
    cli.ok("add", "md5", md5(2))
    cli.ok("peer", "add", PEER, "--key", PEER_KEY, "--grant", "default")
    return cli


@pytest.mark.parametrize(("setup", "message"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_errors_are_one_line_and_change_nothing(
    populated: Cli, setup: Callable[[Path], list[str]], message: str
) -> None:
    argv = setup(populated.home)
    before = home_state(populated.home)
    code, out, err = populated(*argv)
    assert (code, out) == (2, "")
    assert err.startswith("hashfed: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert message in err, err
    assert "Traceback" not in err
    assert home_state(populated.home) == before


HOME_ERRORS: list[tuple[str, Callable[[Path], list[str | None]], str]] = [
    ("no home at all", lambda tmp: [None, "status"], "no node home: pass --home DIR or set HASHFED_HOME"),
    ("home that is not a node", lambda tmp: [str(tmp / "empty"), "status"], "run 'hashfed init' first"),
    (
        "bad org at init",
        lambda tmp: [str(tmp / "new"), "init", "--org", "Not_An_Org"],
        "bad org id 'Not_An_Org'",
    ),
    ("init where a file is", lambda tmp: [str(tmp / "afile"), "init", "--org", "c.example"], "afile is a file, not a folder"),
]


@pytest.mark.parametrize(
    ("make_argv", "message"), [c[1:] for c in HOME_ERRORS], ids=[c[0] for c in HOME_ERRORS]
)
def test_home_errors(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_argv: Callable[[Path], list[str | None]],
    message: str,
) -> None:
    monkeypatch.delenv("HASHFED_HOME", raising=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    home, *argv = make_argv(tmp_path)
    before = sorted((str(p), p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*"))
    code = main((["--home", home] if home else []) + argv)
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith("hashfed: error: ") and err.count("\n") == 1 and message in err, err
    assert sorted((str(p), p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")) == before


def test_a_damaged_store_is_one_line(cli: Cli) -> None:
    (cli.home / DB_FILE).write_bytes(b"not a database, 100 times " * 100)
    for name in (f"{DB_FILE}-wal", f"{DB_FILE}-shm"):
        (cli.home / name).unlink(missing_ok=True)
    code, out, err = cli("status")
    assert (code, out) == (2, "")
    assert err.startswith("hashfed: error: cannot open the store ") and err.count("\n") == 1, err
    assert (cli.home / DB_FILE).read_bytes() == b"not a database, 100 times " * 100


def test_progress_bar_draws_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with progress_bar("import", unit="entries", total=3) as advance:
        advance(3)
    assert capsys.readouterr().err == ""  # captured stderr is not a terminal
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress_bar("import", unit="entries", total=3) as advance:
        advance(3)
    assert "import" in terminal.getvalue()
    monkeypatch.setattr(sys, "stderr", None)  # pythonw, or a daemon with stderr closed
    with progress_bar("import", unit="entries") as advance:
        advance(1)


# -- peers, grants and pull against a real node ------------------------------------------------


def test_peer_grant_revoke_list(cli: Cli) -> None:
    out = cli.ok(
        "peer",
        "add",
        PEER,
        "--url",
        "https://b.example:8443",
        "--key",
        PEER_KEY,
        "--grant",
        "default",
        "--accept-push",
    )
    assert (
        out
        == f"peer {PEER}: 1 key(s); pulls from https://b.example:8443; may read default; may push its logs here\n"
    )
    assert cli.ok("grant", PEER, f"{ORG}/csam") == f"{PEER} may now read {ORG}/csam\n"
    assert cli.ok("peer", "list") == (
        f"{PEER}: https://b.example:8443; accepts push; reads {ORG}/csam, {ORG}/default\n  {PEER_KEY}\n"
    )
    assert cli.ok("revoke", PEER, f"{ORG}/csam") == f"{PEER} may no longer read {ORG}/csam\n"
    # a second run replaces the keys (a rotation: old and new trusted at once)
    rotated = Signer.from_seed(PEER, bytes(32)).vkey()
    out = cli.ok("peer", "add", PEER, "--key", PEER_KEY, "--key", rotated)
    assert out == f"peer {PEER}: 2 key(s)\n"
    listed = cli.ok("peer", "list").splitlines()
    # what was not given again (URL, --accept-push, grants) is kept
    assert listed[0] == f"{PEER}: https://b.example:8443; accepts push; reads {ORG}/default"
    assert sorted(listed[1:]) == sorted([f"  {PEER_KEY}", f"  {rotated}"])
    cli.ok("peer", "remove", PEER)
    assert cli.ok("peer", "list") == ""


async def test_pull_from_a_running_node(cli: Cli, tmp_path: Path, start_node) -> None:  # type: ignore[no-untyped-def]
    """Node A serves; B is set up and pulls entirely through the command line."""
    reader = tmp_path / PEER
    reader_vkey = cli.ok("init", "--org", PEER, home=reader).strip()
    a_vkey = cli.ok("keys", "list").strip()
    cli.ok("peer", "add", PEER, "--key", reader_vkey, "--grant", "default")
    cli.ok("add", "md5", md5(1), "--label", "x:1")
    cli.ok("opinion", "md5", md5(2), "true_positive")
    cli.ok("publish")
    service = await start_node(open_home(cli.home))

    cli.ok("peer", "add", ORG, "--url", service.url, "--key", a_vkey, home=reader)
    code, out, err = await cli.in_thread("pull", ORG, home=reader)
    assert (code, err) == (0, "")
    assert out == f"{ORG}: {ORG}/default: updated 0 -> 1 (2 entries)\n"
    assert json.loads(cli.ok("lookup", "md5", md5(1), "--json", home=reader)) == record(
        md5(1), labels=["x:1"], contributors=[(ORG, "default", ["x:1"])]
    )
    assert cli.ok("export", home=reader) == cli.ok("export")

    code, out, err = await cli.in_thread("pull", home=reader)
    assert (code, out, err) == (0, f"{ORG}: {ORG}/default: up to date at size 1\n", "")
    status = json.loads(cli.ok("status", "--json", home=reader))
    assert [(log["org"], log["own"], log["size"]) for log in status["logs"]] == [(ORG, False, 1)]
    assert status["peers"][0]["last_success"] is not None and status["peers"][0]["last_error"] is None


async def test_pull_failure_is_reported_and_recorded(cli: Cli, tmp_path: Path, start_node) -> None:  # type: ignore[no-untyped-def]
    """A peer that does not know our key answers 401: one line on stderr, exit 2, the
    failure recorded for ``status``, nothing merged."""
    service = await start_node(open_home(cli.home))
    reader = tmp_path / PEER
    cli.ok("init", "--org", PEER, home=reader)
    cli.ok("peer", "add", ORG, "--url", service.url, "--key", cli.ok("keys", "list").strip(), home=reader)
    before = db_snapshot(reader / DB_FILE)["contributions"]
    code, out, err = await cli.in_thread("pull", home=reader)
    assert (code, out) == (2, "")
    assert err.startswith(f"{ORG}: pull failed: ") and err.count("\n") == 1, err
    assert "HTTP 401: unknown key id" in err, err
    status = json.loads(cli.ok("status", "--json", home=reader))
    assert status["peers"][0]["last_error"] and status["peers"][0]["last_success"] is None
    assert db_snapshot(reader / DB_FILE)["contributions"] == before


# -- the real executable ---------------------------------------------------------------------


def _hashfed_script() -> str:
    script = Path(sys.executable).with_name("hashfed")
    found = str(script) if script.exists() else shutil.which("hashfed")
    assert found, "the hashfed entry point is not installed next to this Python"
    return found


def run(
    argv: list[str], *, home: Path | None = None, input: str | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HASHFED_HOME"}
    if home is not None:
        env["HASHFED_HOME"] = str(home)
    return subprocess.run(argv, env=env, input=input, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_python_dash_m(tmp_path: Path) -> None:
    home = tmp_path / "node"
    done = run(
        [sys.executable, "-m", "hashfed.federation.cli", "--home", str(home), "init", "--org", ORG], cwd=tmp_path
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert [s.vkey() for s in open_home(home).signers] == [done.stdout.strip()]
    done = run(
        [sys.executable, "-m", "hashfed.federation.cli", "--home", str(home), "init", "--org", ORG], cwd=tmp_path
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("hashfed: error: ") and done.stderr.count("\n") == 1


def test_entry_point_with_hashfed_home(tmp_path: Path) -> None:
    hashfed = _hashfed_script()
    home = tmp_path / "node"
    assert run([hashfed, "init", "--org", ORG], home=home, cwd=tmp_path).returncode == 0
    done = run([hashfed, "import", "-"], home=home, cwd=tmp_path, input=f"md5,{md5(1)},x:1\nmd5,{md5(2)}\n")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "staged 2 entries for a.example/default; run 'hashfed publish'\n",
        "",
    )
    done = run([hashfed, "publish"], home=home, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")  # no progress bar when stderr is not a terminal
    assert done.stdout == "a.example/default: size 1 (+1 batches, 2 entries), checkpoint signed\n"
    done = run([hashfed, "lookup", "md5", md5(1).upper(), "--json"], home=home, cwd=tmp_path)
    assert done.returncode == 0
    assert json.loads(done.stdout) == record(md5(1), labels=["x:1"], contributors=[(ORG, "default", ["x:1"])])
    done = run([hashfed, "lookup", "md5", md5(3)], home=home, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"md5 {md5(3)}: not in the merged list\n")


def test_entry_point_error_has_no_traceback(tmp_path: Path) -> None:
    hashfed = _hashfed_script()
    home = tmp_path / "node"
    assert run([hashfed, "--home", str(home), "init", "--org", ORG], cwd=tmp_path).returncode == 0
    (key,) = (home / KEYS_DIR).glob("*.key")
    os.chmod(key, 0o644)
    before = home_state(home)
    done = run([hashfed, "--home", str(home), "add", "md5", md5(1)], cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("hashfed: error: key file ") and done.stderr.count("\n") == 1, done.stderr
    assert "chmod 600" in done.stderr and "Traceback" not in done.stderr
    assert home_state(home) == before
    done = run([hashfed, "status"], cwd=tmp_path)  # neither --home nor HASHFED_HOME
    assert (done.returncode, done.stderr) == (
        2,
        "hashfed: error: no node home: pass --home DIR or set HASHFED_HOME\n",
    )


def test_pull_progress_estimates_the_total_from_batches_left() -> None:
    from tqdm import tqdm

    from hashfed.federation.cli.net import _PullEstimate
    from hashfed.federation.cli.progress import Bar

    with tqdm(file=io.StringIO()) as raw:
        estimate = _PullEstimate(Bar(raw))
        estimate(40_000, 4, 6)  # 4 batches of 10,000 done, 6 to go
        assert (raw.total, raw.n) == (100_000, 40_000)
        estimate(25_000, 4, 2)  # smaller batches: the estimate follows
        assert (raw.total, raw.n) == (65_000 + round(65_000 / 8 * 2), 65_000)


def test_bench_takes_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    """The benchmark runs from a checkout (``python -m bench``); it is not installed."""
    from bench.__main__ import main as bench_main

    with pytest.raises(SystemExit) as exited:
        bench_main(["--n", "5"])
    assert exited.value.code == 2
    assert "--n must be at least 10,000" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "99999"], "'99999' is not a port"),
        (["serve", "--local-port", "70000"], "'70000' is not a port"),
        (["serve", "--port", "\u0663"], "'\u0663' is not a port"),
        (["serve", "--port", "\u00b2"], "'\u00b2' is not a port"),
        (["serve", "--port", "9" * 5000], "'99999999999"),
        (["serve", "--public-url", "http://x:99999"], "bad URL"),
        (["serve", "--public-url", "notaurl"], "is not an http:// or https:// URL"),
        (["peer", "add", PEER, "--key", PEER_KEY, "--ca-file", "/nonexistent/ca.pem"], "--ca-file: cannot load"),
    ],
    ids=["port-too-big", "local-port-too-big", "port-arabic-indic-digit", "port-superscript-two",
         "port-5000-digits", "public-url-bad-port", "public-url-not-a-url", "ca-file-missing"],
)
def test_bad_serve_and_peer_arguments_are_one_line(cli: Cli, argv: list[str], message: str) -> None:
    before = home_state(cli.home)
    code, out, err = cli(*argv)
    assert (code, out) == (2, "")
    assert err.startswith("hashfed: error: ") and err.count("\n") == 1 and message in err, err
    assert home_state(cli.home) == before


def test_pdq_lookup_by_hamming_distance(cli: Cli) -> None:
    base = int("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22", 16)
    near = f"{base ^ 0b1:064x}"  # 1 bit away
    far = f"{base ^ (2**40 - 1):064x}"  # 40 bits away
    cli.ok("add", "pdq", near, "--label", "csam")
    cli.ok("add", "pdq", far)
    cli.ok("add", "md5", md5(1))
    cli.ok("publish")
    query = f"{base:064x}".upper()  # normalised like any input
    matches = json.loads(cli.ok("lookup", "pdq", query, "--distance", "31", "--json"))
    assert [(m["distance"], m["value"], m["labels"]) for m in matches] == [(1, near, ["csam"])]
    matches = json.loads(cli.ok("lookup", "pdq", query, "--distance", "40", "--json"))
    assert [(m["distance"], m["value"]) for m in matches] == [(1, near), (40, far)]
    assert cli.ok("lookup", "pdq", query, "--distance", "31").startswith(f"distance 1: pdq {near}: active")
    code, out, err = cli("lookup", "pdq", f"{base ^ ((2**64 - 1) << 100):064x}", "--distance", "31")
    assert (code, out) == (1, "") and "nothing in the merged list within 31 bits" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lookup", "md5", "0" * 32, "--distance", "3"], "--distance is for pdq hashes"),
        (["lookup", "pdq", "0" * 64, "--distance", "65"], "--distance must be from 0 to 64"),
        (["lookup", "pdq", "0" * 64, "--distance", "\u0663"], "--distance must be from 0 to 64 bits, not '\u0663'"),
        (["lookup", "pdq", "0" * 64, "--distance", "\u00b2"], "--distance must be from 0 to 64 bits, not '\u00b2'"),
        (["lookup", "pdq", "0" * 64, "--distance", "9" * 5000], "--distance must be from 0 to 64 bits, not '999"),
    ],
    ids=["not-pdq", "distance-too-big", "distance-arabic-indic-digit", "distance-superscript-two",
         "distance-5000-digits"],
)
def test_bad_distance_lookups(cli: Cli, argv: list[str], message: str) -> None:
    code, out, err = cli(*argv)
    assert (code, out) == (2, "") and err.count("\n") == 1 and message in err
