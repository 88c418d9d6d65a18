"""The gateway's edge on AWS, declared with boto3: `plan`, `apply`, `destroy`.

Every limit comes from the gateway's `Settings`, so the local edge and the AWS edge are one
source of truth (docs/aws-mapping.md):
- a REST API imported from the contract (converted to OpenAPI 3.0, `openapi30.py`) with request
  validation, a stage `v1` with method throttling, a usage plan (throttle and quota) with an API
  key, gateway responses shaped like our problem object, and the streaming route's Lambda
  integration in response transfer mode `STREAM` [apigw-rest-streaming];
- a WebSocket API routing on `$request.body.type` with `$connect` (REQUEST authorizer),
  `$disconnect`, `$default`, `ask`, `cancel`, `ping`, and route throttling on its stage;
- the chat's DynamoDB table (`chat_state.py`: on demand, TTL on `expires_at`) and the role the
  WebSocket Lambda runs as, allowed exactly what it does and no more (`function_policy`).
Everything is named `NAME` (WebSocket: `NAME-ws`) and tagged, which is how `destroy` finds it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import CATALOGUE, PROBLEM_MEDIA_TYPE, problem
from ..settings import Settings
from . import chat_state
from .openapi30 import for_api_gateway, lambda_invoke_uri, lambda_streaming_uri

NAME = "realtime-genai-gateway"
WS_NAME = f"{NAME}-ws"
STAGE = "v1"
TAGS = {"project": "realtime-genai-api-labs"}
FUNCTION_NAME = "realtime-genai-gateway"
STREAM_PATH = "/v1/ask/stream"
WS_ROUTES = ("$connect", "$disconnect", "$default", "ask", "cancel", "ping")
ROLE_NAME = f"{NAME}-function"
# What the chat's state needs of its table, and nothing else (no Scan, no table administration).
TABLE_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
]
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

# Gateway responses: API Gateway's own refusals, reshaped into our problem object so a client
# sees one error format from the edge and from the gateway [apigw-gateway-responses].
GATEWAY_RESPONSES: dict[str, tuple[str, str]] = {
    "THROTTLED": ("rate_limited", "The API's throttle refused this request; retry later."),
    "QUOTA_EXCEEDED": ("quota_exceeded", "This API key used its request quota for the period."),
    "REQUEST_TOO_LARGE": ("request_too_large", "The request body is too large."),
    "INTEGRATION_TIMEOUT": ("model_timeout", "The backend did not answer in time."),
    "UNAUTHORIZED": ("unauthorized", "Missing or unknown credentials."),
    "BAD_REQUEST_BODY": ("invalid_request", "The body does not match the contract."),
    "DEFAULT_4XX": ("invalid_request", "The edge refused the request."),
    "DEFAULT_5XX": ("internal_error", "The edge failed to serve the request."),
}


def problem_template(code: str, detail: str, retry_after: int | None = None) -> str:
    """A mapping template that renders the problem object of `code`, built by the one error
    catalogue. The request id is API Gateway's `$context.requestId` (a UUID, not our `req_`)."""
    body = problem(code, detail, "$context.requestId", retry_after_seconds=retry_after)
    return json.dumps(body, separators=(",", ":"))


def throttle_retry_after(settings: Settings) -> int:
    """Whole seconds until a throttled key's bucket holds a request again: what `Retry-After`
    says on a THROTTLED answer. A gateway response header is a fixed value, so it is worked out
    here from the key's rate; a usage plan's quota resets once a period, too far off for one
    fixed value, so QUOTA_EXCEEDED carries none."""
    return max(1, math.ceil(1 / settings.rate_limit_rps))


def gateway_response(response_type: str, settings: Settings) -> dict[str, Any]:
    """The put_gateway_response arguments that make `response_type` a problem object."""
    code, detail = GATEWAY_RESPONSES[response_type]
    wait = throttle_retry_after(settings) if response_type == "THROTTLED" else None
    parameters = {}
    if wait is not None:
        # A static header value is written in single quotes [apigw-gateway-response-params].
        parameters["gatewayresponse.header.Retry-After"] = f"'{wait}'"
    return {
        "responseType": response_type,
        "statusCode": str(CATALOGUE[code].status),
        "responseParameters": parameters,
        "responseTemplates": {PROBLEM_MEDIA_TYPE: problem_template(code, detail, wait)},
    }


