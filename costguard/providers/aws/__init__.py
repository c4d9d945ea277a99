"""``type: aws``: AWS Data Exports (FOCUS 1.2 / CUR 2.0), Cost Explorer or Athena for costs;
Organizations accounts with assumed roles; AWS Budgets; one inventory pass with CloudWatch
utilisation; the EC2 price catalogue. boto3 is imported only when a provider is built (the
``[aws]`` extra), so importing this package (it registers the config model) needs no AWS SDK.

Modules, one job each: ``config`` (the config model), ``clients`` (boto3 clients, request
counting, error classes), ``accounts`` (discovery, AssumeRole with refresh), ``exports`` and
``cur2`` (Data Exports in S3), ``cost_explorer``, ``athena`` (with ``costguard.rollup_sql``),
``budgets``, ``inventory`` and ``utilisation`` (CloudWatch), ``pricing``, ``checks`` (doctor),
``iam`` (the actions behind every request, and the policies), ``provider`` (ties them together).
"""

from costguard.providers.aws.config import AwsConfig

__all__ = ["AwsConfig"]
