"""``POST /v1/match`` on the local listener: a real node, real listener on 127.0.0.1, real
SQLite, real worker processes. Answers as ``hashfed match --json``; bad uploads are
named cases with their status and problem type, and nothing is ever stored."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from hashfed.federation.home import Home
from hashfed.federation.http.match import MAX_MATCH_BODY
from hashfed.media import HashOptions, hash_bytes
from hashfed.protocol.entries import Entry
from tests.helpers import Reply, assert_problem, db_snapshot, send, stage_and_publish
from tests.unit.media_images import photo
from tests.unit.test_media_inputs import BAD
from tests.unit.test_media_video import changing_frames, write_clip

ORG = "a.example"


def _jpeg(seed: int, *, size: tuple[int, int] = (320, 240), quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    photo(seed, size).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _pdq(data: bytes) -> str:
    result = hash_bytes(data, "x", HashOptions())
    assert result.ok and result.pdq is not None
    return result.pdq.value


ORIGINAL, RETRACTED, DISPUTED = _jpeg(1), _jpeg(5), _jpeg(6)


@pytest.fixture
def home(make_home) -> Home:  # type: ignore[no-untyped-def]
    home = make_home(ORG)
    stage_and_publish(home, [
        Entry.add("pdq", _pdq(ORIGINAL), ["ncmec:a1"]),
        Entry.add("md5", hash_bytes(ORIGINAL, "x", HashOptions()).md5, ["ncmec:a1"]),
        Entry.add("pdq", _pdq(RETRACTED), ["x:1"]),
        Entry.add("pdq", _pdq(DISPUTED), ["x:2"]),
    ])
    stage_and_publish(home, [
        Entry.remove("pdq", _pdq(RETRACTED)),
        Entry.opine("pdq", _pdq(DISPUTED), "false_positive"),
    ])
    return home


async def _match(api, body: bytes, content_type: str = "image/jpeg", query: str = ""):  # type: ignore[no-untyped-def]
    session, url = api
    return await send(session, url, "POST", "/v1/match", query=query, body=body,
                      headers={"Content-Type": content_type})


def _reencoded(data: bytes, *, size: tuple[int, int] | None = None, mirror: bool = False) -> bytes:
    image = Image.open(io.BytesIO(data))
    if size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    if mirror:
        image = ImageOps.mirror(image)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=60)
    return buffer.getvalue()


async def test_an_edited_copy_matches_as_match_json_says(api) -> None:  # type: ignore[no-untyped-def]
    reply = await _match(api, _reencoded(ORIGINAL, size=(200, 150)), "image/webp")
    assert reply.status == 200, reply
    found = reply.json()
    assert found["path"] == "upload" and found["matched"] is True
    (match,) = found["matches"]
    assert match["matched_by"] == "pdq" and 0 < match["distance"] <= 31
    assert match["state"] == "active"
    assert match["record"]["value"] == _pdq(ORIGINAL) and match["record"]["labels"] == ["ncmec:a1"]


async def test_the_same_bytes_match_exactly_first(api) -> None:  # type: ignore[no-untyped-def]
    found = (await _match(api, ORIGINAL)).json()
    assert [(m["matched_by"], m["distance"]) for m in found["matches"]] == [("md5", 0), ("pdq", 0)]


async def test_an_unrelated_picture_matches_nothing(api) -> None:  # type: ignore[no-untyped-def]
    reply = await _match(api, _jpeg(77))
    assert reply.status == 200
    assert reply.json()["matched"] is False and reply.json()["matches"] == []


@pytest.mark.parametrize(("data", "state", "matched"), [(RETRACTED, "retracted", False), (DISPUTED, "disputed", True)],
                         ids=["retracted", "disputed"])
async def test_retracted_and_disputed_are_said(api, data: bytes, state: str, matched: bool) -> None:  # type: ignore[no-untyped-def]
    found = (await _match(api, data)).json()
    (match,) = found["matches"]
    assert (match["state"], found["matched"]) == (state, matched)


async def test_dihedral_names_the_variant(api) -> None:  # type: ignore[no-untyped-def]
    mirrored = _reencoded(ORIGINAL, mirror=True)
    assert (await _match(api, mirrored, "image/webp")).json()["matches"] == []
    found = (await _match(api, mirrored, "image/webp", "dihedral=1")).json()
    (match,) = found["matches"]
    assert match["variant"] == "flipy" and match["distance"] <= 31


async def test_a_video_matches_by_its_seconds(api, home: Home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    frames = changing_frames(3, 10)
    clip = write_clip(tmp_path / "clip.webm", frames, codec="libvpx-vp9").read_bytes()
    still = io.BytesIO()
    Image.fromarray(frames[20]).save(still, "PNG")
    stage_and_publish(home, [Entry.add("pdq", _pdq(still.getvalue()), ["v:1"])])
    reply = await _match(api, clip, "video/webm")
    assert reply.status == 200, reply
    (match,) = reply.json()["matches"]
    assert [f["seconds"] for f in match["frames"]] == [2.0]


async def test_distance_zero_is_exact_pdq_only(api) -> None:  # type: ignore[no-untyped-def]
    reply = await _match(api, _reencoded(ORIGINAL, size=(200, 150)), "image/webp", "distance=0")
    assert reply.status == 200 and reply.json()["matches"] == []


def _bad_bytes(case: str, tmp_path: Path) -> bytes:
    make, _ = BAD[case]
    return make(tmp_path).read_bytes()


# Bad uploads: the media cases of the CLI's table (paths that are not files have no upload).
MEDIA_CASES = [c for c in BAD if c not in {"symlink-loop-of-files", "broken-symlink", "missing-path", "fifo"}]


@pytest.mark.parametrize("case", MEDIA_CASES, ids=MEDIA_CASES)
async def test_bad_media_is_422_with_the_clis_message(api, home: Home, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    before = db_snapshot(home.db_path)
    reply = await _match(api, _bad_bytes(case, tmp_path), "video/mp4")
    problem = assert_problem(reply, 422, "bad-media")
    assert problem["detail"] == BAD[case][1]
    assert db_snapshot(home.db_path) == before


BAD_REQUESTS = {
    "text/plain": ("text/plain", "", 415, "unsupported-media-type"),
    "no-content-type": ("", "", 415, "unsupported-media-type"),
    "json": ("application/json", "", 415, "unsupported-media-type"),
    "distance-65": ("image/jpeg", "distance=65", 400, "malformed"),
    "distance-not-a-number": ("image/jpeg", "distance=x", 400, "malformed"),
    "distance-twice": ("image/jpeg", "distance=1&distance=2", 400, "malformed"),
    "dihedral-yes": ("image/jpeg", "dihedral=yes", 400, "malformed"),
    "unknown-parameter": ("image/jpeg", "fast=1", 400, "malformed"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
async def test_bad_requests(api, home: Home, case: str) -> None:  # type: ignore[no-untyped-def]
    content_type, query, status, slug = BAD_REQUESTS[case]
    before = db_snapshot(home.db_path)
    session, url = api
    headers = {"Content-Type": content_type} if content_type else {}
    reply = await send(session, url, "POST", "/v1/match", query=query, body=ORIGINAL, headers=headers)
    assert_problem(reply, status, slug)
    assert db_snapshot(home.db_path) == before


async def test_a_body_over_the_cap_is_413(api, home: Home) -> None:  # type: ignore[no-untyped-def]
    before = db_snapshot(home.db_path)
    session, url = api
    body = io.BytesIO(b"\xff\xd8\xff" + b"\x00" * MAX_MATCH_BODY)
    async with session.post(f"{url}/v1/match", data=body, headers={"Content-Type": "image/jpeg"}) as response:
        reply = Reply(response.status, response.headers.copy(), await response.read())
    assert_problem(reply, 413, "content-too-large")
    assert db_snapshot(home.db_path) == before


async def test_a_wrong_content_type_is_refused_before_the_body_is_invited(api) -> None:  # type: ignore[no-untyped-def]
    session, url = api
    reply = await send(session, url, "POST", "/v1/match", body=b"x" * 10,
                       headers={"Content-Type": "text/plain", "Expect": "100-continue"})
    assert_problem(reply, 415, "unsupported-media-type")