def limits(settings: Settings) -> dict[str, Any]:
    """Every AWS-side limit, derived from the gateway settings."""
    keys = len(settings.api_keys)
    return {
        # The stage's method throttle is for all clients together: every key at its full rate.
        "stage_throttle": {
            "rateLimit": settings.rate_limit_rps * keys,
            "burstLimit": settings.rate_limit_burst * keys,
        },
        # Per API key, like the local token bucket per key [apigw-usage-plans], [apigw-throttling].
        "usage_plan_throttle": {
            "rateLimit": settings.rate_limit_rps,
            "burstLimit": settings.rate_limit_burst,
        },
        # A usage plan's quota counts requests per DAY, WEEK or MONTH [apigw-usage-plans]; the
        # local gateway counts tokens per minute instead (Bedrock's own quota is in tokens).
        "usage_plan_quota": {"limit": settings.aws_requests_per_day, "period": "DAY"},
        # Route throttling on the WebSocket stage [apigw-ws-throttling]. Locally the bucket is
        # per connection; on AWS it is per route for the whole stage.
        "ws_route_throttle": {
            "ThrottlingRateLimit": settings.ws_messages_per_second,
            "ThrottlingBurstLimit": settings.ws_message_burst,
        },
    }


def plan(settings: Settings, region: str, lambda_arn: str | None = None) -> list[str]:
    """What `apply` would create, as lines of text. Makes no AWS call."""
    arn = lambda_arn or f"arn:aws:lambda:{region}:<account>:function:{FUNCTION_NAME}"
    lim = limits(settings)
    doc = for_api_gateway(NAME, region, arn)
    operations = sum(len(item) for item in doc["paths"].values())
    return [
        f"region {region}, tags {TAGS}",
        f"REST API {NAME}: import contract as OpenAPI {doc['openapi']} "
        f"({len(doc['paths'])} paths, {operations} operations), request validator 'all'",
        f"  Lambda proxy integrations -> {arn}",
        f"  POST {STREAM_PATH}: AWS_PROXY, responseTransferMode STREAM",
        f"  stage {STAGE}: method throttling */* rate {lim['stage_throttle']['rateLimit']}/s "
        f"burst {lim['stage_throttle']['burstLimit']}",
        f"  usage plan {NAME}: throttle {lim['usage_plan_throttle']}, "
        f"quota {lim['usage_plan_quota']}, API key {NAME} attached",
        f"  gateway responses ({PROBLEM_MEDIA_TYPE}): {', '.join(GATEWAY_RESPONSES)}",
        f"WebSocket API {WS_NAME}: route selection $request.body.type, "
        f"routes {', '.join(WS_ROUTES)} ($connect with a REQUEST authorizer)",
        f"  stage {STAGE}: default route throttling {lim['ws_route_throttle']}",
        f"DynamoDB table {chat_state.TABLE_NAME}: key connection_id + item, on demand, "
        f"TTL on {chat_state.TTL_ATTRIBUTE}",
        f"IAM role {ROLE_NAME} (for the Lambda): {', '.join(TABLE_ACTIONS)} on the table; "
        f"execute-api:ManageConnections on {WS_NAME}/{STAGE}/POST/@connections/*; "
        "bedrock:InvokeModelWithResponseStream on "
        f"{settings.bedrock_model_id or '<GATEWAY_BEDROCK_MODEL_ID>'}; its own log group",
    ]


def function_policy(
    region: str, account: str, table_arn: str, websocket_api_id: str, settings: Settings
) -> dict[str, Any]:
    """The WebSocket Lambda's permissions, each on the one resource it uses.

    @connections is authorized with `execute-api:ManageConnections` on
    `.../{api-id}/{stage}/POST/@connections` [apigw-ws-iam]; ConverseStream needs
    `bedrock:InvokeModelWithResponseStream` on the model [bedrock-stream-iam]. A
    cross-Region inference profile id would also need the profile's ARN.
    """
    model_arn = f"arn:aws:bedrock:{settings.bedrock_region}::foundation-model/"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ChatState", "Effect": "Allow", "Action": TABLE_ACTIONS, "Resource": table_arn},
            {
                "Sid": "PostToConnections",
                "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": (
                    f"arn:aws:execute-api:{region}:{account}:{websocket_api_id}/{STAGE}"
                    "/POST/@connections/*"
                ),
            },
            {
                "Sid": "StreamTheModel",
                "Effect": "Allow",
                "Action": "bedrock:InvokeModelWithResponseStream",
                "Resource": model_arn + settings.bedrock_model_id,
            },
            {
                "Sid": "OwnLogs",  # what every Lambda needs to write its log
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": (
                    f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{FUNCTION_NAME}:*"
                ),
            },
        ],
    }


