"""The AWS path: the gateway's edge on Amazon API Gateway, its chat as a Lambda, Bedrock offline.

- `deploy.py`: `plan`, `apply`, `destroy` of the REST and WebSocket APIs, limits from Settings,
  the chat's table and the Lambda's role;
- `openapi30.py`: the 3.2 contract converted to the OpenAPI 3.0 that API Gateway imports;
- `ws_handler.py`: the Lambda behind the WebSocket routes, streaming Bedrock to @connections;
- `chat_state.py`: the chat's state between invocations (history, cancel marks), in DynamoDB;
- `fake_bedrock.py`: real Bedrock event streams, offline, for tests and notebooks.

Run `python -m reference_impl.aws plan --region us-east-1` to see what would be created.
"""
