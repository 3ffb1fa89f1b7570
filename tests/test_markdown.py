"""Answers rendered as Markdown: what a hostile answer cannot do, what a normal one looks like.

Every output is read back with Python's own HTML parser, the way a browser would tokenize it, so
the checks are about elements and attributes, not about substrings.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

import pytest

from ui.markdown import answer_html, render_markdown

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a",
}  # fmt: skip
DANGEROUS_TAGS = {"script", "iframe", "img", "svg", "object", "embed", "style", "link", "meta", "form", "base"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""


class Page(HTMLParser):
    """What a browser would build from the HTML: the elements in order and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text = ""
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.elements.append(element)
        self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        self.text += data
        for element in self._open:
            element.text += data

    def handle_comment(self, data: str) -> None:
        raise AssertionError(f"a comment reached the page: {data!r}")

    def tags(self, name: str) -> list[Element]:
        return [e for e in self.elements if e.tag == name]


def parse(markup: str) -> Page:
    page = Page()
    page.feed(markup)
    page.close()
    return page


def assert_inert(markup: str) -> Page:
    """Nothing in `markup` can run, fetch or style anything; returns the parsed page."""
    page = parse(markup)
    for element in page.elements:
        assert element.tag not in DANGEROUS_TAGS, markup
        assert element.tag in ALLOWED_TAGS, f"<{element.tag}> is not on the allow-list: {markup}"
        for name, value in element.attrs.items():
            assert not name.startswith("on"), f"handler {name} on <{element.tag}>: {markup}"
            assert name not in ("style", "id", "src", "srcdoc", "formaction"), markup
            if name == "class":
                assert element.tag == "code" and (value or "").startswith("language-"), markup
            if name == "href":
                assert (value or "").lower().startswith(("http://", "https://", "mailto:")), markup
    return page


HOSTILE = [
    # (what the model wrote, text that must still be visible)
    ("<script>alert(1)</script>", "alert(1)"),
    ("<img src=x onerror=alert(1)>", "onerror=alert(1)"),
    ('<iframe src="https://evil.example/"></iframe>', "iframe"),
    ("[click](javascript:alert(1))", "click"),
    ("[x](JaVaScRiPt:alert(document.cookie))", "JaVaScRiPt"),
    ("[x](data:text/html,<script>alert(1)</script>)", "data:text/html"),
    ("[x](vbscript:msgbox(1))", "vbscript"),
    ("[x](java\tscript:alert(1))", "x"),
    ("[x](/etc/passwd) [y](//evil.example/z) [z](?q=1)", "/etc/passwd"),
    ('<a href="http://x.example" onclick="steal()">go</a>', "onclick"),
    ("<svg onload=alert(1)><circle/></svg>", "onload=alert(1)"),
    ("<javascript:alert(1)>", "javascript:alert(1)"),
    ("&lt;script&gt;alert(1)&lt;/script&gt;", "<script>alert(1)</script>"),
    ("<object data=x.swf></object><embed src=x.swf><style>*{display:none}</style>", "display:none"),
    ("<!-- hidden --> <link rel=stylesheet href=http://evil.example/c.css>", "hidden"),
    ('[x](http://ok.example "t\\" onmouseover=\\"alert(1)")', "x"),
    ('```js" onmouseover="alert(1)\nalert(1)\n```', "alert(1)"),
    ("`<script>alert(1)</script>`", "<script>alert(1)</script>"),
    ("![pic](javascript:alert(1))", "pic"),
    ("[![pic](http://evil.example/p.png)](javascript:alert(1))", "pic"),
]


@pytest.mark.parametrize(("answer", "visible"), HOSTILE, ids=[a for a, _ in HOSTILE])
def test_hostile_answer_renders_inert_and_keeps_its_text(answer: str, visible: str) -> None:
    page = assert_inert(render_markdown(answer))
    assert visible in page.text


def test_script_text_inside_code_stays_visible_as_code() -> None:
    page = assert_inert(render_markdown("Run `alert(1)` then:\n\n```html\n<script>alert(2)</script>\n```"))
    codes = page.tags("code")
    assert [c.text for c in codes] == ["alert(1)", "<script>alert(2)</script>\n"]
    assert codes[1].attrs["class"] == "language-html"


def test_code_block_with_hostile_language_keeps_its_code_but_not_the_class() -> None:
    page = assert_inert(render_markdown('```py" onclick="x\nprint(1)\n```'))
    (code,) = page.tags("code")
    assert "class" not in code.attrs
    assert code.text == "print(1)\n"


def test_image_becomes_a_note_with_its_alt_text_and_is_never_loaded() -> None:
    page = assert_inert(render_markdown("See ![the *cat*](http://evil.example/p.png) here."))
    assert not page.tags("img")
    assert "[image: the cat — not loaded]" in page.text
    (link,) = page.tags("a")
    assert link.attrs["href"] == "http://evil.example/p.png"
    assert link.attrs["rel"] == "noopener noreferrer nofollow"


def test_image_without_alt_or_web_url_is_a_bare_note() -> None:
    page = assert_inert(render_markdown("![](https://x.example/a.png)"))
    assert "[image — not loaded]" in page.text
    page = assert_inert(render_markdown("![chart](data:image/png;base64,AAAA)"))
    assert not page.tags("a") and not page.tags("img")
    assert "chart" in page.text