def resource_id(apigw, api_id: str, path: str) -> str:
    for resource in apigw.get_resources(restApiId=api_id, limit=500)["items"]:
        if resource["path"] == path:
            return resource["id"]
    raise LookupError(f"no resource {path} in REST API {api_id}")


def apply_rest(apigw, settings: Settings, region: str, lambda_arn: str) -> dict[str, str]:
    """Create the REST API and everything around it; returns the ids."""
    lim = limits(settings)
    doc = for_api_gateway(NAME, region, lambda_arn)
    api_id = apigw.import_rest_api(body=json.dumps(doc).encode(), failOnWarnings=False)["id"]
    # API Gateway creates the validator from the extension; an importer that ignores it (moto)
    # gets it here, so the check below holds either way.
    validators = apigw.get_request_validators(restApiId=api_id)["items"]
    if not any(v.get("name") == "all" for v in validators):
        apigw.create_request_validator(
            restApiId=api_id, name="all", validateRequestBody=True, validateRequestParameters=True
        )
    stream_integration(apigw, api_id, resource_id(apigw, api_id, STREAM_PATH), region, lambda_arn)
    for response_type in GATEWAY_RESPONSES:
        apigw.put_gateway_response(restApiId=api_id, **gateway_response(response_type, settings))
    apigw.create_deployment(restApiId=api_id, stageName=STAGE)
    throttle = lim["stage_throttle"]
    apigw.update_stage(
        restApiId=api_id,
        stageName=STAGE,
        patchOperations=[
            {
                "op": "replace",
                "path": "/*/*/throttling/rateLimit",
                "value": str(throttle["rateLimit"]),
            },
            {
                "op": "replace",
                "path": "/*/*/throttling/burstLimit",
                "value": str(throttle["burstLimit"]),
            },
        ],
    )
    plan_id = apigw.create_usage_plan(
        name=NAME,
        description="Per-key throttle and quota of the Realtime GenAI gateway",
        apiStages=[{"apiId": api_id, "stage": STAGE}],
        throttle=lim["usage_plan_throttle"],
        quota=lim["usage_plan_quota"],
        tags=TAGS,
    )["id"]
    key_id = apigw.create_api_key(name=NAME, enabled=True, tags=TAGS)["id"]
    apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
    return {"rest_api_id": api_id, "usage_plan_id": plan_id, "api_key_id": key_id}


def stream_integration(apigw, api_id: str, resource: str, region: str, lambda_arn: str) -> None:
    """The streaming route's integration: Lambda proxy, response transfer mode STREAM, so the
    events reach the client as the Lambda writes them, for up to 15 minutes
    [apigw-rest-streaming]."""
    apigw.put_integration(
        restApiId=api_id,
        resourceId=resource,
        httpMethod="POST",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=lambda_streaming_uri(region, lambda_arn),
        responseTransferMode="STREAM",
    )


def apply_websocket(v2, settings: Settings, region: str, lambda_arn: str) -> dict[str, str]:
    """Create the WebSocket API, its routes, authorizer and throttled stage; returns the ids."""
    api_id = v2.create_api(
        Name=WS_NAME,
        ProtocolType="WEBSOCKET",
        # Route on the message's `type`, as the local chat does [apigw-ws-routes].
        RouteSelectionExpression="$request.body.type",
        Tags=TAGS,
    )["ApiId"]
    uri = lambda_invoke_uri(region, lambda_arn)
    integration_id = v2.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=uri
    )["IntegrationId"]
    # A Lambda authorizer can only be attached to $connect [apigw-ws-auth].
    authorizer_id = v2.create_authorizer(
        ApiId=api_id,
        Name=f"{WS_NAME}-connect",
        AuthorizerType="REQUEST",
        AuthorizerUri=uri,
        IdentitySource=["route.request.header.Authorization"],
    )["AuthorizerId"]
    for route_key in WS_ROUTES:
        extra = (
            {"AuthorizationType": "CUSTOM", "AuthorizerId": authorizer_id}
            if route_key == "$connect"
            else {"AuthorizationType": "NONE"}
        )
        v2.create_route(
            ApiId=api_id, RouteKey=route_key, Target=f"integrations/{integration_id}", **extra
        )
    v2.create_stage(
        ApiId=api_id,
        StageName=STAGE,
        AutoDeploy=True,
        DefaultRouteSettings=limits(settings)["ws_route_throttle"],
        Tags=TAGS,
    )
    return {"websocket_api_id": api_id}


