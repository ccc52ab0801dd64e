"""The console's built pages (gateway/console/static, made by `make console` from console/)
as the strict CSP needs them: nothing inline, nothing from another origin, no eval; every
asset the page names is shipped."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "gateway" / "console" / "static"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if "style" in named or any(k.startswith("on") for k in named):
            self.inline.append(f"<{tag}> with {sorted(named)}")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = "src" not in named
        for key in ("src", "href"):
            if named.get(key):
                self.refs.append(str(named[key]))

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("<script> body")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def test_the_built_page_has_nothing_inline_and_only_its_own_assets() -> None:
    page = _Page()
    page.feed((STATIC / "index.html").read_text())
    assert page.inline == []
    refs = [r for r in page.refs if not r.startswith("#")]
    assert all(r.startswith("/console/") for r in refs), refs  # same origin, the console's
    assets = [r for r in refs if "." in r.rsplit("/", 1)[-1]]  # not page routes
    assert any(r.endswith(".js") for r in assets) and any(r.endswith(".css") for r in assets)
    for ref in assets:
        assert (STATIC / ref.removeprefix("/console/")).is_file(), ref


def test_the_scripts_use_no_eval_and_name_their_worklets() -> None:
    scripts = {p.name: p.read_text() for p in (STATIC / "assets").glob("*.js")}
    assert len([n for n in scripts if "worklet" in n]) == 2  # capture and player
    for name, text in scripts.items():
        assert not re.search(r"\beval\(|new Function\(", text), name
        assert "http://" not in text and "https://" not in text, name  # no CDN
    [main] = [t for n, t in scripts.items() if n.startswith("index-")]
    for worklet in (n for n in scripts if "worklet" in n):
        assert f"/console/assets/{worklet}" in main
