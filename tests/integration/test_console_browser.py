"""The web console in a real headless Chromium against a real node (``tests.console_world``).

Chromium is Debian's (``apt-get install chromium``), driven by the ``playwright`` package;
``playwright install`` is never run. Without them these tests fail, naming what to install:
CI installs them. Screenshots go to ``$HASHFED_SCREENSHOTS`` (a folder) or ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.console_world import (
    B_HASH,
    EVIDENCE_DETAIL,
    EVIL,
    OWN_COUNT,
    TOKEN,
    A,
    B,
    World,
    build_world,
)

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HASHFED_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install playwright (never 'playwright install')")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def world(make_home, start_node) -> AsyncIterator[World]:  # type: ignore[no-untyped-def]
    world, evil = await build_world(make_home, start_node)
    yield world
    await evil.cleanup()


async def signed_in_page(browser, world: World):  # type: ignore[no-untyped-def]
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(world.console + "/")
    assert page.url.endswith("/login"), "the console must ask for the token first"
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(world.console + "/")
    return page


async def test_login_with_the_token(browser, world: World, shots: Path) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(world.console + "/")
    await page.wait_for_url("**/login")
    await page.fill("#token", "not the token")
    await page.click("button[type=submit]")
    assert "not the node's local token" in await page.inner_text("[role=alert]")
    await page.screenshot(path=shots / "console-login-refused.png")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(world.console + "/")
    cookies = {c["name"]: c for c in await context.cookies()}
    session = cookies["hashfed_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    # the logout form carries the session's CSRF token
    assert len(await page.get_attribute("form.logout input[name=csrf]", "value")) >= 32
    await page.click("form.logout button")
    await page.wait_for_url("**/login")
    await page.goto(world.console + "/browse")
    await page.wait_for_url("**/login")


async def test_overview_shows_lag_evidence_and_hostile_errors_as_text(
    browser, world: World, shots: Path
) -> None:
    page = await signed_in_page(browser, world)
    banner = page.locator("section.evidence")
    assert EVIDENCE_DETAIL in await banner.inner_text()
    color = await banner.evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(179, 45, 46)"  # red
    b_row = page.locator(f"tr[data-peer='{B}']")
    assert (await b_row.locator(".lag-batches").inner_text()).startswith("1")
    assert "b.example/default: 1" in await b_row.locator(".lag-batches").inner_text()
    assert "s" in await b_row.locator(".lag-time").inner_text()
    evil_error = await page.locator(f"tr[data-peer='{EVIL}'] .peer-error").inner_text()
    assert "<script>window.pwned=1</script>" in evil_error  # shown as text
    assert "\\x1b[31mred" in evil_error and "\x1b" not in evil_error  # escape made visible
    assert await page.evaluate("() => window.pwned === undefined")
    assert await page.locator("script").count() == 0
    await page.screenshot(path=shots / "console-overview.png", full_page=True)


async def test_search_a_peer_hash_shows_contributors_and_log_entries(
    browser, world: World, shots: Path
) -> None:
    page = await signed_in_page(browser, world)
    await page.click("text=Search")
    await page.fill("input[name=value]", B_HASH.upper())
    await page.click("form.row button")
    result = page.locator("section.result")
    text = await result.inner_text()
    assert f"{B}/default" in text and "ncmec:a1" in text and "b:first" in text
    entries = result.locator("table").last
    assert f"{B}/default\t0\t" in await entries.inner_text()  # log id, batch index
    await page.screenshot(path=shots / "console-search.png", full_page=True)


async def test_search_shows_a_retraction(browser, world: World) -> None:
    page = await signed_in_page(browser, world)
    await page.goto(world.console + f"/search?type=md5&value={OWN_COUNT:032x}")
    text = await page.inner_text("section.result")
    assert "retracted" in text and "false positive" in text
    entries = await page.locator("section.result table").last.inner_text()
    assert "\tremove" in entries and "\tadd own:x" in entries


async def test_page_through_the_list(browser, world: World, shots: Path) -> None:
    page = await signed_in_page(browser, world)
    await page.goto(world.console + "/browse?contributor=" + A)
    seen: list[str] = []
    for _ in range(5):
        values = await page.locator("table.records code.hash").all_inner_texts()
        seen += values
        if await page.locator("a[rel=next]").count() == 0:
            break
        await page.click("a[rel=next]")
    active_own = OWN_COUNT - 1  # the last one was retracted
    assert len(seen) == active_own and len(set(seen)) == active_own
    assert seen == sorted(seen)
    await page.goto(world.console + "/browse?state=retracted")
    assert await page.locator("table.records code.hash").all_inner_texts() == [f"{OWN_COUNT:032x}"]
    await page.screenshot(path=shots / "console-browse.png", full_page=True)