def apply_function_role(
    iam, region: str, account: str, table_arn: str, websocket_api_id: str, settings: Settings
) -> str:
    """The role the WebSocket Lambda runs as, with `function_policy`; returns its ARN."""
    role_arn = iam.create_role(
        RoleName=ROLE_NAME,
        AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST),
        Description="The Realtime GenAI gateway's WebSocket Lambda",
        Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()],
    )["Role"]["Arn"]
    policy = function_policy(region, account, table_arn, websocket_api_id, settings)
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName=ROLE_NAME, PolicyDocument=json.dumps(policy))
    return role_arn


def apply(session, settings: Settings, region: str, lambda_arn: str | None = None) -> dict:
    """Create the REST and WebSocket APIs, the chat's table and the Lambda's role; returns
    every id created."""
    if not settings.bedrock_model_id:
        raise ValueError("set GATEWAY_BEDROCK_MODEL_ID: the Lambda's role names its model")
    account = session.client("sts", region_name=region).get_caller_identity()["Account"]
    arn = lambda_arn or f"arn:aws:lambda:{region}:{account}:function:{FUNCTION_NAME}"
    created = apply_rest(session.client("apigateway", region_name=region), settings, region, arn)
    v2 = session.client("apigatewayv2", region_name=region)
    created.update(apply_websocket(v2, settings, region, arn))
    dynamodb = session.client("dynamodb", region_name=region)
    created["table_arn"] = chat_state.create_table(dynamodb, TAGS)
    iam = session.client("iam")
    created["role_arn"] = apply_function_role(
        iam, region, account, created["table_arn"], created["websocket_api_id"], settings
    )
    return created


def destroy(session, region: str) -> list[str]:
    """Delete what `apply` created, found by name; returns what was deleted."""
    apigw = session.client("apigateway", region_name=region)
    v2 = session.client("apigatewayv2", region_name=region)
    deleted = []
    for usage_plan in apigw.get_usage_plans(limit=500)["items"]:
        if usage_plan["name"] == NAME:
            for key in apigw.get_usage_plan_keys(usagePlanId=usage_plan["id"])["items"]:
                apigw.delete_usage_plan_key(usagePlanId=usage_plan["id"], keyId=key["id"])
            apigw.delete_usage_plan(usagePlanId=usage_plan["id"])
            deleted.append(f"usage plan {usage_plan['id']}")
    for key in apigw.get_api_keys(nameQuery=NAME, limit=500)["items"]:
        if key["name"] == NAME:
            apigw.delete_api_key(apiKey=key["id"])
            deleted.append(f"API key {key['id']}")
    for api in apigw.get_rest_apis(limit=500)["items"]:
        if api["name"] == NAME:
            apigw.delete_rest_api(restApiId=api["id"])
            deleted.append(f"REST API {api['id']}")
    for api in v2.get_apis()["Items"]:
        if api["Name"] == WS_NAME:
            v2.delete_api(ApiId=api["ApiId"])
            deleted.append(f"WebSocket API {api['ApiId']}")
    dynamodb = session.client("dynamodb", region_name=region)
    if chat_state.TABLE_NAME in dynamodb.list_tables()["TableNames"]:
        dynamodb.delete_table(TableName=chat_state.TABLE_NAME)
        deleted.append(f"DynamoDB table {chat_state.TABLE_NAME}")
    iam = session.client("iam")
    try:
        iam.delete_role_policy(RoleName=ROLE_NAME, PolicyName=ROLE_NAME)
        iam.delete_role(RoleName=ROLE_NAME)
        deleted.append(f"IAM role {ROLE_NAME}")
    except iam.exceptions.NoSuchEntityException:
        pass
    return deleted
