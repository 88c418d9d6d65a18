"""The chat's state on AWS, in one DynamoDB table: what must outlive a Lambda invocation.

API Gateway invokes the WebSocket Lambda once per client message [apigw-ws-routes], so nothing
kept in memory reaches the `cancel` of an answer or the next question: those run in other
invocations, maybe on other instances. Per connection, the table holds:
- `conversation`: the document the conversation is about, its earlier turns (the history a
  follow-up is asked with) and which answer streams now, if one does: one at a time, as locally,
  so a second `ask` meanwhile is `busy`;
- `answer#<ask id>`: the answer in flight, `streaming` until a `cancel` marks it `cancelled`.
  It is deleted when the answer ends, so a later `cancel` names an unknown answer.

Key: partition `connection_id`, sort `item`, so every item of a connection is one Query away
(the clean-up after `$disconnect` or a `GoneException`). Every item carries `expires_at`, the
table's TTL attribute (epoch seconds): a connection lives at most 2 hours [apigw-ws-quotas], and
what a crashed Lambda or a lost `$disconnect` leaves behind is deleted by DynamoDB in the
background, typically within two days of expiring, at no cost [dynamodb-ttl].

Conditional writes close the races between invocations: a `cancel` marks only an answer that
exists and still streams (else it is refused, as the local chat refuses it), and an `ask` claims
the conversation only when no other answer streams.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ..model import Turn

TABLE_NAME = "realtime-genai-gateway-chat"
TTL_ATTRIBUTE = "expires_at"
CONVERSATION = "conversation"
STREAMING, CANCELLED = "streaming", "cancelled"
# How long an ask's claim on the conversation holds if its Lambda dies without releasing it: no
# answer outlives the 29 s integration timeout [apigw-ws-quotas].
CLAIM_SECONDS = 30


def table_definition() -> dict[str, Any]:
    """The `create_table` arguments: on demand, since chat traffic comes in bursts and an idle
    table then costs no throughput [dynamodb-on-demand]."""
    return {
        "TableName": TABLE_NAME,
        "KeySchema": [
            {"AttributeName": "connection_id", "KeyType": "HASH"},
            {"AttributeName": "item", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "connection_id", "AttributeType": "S"},
            {"AttributeName": "item", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def create_table(dynamodb, tags: dict[str, str]) -> str:
    """Create the table, wait until it is active, turn TTL on; returns its ARN."""
    created = dynamodb.create_table(
        **table_definition(), Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
    )
    dynamodb.get_waiter("table_exists").wait(TableName=TABLE_NAME)
    dynamodb.update_time_to_live(
        TableName=TABLE_NAME,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    return created["TableDescription"]["TableArn"]


def answer_item(ask_id: str) -> str:
    return f"answer#{ask_id}"


def is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Conversation:
    """What an ask finds: the document named before, and the earlier turns, oldest first."""

    document: dict[str, str]
    turns: tuple[Turn, ...]


class Busy(Exception):
    """Another answer streams on this connection."""


class ChatState:
    """One connection's items in the table, through a boto3 `dynamodb` client."""

    def __init__(
        self,
        client: Any,
        connection_id: str,
        lifetime_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.connection_id = connection_id
        self.lifetime_seconds = lifetime_seconds  # the connection's maximum life: the items' TTL
        self.clock = clock

    def key(self, item: str) -> dict[str, Any]:
        return {"connection_id": {"S": self.connection_id}, "item": {"S": item}}

    def expires_at(self) -> dict[str, str]:
        return {"N": str(int(self.clock() + self.lifetime_seconds))}

    def begin(self, ask_id: str) -> Conversation:
        """Claim the conversation for the answer `ask_id` and read it; `Busy` if another
        answer streams. One conditional write does both, then the answer's item is put."""
        now = int(self.clock())
        try:
            item = self.client.update_item(
                TableName=TABLE_NAME,
                Key=self.key(CONVERSATION),
                UpdateExpression="SET streaming = :id, claim_until = :until, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(streaming) OR claim_until < :now",
                ExpressionAttributeValues={
                    ":id": {"S": ask_id},
                    ":until": {"N": str(now + CLAIM_SECONDS)},
                    ":now": {"N": str(now)},
                    ":ttl": self.expires_at(),
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if is_conditional_failure(error):
                raise Busy() from None
            raise
        self.client.put_item(
            TableName=TABLE_NAME,
            Item={
                **self.key(answer_item(ask_id)),
                "state": {"S": STREAMING},
                TTL_ATTRIBUTE: self.expires_at(),
            },
        )
        document = {
            name: value["S"] for name, value in item.get("document", {}).get("M", {}).items()
        }
        turns = tuple(
            Turn(turn["M"]["question"]["S"], turn["M"]["answer"]["S"])
            for turn in item.get("turns", {}).get("L", [])
        )
        return Conversation(document, turns)

    def answer_state(self, ask_id: str) -> str | None:
        """`streaming`, `cancelled`, or None when the item is gone (the connection was cleaned
        up). A strongly consistent read: it sees a cancel written just before it, for one read
        request unit per item up to 4 KB, twice an eventually consistent read [dynamodb-pricing].
        """
        item = self.client.get_item(
            TableName=TABLE_NAME,
            Key=self.key(answer_item(ask_id)),
            ConsistentRead=True,
            ProjectionExpression="#state",
            ExpressionAttributeNames={"#state": "state"},
        ).get("Item")
        return None if item is None else item["state"]["S"]

    def cancel(self, ask_id: str) -> bool:
        """Mark the answer `ask_id` cancelled; False when no such answer streams."""
        try:
            self.client.update_item(
                TableName=TABLE_NAME,
                Key=self.key(answer_item(ask_id)),
                UpdateExpression="SET #state = :cancelled",
                ConditionExpression="#state = :streaming",  # false for a missing item too
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":cancelled": {"S": CANCELLED},
                    ":streaming": {"S": STREAMING},
                },
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def finish(
        self, ask_id: str, document: dict[str, str] | None, turns: tuple[Turn, ...] | None
    ) -> None:
        """End the answer `ask_id`: delete its item and release the conversation, storing its
        document and turns when given. Only the claim's owner releases it."""
        self.client.delete_item(TableName=TABLE_NAME, Key=self.key(answer_item(ask_id)))
        values: dict[str, Any] = {":id": {"S": ask_id}, ":ttl": self.expires_at()}
        update = "SET expires_at = :ttl"
        if document is not None:
            update += ", document = :document"
            values[":document"] = {"M": {k: {"S": v} for k, v in document.items()}}
        if turns is not None:
            update += ", turns = :turns"
            values[":turns"] = {
                "L": [
                    {"M": {"question": {"S": t.question}, "answer": {"S": t.answer}}} for t in turns
                ]
            }
        try:
            self.client.update_item(
                TableName=TABLE_NAME,
                Key=self.key(CONVERSATION),
                UpdateExpression=f"{update} REMOVE streaming, claim_until",
                ConditionExpression="streaming = :id",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            # The claim lapsed and another ask took it, or the connection was cleaned up:
            # the conversation is no longer this answer's to write.
            if not is_conditional_failure(error):
                raise

    def forget(self) -> int:
        """Delete every item of the connection (it is gone); returns how many."""
        deleted = 0
        pages = self.client.get_paginator("query").paginate(
            TableName=TABLE_NAME,
            KeyConditionExpression="connection_id = :id",
            ExpressionAttributeValues={":id": {"S": self.connection_id}},
            ProjectionExpression="connection_id, #item",
            ExpressionAttributeNames={"#item": "item"},
        )
        for page in pages:
            for item in page["Items"]:
                self.client.delete_item(TableName=TABLE_NAME, Key=item)
                deleted += 1
        return deleted
