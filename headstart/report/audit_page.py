"""The audit's page: one ``index.html`` that opens from disk, with its script and style inside it and its
thumbnails beside it (``thumbs/``).

Safe to open whatever the data holds: the data travels as JSON in a ``<script type="application/json">`` block
with ``<``, ``>`` and ``&`` escaped (no value can close the block), and the script shows every value with
``textContent``, never as HTML. A Content-Security-Policy allows only the page's own script and style (by
their SHA-256) and images from its own folder: no request leaves it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from headstart._files import atomic_path

__all__ = ["page_json", "render_audit_page", "write_audit_page"]


def page_json(data: Any) -> str:
    """``data`` as JSON that cannot end the ``<script>`` block it sits in (nor form a comment or a tag)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(raw, escaped)
    return text


def _asset(name: str) -> str:
    return resources.files("headstart.report").joinpath("audit_assets", name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


_SECTIONS = (
    ("dups", "Near-duplicates", "Pairs of images that are copies of each other: by their pixels (a 64-bit perceptual "
     "hash finds the candidates, the correlation of their low frequencies confirms them: re-saved, resized, "
     "re-compressed copies) or by near-identical embeddings. A test image with a copy "
     "in train or val inflates the test score."),
    ("labels", "Likely label errors", "Images whose label the head, never having seen them, finds unlikely "
     "(cleanlab's confident learning on out-of-sample probabilities); the score is 1 minus the probability of "
     "the given label."),
    ("outliers", "Outliers", "Images far from all others in the embedding space (1 minus the mean cosine of "
     "their nearest neighbours, beyond Tukey's far-out fence)."),
    ("confused", "Confused classes", "The class pairs the head mixes up most, out of sample, with its most "
     "confident mistakes."),
    ("wrong", "Misclassified test images", "Each beside its nearest train and val images: a look-alike of "
     "another class, or a mislabelled neighbour, is often the reason."),
)


def render_audit_page(data: dict[str, Any]) -> str:
    """The whole page for ``data`` (the structure :mod:`headstart.workflow.audit` builds)."""
    script, style = _asset("page.js"), _asset("page.css")
    csp = (
        f"default-src 'none'; img-src 'self'; script-src {_sha256(script)}; style-src {_sha256(style)}; "
        "base-uri 'none'; form-action 'none'"
    )
    title = html.escape(str(data.get("title", "audit")))
    nav = "".join(f'<a href="#{key}">{html.escape(name)}</a>' for key, name, _ in _SECTIONS)
    sections = "".join(
        f'<section id="{key}"><h2>{html.escape(name)}</h2><p class="about">{html.escape(about)}</p>'
        f'<div id="{key}-table"></div></section>'
        for key, name, about in _SECTIONS
    )
    subtitle = html.escape(str(data.get("subtitle", "")))
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp, quote=False)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{style}</style></head>\n<body>"
        f"<header><h1>{title}</h1><p>{subtitle}</p></header>"
        f'<nav><a href="#cards">Overview</a><a href="#map-section">Map</a>{nav}</nav>'
        '<main><div id="cards" class="cards"></div>'
        '<section id="map-section"><h2>Map of the embeddings</h2><div class="maptools">'
        '<label>Colour by <select id="colour-by"><option value="class">class</option>'
        '<option value="finding">finding</option></select></label><span id="map-note" class="about"></span>'
        '</div><div class="mapwrap"><canvas id="map"></canvas><div id="tip"></div></div>'
        '<div id="legend" class="legend"></div></section>'
        f"{sections}</main><footer>Written by headstart audit. Everything on this page comes from the folder it "
        "sits in.</footer>\n"
        f'<script type="application/json" id="audit-data">{page_json(data)}</script>\n'
        f"<script>{script}</script></body></html>\n"
    )


def write_audit_page(out_dir: str | Path, data: dict[str, Any]) -> Path:
    """Write ``out_dir/index.html`` atomically; the thumbnails its rows name are the caller's to write."""
    path = Path(out_dir) / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(render_audit_page(data), encoding="utf-8")
    return path
