"""The work every request does before its first token, kept cheap (`make bench`, time to first
token): the prompt is counted once, and counted without building its tokens, and a key's token
budget keeps the sum of its window instead of adding it up again. These tests make sure none of
that changed what is counted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reference_impl import documents, model, tokenizer
from reference_impl.documents import builtin

TEXT = st.text(st.characters(exclude_categories=()))


@given(TEXT)
def test_counting_tokens_counts_the_tokens_that_are_not_only_white_space(text):
    tokens = tokenizer.tokenize(text)
    assert "".join(tokens) == text
    assert tokenizer.count_tokens(text) == sum(1 for token in tokens if token.strip())


def counting_calls(monkeypatch) -> list[str]:
    """Every text the tokenizer counts from now on."""
    counted: list[str] = []
    count = tokenizer.count_tokens

    def counting(text: str) -> int:
        counted.append(text)
        return count(text)

    for module in (model, documents):
        monkeypatch.setattr(module, "count_tokens", counting)
    return counted


def test_a_requests_prompt_is_counted_once_however_often_it_is_read(monkeypatch):
    counted = counting_calls(monkeypatch)
    document = "A document the client sent. It is counted with the question."
    request = model.ModelRequest(question="How long?", document=document, max_tokens=10)
    # The edge's prompt limit, the admission's reservation and the guard's bill each read it.
    assert request.prompt_tokens == request.prompt_tokens == 3 + 13
    assert counted == ["How long?", document]


def test_a_built_in_document_is_counted_once_for_every_ask_about_it(monkeypatch):
    document = builtin()["api-gateway-websocket-limits"]
    size = tokenizer.count_tokens(document.text)
    counted = counting_calls(monkeypatch)
    for question in ("How long?", "And how big?"):
        request = model.ModelRequest(question=question, document=document.text, max_tokens=10)
        assert request.prompt_tokens == tokenizer.count_tokens(question) + size
    assert counted.count(document.text) <= 1  # by the first ask, if none before it


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["reserve", "settle", "wait"]),
            st.integers(0, 400),
            st.floats(0, 40),
        ),
        max_size=60,
    )
)
def test_a_token_budget_keeps_the_sum_of_its_window_as_reservations_come_settle_and_go(steps):
    from reference_impl.errors import GatewayError
    from reference_impl.limits import TokenBudget

    now = [0.0]
    budget = TokenBudget(per_minute=1000, clock=lambda: now[0])
    held = []
    for action, tokens, seconds in steps:
        if action == "reserve":
            try:
                held.append(budget.reserve(tokens))
            except GatewayError:
                pass
        elif action == "settle" and held:
            budget.settle(held.pop(tokens % len(held)), tokens)
        else:
            now[0] += seconds
        # The kept sum is the sum of what is in the window now, settled or not.
        assert budget.in_use() == sum(entry.tokens for entry in budget.entries)
        assert all(entry.at > now[0] - 60 for entry in budget.entries)
