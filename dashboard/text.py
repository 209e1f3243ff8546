"""User text in Streamlit Markdown, shown as text: :func:`md` and :func:`code`.

``st.markdown``, ``st.caption``, ``st.info`` / ``success`` / ``warning`` / ``error``,
``st.title`` / ``subheader``, and widget and expander labels render Markdown (GitHub
flavour, plus Streamlit's ``:red[...]`` colours, ``:material/...:`` icons and ``$...$``
LaTeX). A site name such as ``![x](http://evil/x.png) <b>hi</b>`` put into them raw would
load an image from another machine and format the text. Every piece of text that a user or a
file supplies (site names, survey paths, notes, error texts, model cards) goes through
:func:`md` (inline text) or :func:`code` (a code span) before it is interpolated;
``st.dataframe``, ``st.code``, ``st.text`` and selectbox options show text as is and need
neither. The folium maps escape HTML with ``html.escape`` (:mod:`dashboard.maps`).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["code", "md"]

# CommonMark: any ASCII punctuation may be backslash-escaped, and then is literal text.
# This set covers emphasis, links and images, HTML and entities, headings, lists, tables,
# strike-through, Streamlit's colour/icon directives (":" and "[...]") and "$" math.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")
_LINE_BREAK = re.compile(r"\s*[\r\n]+\s*")
# GFM autolink literals (``http://...``, ``www.x``, ``a@b.c``) are found in the text after
# escapes are undone (mdast-util-gfm-autolink-literal), so a backslash does not stop them; an
# invisible WORD JOINER (U+2060) after the scheme / ``www`` and before ``@`` does.
_AUTOLINK = re.compile(r"(?i)(https?|ftp|www|mailto|xmpp)(?=[:.])|(?=@)")
WORD_JOINER = "\u2060"


def md(value: Any) -> str:
    """``value`` as text that Markdown renders literally: punctuation backslash-escaped,
    line breaks folded to spaces (a name cannot start a heading or a list), and a
    :data:`WORD_JOINER` where GFM would turn a URL or e-mail address into a link."""
    text = _AUTOLINK.sub(lambda m: (m.group(1) or "") + WORD_JOINER,
                         _LINE_BREAK.sub(" ", str(value)))
    return _SPECIAL.sub(r"\\\1", text)


def code(value: Any) -> str:
    """``value`` as a Markdown code span (literal, monospace): fenced with one more backtick
    than the longest run inside, so no backtick in the text can close it."""
    text = _LINE_BREAK.sub(" ", str(value))
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