def test_links_keep_web_and_mail_schemes_and_open_safely() -> None:
    page = assert_inert(
        render_markdown('[docs](https://ai.google.dev/gemma "Gemma") <http://a.example/x> [me](mailto:me@a.example)')
    )
    links = page.tags("a")
    assert [a.attrs["href"] for a in links] == [
        "https://ai.google.dev/gemma",
        "http://a.example/x",
        "mailto:me@a.example",
    ]
    assert [a.text for a in links] == ["docs", "http://a.example/x", "me"]
    assert links[0].attrs["title"] == "Gemma"
    for link in links:
        assert link.attrs["target"] == "_blank"
        assert set((link.attrs["rel"] or "").split()) == {"noopener", "noreferrer", "nofollow"}


def test_relative_and_scriptable_links_are_text_not_links() -> None:
    answer = "[a](/x) [b](javascript:void(0)) [c](data:,hi) [d](vbscript:x) [e](file:///etc/passwd)"
    page = assert_inert(render_markdown(answer))
    assert not page.tags("a")
    for label in "abcde":
        assert f"[{label}]" in page.text


def test_headings_lists_quotes_and_emphasis() -> None:
    answer = "# Title\n\n### Part\n\n1. one\n2. **two**\n\n- *a*\n- ~~b~~\n\n> quoted\n\n---\n\nline  \nbreak"
    page = assert_inert(render_markdown(answer))
    assert [e.text for e in page.tags("h1")] == ["Title"]
    assert [e.text for e in page.tags("h3")] == ["Part"]
    assert [e.text for e in page.tags("li")] == ["one", "two", "a", "b"]
    assert len(page.tags("ol")) == 1 and len(page.tags("ul")) == 1
    assert [e.text for e in page.tags("strong")] == ["two"]
    assert [e.text for e in page.tags("em")] == ["a"]
    assert [e.text for e in page.tags("del")] == ["b"]
    assert page.tags("blockquote")[0].text.strip() == "quoted"
    assert page.tags("hr") and page.tags("br")


def test_table_with_alignment_as_attributes_not_style() -> None:
    answer = "| variant | tok/s | fits |\n|:--|--:|:-:|\n| E2B | 41.5 | yes |\n| 31B | 3.2 | no |"
    page = assert_inert(render_markdown(answer))
    assert [th.text for th in page.tags("th")] == ["variant", "tok/s", "fits"]
    assert [th.attrs.get("align") for th in page.tags("th")] == ["left", "right", "center"]
    assert [td.text for td in page.tags("td")] == ["E2B", "41.5", "yes", "31B", "3.2", "no"]
    assert len(page.tags("tr")) == 3 and page.tags("thead") and page.tags("tbody")


STREAMED = (
    "## Plan\n\nUse [the docs](https://ai.google.dev/gemma) and ![a chart](http://x.example/c.png).\n\n"
    "| a | b |\n|---|:-:|\n| 1 | <b>2</b> |\n\n"
    "```python\ndef f(x):\n    return '<script>alert(1)</script>'\n```\n\n"
    "> note <img src=x onerror=alert(1)> and [bad](javascript:alert(1))\n\n"
    "- **bold** `code` ~~gone~~ &lt;tag&gt;\n"
)


def test_every_prefix_of_a_streamed_answer_renders_inert() -> None:
    shown = [assert_inert(render_markdown(STREAMED[:end])).text for end in range(len(STREAMED) + 1)]
    assert "gone" in shown[-1] and "return" in shown[-1]  # the whole answer, still all there


def test_unclosed_fence_while_streaming_is_code_so_far() -> None:
    page = assert_inert(render_markdown("Here:\n\n```python\nx = '<b>'\nprint(x"))
    (code,) = page.tags("code")
    assert code.attrs["class"] == "language-python"
    assert code.text == "x = '<b>'\nprint(x"
    assert not page.tags("b")


@pytest.mark.parametrize("cut", ["[click](javascript:al", "[docs](https://ai.go", "<scr", "<img src=x oner", "![pi"])
def test_half_written_link_or_tag_stays_text(cut: str) -> None:
    page = assert_inert(render_markdown(f"Before {cut}"))
    assert not page.tags("a")
    assert page.text.strip() == f"Before {cut}"


@pytest.mark.parametrize("answer", ["> " * 5000 + "deep", "- " * 3000 + "deep", "[" * 20000, "*a " * 10000])
def test_pathological_nesting_renders_without_error(answer: str) -> None:
    assert_inert(render_markdown(answer))  # markdown-it may give up on the depth, never on safety
    assert parse(answer_html(answer)).tags("pre")[-1].text == answer  # the raw view keeps it all


def test_answer_html_has_both_views_and_raw_escapes_markup() -> None:
    answer = "**bold** <b>tag</b> & [x](javascript:y)"
    page = parse(answer_html(answer))
    rendered, raw = page.elements[0], page.tags("pre")[-1]
    assert rendered.tag == "div" and rendered.attrs["class"] == "answer-rendered"
    assert raw.attrs["class"] == "answer-raw"
    assert raw.text == answer
    assert [e.text for e in page.tags("strong")] == ["bold"]
    assert not page.tags("b")


def test_answer_html_keeps_raw_whitespace_and_markdown_characters() -> None:
    answer = "  indented\n\n| a |\n\t`tick` *star*"
    raw = parse(answer_html(answer)).tags("pre")[-1]
    assert raw.text == answer


@pytest.mark.parametrize("empty", ["", "  \n "])
def test_empty_answer_shows_the_placeholder_as_text(empty: str) -> None:
    page = parse(answer_html(empty, placeholder="<i>waiting</i> for demo:e2b"))
    rendered = page.elements[0]
    assert rendered.attrs["class"] == "answer-rendered"
    assert rendered.text == "<i>waiting</i> for demo:e2b"
    assert not page.tags("i")
    assert page.tags("pre")[-1].text == empty
