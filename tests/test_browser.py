"""The web site in a real browser (Debian's Chromium through Playwright), with no network.

Every page of both editions is opened from file:// and from a static web server on 127.0.0.1.
Every request that would leave the machine is aborted and counted: the count must be 0. On each
page: the math is typeset by the site's own MathJax in its STIX web fonts with no raw TeX left, every
image has loaded, and the previous / next / index links lead to the right pages (the top bar is
clicked from file://, the bottom bar from the server). A full-page screenshot of each page goes to
tests/artifacts/screenshots/<edition>/<page>.png (taken from the server; tests/artifacts/ is git-ignored).
"""
from __future__ import annotations

import re

import nbformat
import pytest

from _browser import ARTIFACTS, BUILT, NetworkGuard, StaticServer, built_site, require_chromium, shared_browser

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "screenshots"
PAGES = ([("", "index")] + [(e, "index") for e in ("student", "instructor")]
         + [(e, a.id) for e in ("student", "instructor") for a in BUILT])
IDS = [f"{e or 'site'}/{p}" for e, p in PAGES]
ORDER = [a.id for a in BUILT]


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    require_chromium()
    return built_site(tmp_path_factory)[0]


@pytest.fixture(scope="session")
def http_base(site):
    server = StaticServer(site)
    yield server.url
    server.close()


@pytest.fixture(scope="session")
def browser(request):
    return shared_browser(request)


def lesson_math(assignment_id: str) -> tuple[bool, bool]:
    """(has math, uses \\mathbb) according to the lesson's markdown."""
    a = next(a for a in BUILT if a.id == assignment_id)
    text = "\n".join(c.source for c in nbformat.read(a.source, as_version=4).cells if c.cell_type == "markdown")
    return bool(re.search(r"\$[^$\n]+\$", text)), "\\mathbb" in text


STATS_JS = r"""() => {
  const prose = Array.from(document.querySelectorAll('.jp-RenderedMarkdown')).map(el => {
    const c = el.cloneNode(true);
    c.querySelectorAll('pre, code, script, style').forEach(x => x.remove());
    return c.innerText;
  }).join('\n');
  const hc = window.MathJax && MathJax.OutputJax && MathJax.OutputJax['HTML-CSS'];
  return {
    formulas: document.querySelectorAll('.MathJax, mjx-container').length,
    displays: document.querySelectorAll('.MathJax_Display, mjx-container[display="true"]').length,
    tex: document.querySelectorAll('script[type^="math/tex"]').length,
    errors: document.querySelectorAll('.MathJax .merror, .MathJax .noError, .MathJax_Error, mjx-merror').length,
    prose: prose,
    fontInUse: hc ? hc.fontInUse : null,
    fonts: Array.from(document.fonts).filter(f => f.status === 'loaded').map(f => f.family.replace(/"/g, '')),
    images: Array.from(document.images).map(i => ({src: i.src.slice(0, 40), w: i.naturalWidth, h: i.naturalHeight})),
    title: document.title,
  };
}"""


def open_page(browser, url: str, wait_until: str = "load"):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    guard = NetworkGuard().attach(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until=wait_until)
    return context, page, guard, errors


def wait_for_math(page):
    page.wait_for_function("() => window.MathJax && MathJax.isReady", timeout=30_000)
    page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")
    page.evaluate("() => document.fonts.ready.then(() => true)")


def click_to(page, selector: str, expected: str):
    """Click a link, check that it leads to the page at the URL ``expected``, and come back."""
    here = page.url
    link = page.locator(selector).first
    link.wait_for(state="visible", timeout=15_000)
    link.click(no_wait_after=True)
    page.wait_for_url(expected, timeout=15_000, wait_until="commit")
    assert page.url == expected
    page.goto(here, wait_until="commit")


@pytest.mark.parametrize("edition,name", PAGES, ids=IDS)
def test_page(browser, site, http_base, edition, name):
    """One page, from file:// and from http://127.0.0.1 (both load at once; checked one after the other)."""
    rel = f"{edition}/{name}.html" if edition else f"{name}.html"
    bases = {"file": site.as_uri(), "http": http_base}
    opened = {}
    try:
        for mode, base in bases.items():
            opened[mode] = open_page(browser, f"{base}/{rel}", wait_until="commit")
        for mode, (context, page, guard, errors) in opened.items():
            check_page(page, guard, errors, bases[mode], mode, edition, name)
    finally:
        for context, *_ in opened.values():
            context.close()


