"""The built-in documents the fake model answers questions about.

Each is a short guide written for this course, one Markdown file: `# Title`, then the text.
Their ids are the file names without `.md`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from ..tokenizer import count_tokens

FOLDER = Path(__file__).parent


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str

    @cached_property  # the prompt of every ask about it includes it: counted once
    def tokens(self) -> int:
        return count_tokens(self.text)


@cache
def builtin() -> dict[str, Document]:
    documents = {}
    for path in sorted(FOLDER.glob("*.md")):
        heading, _, text = path.read_text(encoding="utf-8").partition("\n")
        documents[path.stem] = Document(path.stem, heading.removeprefix("# ").strip(), text.strip())
    return documents


def document_tokens(text: str) -> int:
    """The size of a document in tokens: a built-in one's is counted once, when first asked."""
    document = builtin_by_text().get(text)
    return count_tokens(text) if document is None else document.tokens


@cache
def builtin_by_text() -> dict[str, Document]:
    return {document.text: document for document in builtin().values()}
