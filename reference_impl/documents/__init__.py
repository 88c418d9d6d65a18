"""The built-in documents the fake model answers questions about.

Each is a short guide written for this course, one Markdown file: `# Title`, then the text.
Their ids are the file names without `.md`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..tokenizer import count_tokens

FOLDER = Path(__file__).parent


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str

    @property
    def tokens(self) -> int:
        return count_tokens(self.text)


@cache
def builtin() -> dict[str, Document]:
    documents = {}
    for path in sorted(FOLDER.glob("*.md")):
        heading, _, text = path.read_text(encoding="utf-8").partition("\n")
        documents[path.stem] = Document(path.stem, heading.removeprefix("# ").strip(), text.strip())
    return documents
