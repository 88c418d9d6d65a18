"""The work every request does before its first token, kept cheap (`make bench`, time to first
token): the prompt is counted once, and counted without building its tokens, and a key's token
budget keeps the sum of its window instead of adding it up again. These tests make sure none of
that changed what is counted."""

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
