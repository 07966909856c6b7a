"""Conversation turns and responses as HTML for the annotation page: markdown (code blocks,
lists, emphasis, links) rendered server-side, with no HTML of the text's own let through.

markdown-it's "js-default" preset turns raw HTML off (a `<script>` in a response becomes
escaped text) and refuses javascript:, vbscript:, file: and data: link targets. Images are off
too: the page would fetch an image's URL with the annotator's cookie, and a same-origin URL
such as /api/next would take a pair from the queue without anyone clicking.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

# breaks: a single newline in a chat response is a line break, as chat UIs show it
_MD = MarkdownIt("js-default", {"breaks": True}).disable("image")


def _link_open(self, tokens, idx, options, env):
    # a link opens in a new tab, so following one never leaves a pair half-labelled
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return self.renderToken(tokens, idx, options, env)


_MD.add_render_rule("link_open", _link_open)


def render_markdown(text: str | None) -> str:
    """HTML for the page from a response or turn written in markdown."""
    return _MD.render(text or "").rstrip("\n")
