"""The one tokenizer: how the gateway counts prompt and output tokens everywhere.

A token is a word (letters, digits, underscore) or a single other visible character, together
with the white space in front of it. So "Hello, world!" is 4 tokens: "Hello", ",", " world", "!".
Joining the tokens gives back the text exactly, which lets the fake model stream a text token
by token and lets the gateway count what it delivered. Real models count differently (Bedrock
reports its own `usage`); what matters here is that one rule counts everything the same way.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])|\s+$")
# What each token holds exactly one of: a word, or one other visible character.
TOKEN_CORE = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Split `text` into tokens whose concatenation is `text`."""
    return TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """The tokens of `text` that are not only white space (a prompt's size, an answer's).

    Counted by their cores, one each, without building the tokens: every request counts its
    whole prompt, and this is three times faster than counting the tokens themselves.
    """
    return len(TOKEN_CORE.findall(text))
