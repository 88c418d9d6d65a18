"""The work every request does before its first token, kept cheap (`make bench`, time to first
token): the prompt is counted once, and counted without building its tokens. These tests make
sure neither changed what is counted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reference_impl import model, tokenizer
from reference_impl.documents import builtin

TEXT = st.text(st.characters(exclude_categories=()))


@given(TEXT)
def test_counting_tokens_counts_the_tokens_that_are_not_only_white_space(text):
    tokens = tokenizer.tokenize(text)
    assert "".join(tokens) == text
    assert tokenizer.count_tokens(text) == sum(1 for token in tokens if token.strip())


def test_a_requests_prompt_is_counted_once_however_often_it_is_read(monkeypatch):
    counted: list[str] = []

    def counting(text: str) -> int:
        counted.append(text)
        return tokenizer.count_tokens(text)

    monkeypatch.setattr(model, "count_tokens", counting)
    document = builtin()["api-gateway-websocket-limits"].text
    request = model.ModelRequest(question="How long?", document=document, max_tokens=10)
    # The edge's prompt limit, the admission's reservation and the guard's bill each read it.
    assert request.prompt_tokens == request.prompt_tokens == request.prompt_tokens
    assert counted == ["How long?", document]
