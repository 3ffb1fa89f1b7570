"""Answers rendered as Markdown, made safe to put in the page.

A model's answer is untrusted text: a prompt can make a model write `<script>`, an `onerror`
handler, an iframe or an image that calls home when loaded. So an answer is rendered in two
steps, each enough on its own:

1. markdown-it-py parses it as CommonMark with GFM tables and strikethrough, with raw HTML
   turned off: a tag the model writes is shown as the text it is, never parsed as markup. A
   link counts as a link only when its URL is absolute http(s) or mailto; any other
   (`javascript:`, `data:`, `vbscript:`, relative paths) stays the literal text the model wrote.
   An image is never an `<img>`: it becomes the note `[image: alt — not loaded]`, with its URL as
   a plain link when that is http(s), so nothing is fetched when the answer is shown.
2. nh3 (ammonia) then keeps only an allow-list: p, br, hr, h1-h6, strong, em, del, code, pre,
   blockquote, ul, ol, li, table parts and a; the attributes a[href, title], code[class] only as
   `language-*`, th/td[align] only as left, center or right. No style, id, other class or `on*`
   handler survives; hrefs keep only the schemes above, and every link gets
   rel="noopener noreferrer nofollow" and target="_blank".

While an answer streams its text is cut anywhere (an open ``` fence, half a link); CommonMark
renders any prefix, so each update renders without error and a half-written tag is still text.
The parser is built once here (it holds no state between calls) because it runs on every
streamed update of every panel.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = ["answer_html", "render_markdown"]

_SAFE_URL = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")
_ALIGN = re.compile(r"text-align:(left|center|right)")

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "th": {"align"}, "td": {"align"}}
_LINK_REL = "noopener noreferrer nofollow"


@lru_cache(maxsize=64)
def render_markdown(text: str) -> str:
    """`text` (Markdown, complete or cut off mid-stream) as sanitized HTML: see the module's
    docstring for what may appear in it.

    Remembers its last answers: while one panel streams, the finished panels beside it are
    redrawn with unchanged text, and those cost a dictionary look-up, not a render."""
    return nh3.clean(
        _MD.render(text),
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes={"http", "https", "mailto"},
        link_rel=_LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


def answer_html(text: str, *, placeholder: str = "") -> str:
    """One answer panel: the rendered answer and the raw text, both always present; a class on
    the page shows one or the other. An empty answer shows `placeholder` (as text) instead."""
    rendered = render_markdown(text) if text.strip() else html.escape(placeholder)
    return f'<div class="answer-rendered">{rendered}</div><pre class="answer-raw">{html.escape(text)}</pre>'


def _is_safe_url(url: str) -> bool:
    return _SAFE_URL.match(url) is not None


def _keep_attribute(element: str, attribute: str, value: str) -> str | None:
    # The parser already emits only these; this is the second line, for whatever slips past it.
    if attribute == "href":
        return value if _is_safe_url(value) else None
    if attribute == "class":
        return value if _LANGUAGE_CLASS.fullmatch(value) else None
    if attribute == "align":
        return value if value in ("left", "center", "right") else None
    return value


def _image_as_note(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    label = f"image: {alt}" if alt.strip() else "image"
    note = html.escape(f"[{label} — not loaded]")
    src = str(token.attrGet("src") or "")
    if not _is_safe_url(src):
        return note
    link = html.escape(src)
    return f'{note} (<a href="{link}">{link}</a>)'


def _cell_open(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    # GFM alignment comes as a style attribute; an align attribute says the same without style.
    token = tokens[idx]
    style = token.attrGet("style")
    if style is not None:
        token.attrs.pop("style", None)
        aligned = _ALIGN.fullmatch(str(style))
        if aligned:
            token.attrSet("align", aligned.group(1))
    return renderer.renderToken(tokens, idx, options, env)


def _build_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.validateLink = _is_safe_url  # type: ignore[method-assign]
    md.add_render_rule("image", _image_as_note)
    md.add_render_rule("th_open", _cell_open)
    md.add_render_rule("td_open", _cell_open)
    md.add_render_rule("s_open", lambda *_: "<del>")
    md.add_render_rule("s_close", lambda *_: "</del>")
    return md


_MD = _build_parser()
