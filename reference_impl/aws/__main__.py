"""python -m reference_impl.aws plan|apply|destroy --region R [--lambda-arn ARN]

`plan` prints what `apply` would create and makes no AWS call. `apply` and `destroy` use your
AWS credentials (the default boto3 chain) and cost money while the APIs exist: destroy them
when you are done.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..settings import Settings
from . import deploy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference_impl.aws", description=__doc__)
    parser.add_argument("action", choices=["plan", "apply", "destroy"])
    parser.add_argument("--region", required=True)
    parser.add_argument("--lambda-arn", help="the gateway Lambda (default: in your account)")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.action == "plan":
        print("\n".join(deploy.plan(settings, args.region, args.lambda_arn)))
        return 0
    import boto3

    session = boto3.session.Session()
    if args.action == "apply":
        print(json.dumps(deploy.apply(session, settings, args.region, args.lambda_arn), indent=2))
    else:
        print("\n".join(deploy.destroy(session, args.region)) or "nothing to delete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
