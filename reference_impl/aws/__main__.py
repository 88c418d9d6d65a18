"""python -m reference_impl.aws plan|apply|destroy [--region R] [--lambda-arn ARN]

Without `--region`, the region is the one every AWS tool would use: `AWS_REGION`, then boto3's
own chain (`AWS_DEFAULT_REGION`, then the profile's `region` in the AWS config file).
`plan` prints what `apply` would create and makes no AWS call. `apply` and `destroy` use your
AWS credentials (the default boto3 chain) and cost money while the APIs exist: destroy them
when you are done.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..settings import Settings
from . import deploy


def configured_region() -> str | None:
    """The region from the environment, read as the AWS CLI and boto3 read it (no AWS call).

    boto3 alone reads `AWS_DEFAULT_REGION` and the config file but not `AWS_REGION`, which the
    AWS CLI and the other SDKs read first; honour both, in the CLI's order.
    """
    import boto3

    return os.environ.get("AWS_REGION") or boto3.session.Session().region_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference_impl.aws", description=__doc__)
    parser.add_argument("action", choices=["plan", "apply", "destroy"])
    parser.add_argument("--region", help="default: AWS_REGION, AWS_DEFAULT_REGION, your profile")
    parser.add_argument("--lambda-arn", help="the gateway Lambda (default: in your account)")
    args = parser.parse_args(argv)
    region = args.region or configured_region()
    if not region:
        parser.error("no AWS region: pass --region, or set AWS_REGION or AWS_DEFAULT_REGION")
    settings = Settings()
    if args.action == "plan":
        print("\n".join(deploy.plan(settings, region, args.lambda_arn)))
        return 0
    import boto3

    session = boto3.session.Session(region_name=region)
    if args.action == "apply":
        try:
            created = deploy.apply(session, settings, region, args.lambda_arn)
        except ValueError as error:  # a setting `apply` needs is missing
            parser.error(str(error))
        print(json.dumps(created, indent=2))
    else:
        print("\n".join(deploy.destroy(session, region)) or "nothing to delete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
