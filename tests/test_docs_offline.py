"""The documentation site works offline: every script, style sheet and font it loads is served by the site itself."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# A resource the browser fetches by itself (not a link the reader clicks): script src, link href (style sheets,
# preconnect, icons), CSS url() and @import.
EXTERNAL = re.compile(
    r"<script[^>]*\ssrc=[\"']?(?:https?:)?//|<link[^>]*\shref=[\"']?(?:https?:)?//"
    r"|url\(\s*[\"']?(?:https?:)?//|@import\s+[\"']?(?:url\()?[\"']?(?:https?:)?//",
    re.IGNORECASE,
)


def _config() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def _external_references(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(folder)}: {match.group(0)}"
        for path in sorted(folder.rglob("*"))
        if path.suffix in suffixes
        for match in EXTERNAL.finditer(path.read_text(encoding="utf-8", errors="replace"))
    ]


def test_extra_scripts_and_styles_are_files_of_the_site():
    config = _config()
    assets = config.get("extra_javascript", []) + config.get("extra_css", [])
    assert any("katex" in asset for asset in assets), "the math renderer is not configured"
    for asset in assets:
        assert "//" not in asset, f"mkdocs.yml loads {asset} from the network"
        assert (DOCS / asset).is_file(), f"mkdocs.yml names {asset}, which is not under docs/"


def test_theme_fetches_no_web_fonts():
    assert _config()["theme"].get("font") is False, "mkdocs-material loads Google Fonts unless theme.font is false"


def test_docs_sources_reference_no_external_resource():
    assert _external_references(DOCS, (".md", ".html", ".js", ".css")) == []


def test_vendored_katex_fonts_are_present():
    css = (DOCS / "javascripts/vendor/katex/katex.min.css").read_text(encoding="utf-8")
    fonts = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css))
    assert len(fonts) >= 10
    missing = sorted(font for font in fonts if not (DOCS / "javascripts/vendor/katex" / font).is_file())
    assert missing == []
    assert (DOCS / "javascripts/vendor/katex/LICENSE").is_file()


@pytest.mark.slow
def test_built_site_loads_nothing_from_the_network(tmp_path):
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "--site-dir", str(site)], cwd=ROOT, check=True
    )
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20
    assert "arithmatex" in (site / "concepts/learned-similarity/index.html").read_text(encoding="utf-8")
    assert _external_references(site, (".html", ".css")) == []
