"""A real S3-protocol server on localhost for the object-storage tests: moto's standalone server.

It is a separate process speaking HTTP, so s3fs / botocore talk to it exactly as to AWS or MinIO;
the tests configure them only through the standard AWS environment variables, as a user would.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    """Start ``python -m moto.server`` on a free loopback port; yields its endpoint URL."""
    port = free_port()
    log = tempfile.TemporaryFile()  # not a pipe: the server logs every request and would block on a full one
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"moto server did not start: {log.read().decode()[-2000:]}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def aws_env(endpoint: str, home: Path, key: str = "testing", secret: str = "testing") -> dict[str, str]:
    """The standard AWS variables pointing at ``endpoint``; config files that do not exist, no instance metadata."""
    return {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"), "AWS_CONFIG_FILE": str(home / "no-config"),
    }


def client(endpoint: str, service: str = "s3"):
    """An independent boto3 client (what the tests check results with), not the code under test."""
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def read_only_user(endpoint: str, name: str) -> tuple[str, str]:
    """An IAM user allowed to list buckets but not to read objects; returns its (key id, secret)."""
    iam = client(endpoint, "iam")
    iam.create_user(UserName=name)
    # s3:List*: AWS authorizes a listing as s3:ListBucket, moto >= 5.2 as s3:ListObjectsV2; no s3:Get* either way
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:List*"], "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="list-only", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@contextmanager
def enforced_auth(endpoint: str) -> Iterator[None]:
    """Make the server check signatures and IAM policies (moto accepts any key by default)."""
    def post(value: str) -> None:
        request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=value.encode(), method="POST",
                                         headers={"Content-Type": "text/plain"})  # a form body would be parsed away
        urllib.request.urlopen(request, timeout=10).close()
    post("0")
    try:
        yield
    finally:
        post("inf")


def clean_aws_env(monkeypatch, env: dict[str, str]) -> None:
    """Replace every AWS_* variable of this process by ``env``."""
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
