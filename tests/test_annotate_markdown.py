"""Responses as the annotation page shows them: markdown made HTML, with none of the text's
own HTML, no javascript: links and no images (fetched with the annotator's cookie)."""

from __future__ import annotations

from synpref.gold.annotate.markdown import render_markdown


def test_code_blocks_lists_and_emphasis_become_their_elements():
    html = render_markdown("Try **this**:\n\n```python\nif a < b:\n    print('x')\n```\n\n- one\n- two\n\n1. first")
    assert '<pre><code class="language-python">if a &lt; b:\n    print(\'x\')\n</code></pre>' in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html and "<ol>\n<li>first</li>\n</ol>" in html
    assert html.startswith("<p>Try <strong>this</strong>:</p>")


def test_html_in_a_response_is_escaped_text():
    html = render_markdown('Hi <script>alert(1)</script> <img src=x onerror="alert(2)">\n\n<div>block</div>')
    assert "<script" not in html and "<img" not in html and "<div" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html


def test_only_safe_links_become_links_and_images_never_load():
    html = render_markdown("[a](https://example.org) [b](javascript:alert(1)) [c](JAVASCRIPT:alert(1)) "
                           "[d](vbscript:x) [e](data:text/html,<script>alert(1)</script>) ![f](/api/next)")
    assert html.count("<a ") == 2  # a, and f's alt text as a plain link: nothing is fetched without a click
    assert '<a href="https://example.org" target="_blank" rel="noopener noreferrer nofollow">a</a>' in html
    assert "<img" not in html
    assert all(f'href="{scheme}' not in html.lower() for scheme in ("javascript", "vbscript", "data"))
    assert "[b](javascript:alert(1))" in html and "[c](JAVASCRIPT:alert(1))" in html and "[d](vbscript:x)" in html


def test_a_line_break_in_a_response_stays_a_line_break():
    assert render_markdown("first line\nsecond line") == "<p>first line<br>\nsecond line</p>"
    assert render_markdown(None) == render_markdown("") == ""