def check_page(page, guard, errors, base, mode, edition, name):
    rel = f"{edition}/{name}.html" if edition else f"{name}.html"
    where = f"{rel} ({mode})"
    page.wait_for_load_state("load")
    lesson = name != "index"
    if lesson:
        wait_for_math(page)
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=15_000)
    stats = page.evaluate(STATS_JS)

    # Math: typeset by the site's MathJax, in its web fonts, with no TeX left in the prose.
    if lesson:
        has_math, has_mathbb = lesson_math(name)
        if has_math:
            assert stats["formulas"] > 0, f"{where}: no typeset formula"
            assert stats["formulas"] == stats["tex"], f"{where}: {stats['tex']} formulas found, {stats['formulas']} typeset"
        assert stats["errors"] == 0, f"{where}: {stats['errors']} formulas failed to typeset"
        assert stats["fontInUse"] == "STIX-Web", f"{where}: MathJax uses {stats['fontInUse']} fonts, not STIX-Web"
        if has_math:
            assert "STIXMathJax_Main" in stats["fonts"], f"{where}: MathJax web fonts did not load: {stats['fonts']}"
        if has_mathbb:
            assert "STIXMathJax_DoubleStruck" in stats["fonts"], f"{where}: \\mathbb is not in its double-struck font"
    prose = stats["prose"]
    for raw in ("$$", "\\frac", "\\begin", "\\end{", "\\mathbb", "\\times", "\\sum"):
        assert raw not in prose, f"{where}: raw TeX {raw!r} left in the text"
    leftover = re.findall(r"\$[A-Za-z\\({]\S{0,20}", prose)
    assert not leftover, f"{where}: raw TeX left in the text: {leftover[:5]}"

    # Figures.
    broken = [i for i in stats["images"] if i["w"] == 0]
    assert not broken, f"{where}: images that did not load: {broken}"
    if lesson:
        assert stats["images"], f"{where}: a lesson with no figure?"

    # The screenshot (from the server; file:// renders the same, as the checks above show).
    if mode == "http":
        shot = SHOTS / (edition or "site") / f"{name}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    loading_failures = list(guard.failed)

    # Links. (Leaving a page while it still loads cancels its requests: net::ERR_ABORTED.)
    if not edition:
        for e in ("student", "instructor"):
            click_to(page, f"ul.course-editions a[href='{e}/index.html']", f"{base}/{e}/index.html")
            click_to(page, f"ol.course-lessons a[href='{e}/{ORDER[-1]}.html']", f"{base}/{e}/{ORDER[-1]}.html")
    elif name == "index":
        click_to(page, f"ol.course-lessons a[href='{ORDER[0]}.html']", f"{base}/{edition}/{ORDER[0]}.html")
        click_to(page, f"ol.course-lessons a[href='{ORDER[-1]}.html']", f"{base}/{edition}/{ORDER[-1]}.html")
        click_to(page, "a[href='../index.html']", f"{base}/index.html")
    else:
        k = ORDER.index(name)
        assert page.locator("nav.course-nav").count() == 2, f"{where}: no nav bar at the top and the bottom"
        assert page.locator("nav.course-nav a[rel=prev]").count() == (2 if k > 0 else 0)
        assert page.locator("nav.course-nav a[rel=next]").count() == (2 if k + 1 < len(ORDER) else 0)
        # Both bars have the same links (test_site checks the hrefs); each is clicked once per page:
        # the top bar from file://, the bottom bar from the web server.
        nav = "nav.course-nav." + ("top" if mode == "file" else "bottom")
        if k > 0:
            click_to(page, f"{nav} a[rel=prev]", f"{base}/{edition}/{ORDER[k - 1]}.html")
        if k + 1 < len(ORDER):
            click_to(page, f"{nav} a[rel=next]", f"{base}/{edition}/{ORDER[k + 1]}.html")
        click_to(page, f"{nav} a[rel=index]", f"{base}/{edition}/index.html")
        if mode == "http":
            click_to(page, ".course-banner a[href='../index.html']", f"{base}/index.html")

    assert not errors, f"{where}: JavaScript errors: {errors}"
    assert guard.blocked == [], f"{where}: {len(guard.blocked)} requests left the machine: {guard.blocked[:5]}"
    assert loading_failures == [], f"{where}: requests that failed: {loading_failures[:5]}"
    later = [f for f in guard.failed[len(loading_failures):] if not f.endswith("net::ERR_ABORTED")]
    assert later == [], f"{where}: requests that failed on the linked pages: {later[:5]}"


def test_the_guard_really_blocks_the_network(browser, site):
    """A control: a page that asks for a CDN script is blocked and counted (so a 0 above means something)."""
    probe = site / "_probe.html"
    probe.write_text('<!DOCTYPE html><script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/require.min.js">'
                     '</script><img src="http://example.org/x.png"><p>probe</p>')
    try:
        context, page, guard, _ = open_page(browser, probe.as_uri())
        context.close()
        assert len(guard.blocked) == 2, guard.blocked
    finally:
        probe.unlink()
