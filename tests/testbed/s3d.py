"""A private S3 API server (moto's standalone server) as a child process on loopback.

It stands in for AWS S3 (or MinIO, Ceph, R2...): the tests and the chaos
harness talk to it over real HTTP with boto3, exactly as a deployment would.
moto was chosen because it implements the parts of the S3 API mailq relies on
(``If-None-Match: *`` on PutObject and CompleteMultipartUpload, multipart,
DeleteObjects) and checks credentials and signatures once its IAM is switched
on. Data lives in the server's memory: ``pause``/``resume`` (SIGSTOP/SIGCONT)
make it unreachable without losing it; ``stop`` loses it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request
from pathlib import Path

from tests.testbed.procs import PrivateServer

START_TIMEOUT = 30.0
REGION = "us-east-1"


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


class S3Server(PrivateServer):
    """moto_server on 127.0.0.1 with credential checks on: only ``self.env()``'s access key is accepted."""

    LOG = "s3.log"

    def __init__(self, root: Path, port: int | None = None, bucket: str = "mailq-blobs"):
        super().__init__(root, port)
        self.bucket = bucket
        self.access_key = ""
        self.secret_key = ""

    def __repr__(self) -> str:
        return f"S3Server(port={self.port}, bucket={self.bucket!r})"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **overrides: str) -> dict[str, str]:
        """The standard AWS environment a mailq process needs to use this server (nothing mailq-specific)."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_CONFIG_FILE": os.devnull,  # no profile of the machine's user leaks in
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        env.update(overrides)
        return env

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def start(self) -> S3Server:
        """Start the server, switch its credential checks on with one IAM user, create the bucket."""
        if self.running():
            return self
        self._launch(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            lambda: _answers(self.port),
            f"moto server on port {self.port} (log: {self.log_path})",
            START_TIMEOUT,
            interval=0.1,
            start_new_session=True,
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3", "MOTO_CALL_RESET_API": "false"},
        )
        self._create_user()
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def _create_user(self) -> None:
        """The three unauthenticated calls moto allows: a user, its policy, its key. Every later call is checked."""
        import boto3

        iam = boto3.client(
            "iam", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap"
        )
        iam.create_user(UserName="mailq")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="mailq", PolicyName="blobs", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="mailq")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def client(self):
        """A boto3 S3 client with this server's credentials (tests inspect the bucket with it)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def keys(self, prefix: str = "") -> list[str]:
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    def pause(self) -> None:
        """SIGSTOP: connections hang (the 'S3 is down/slow' case) but nothing stored is lost."""
        if self.running():
            os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running():
            os.killpg(self._proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGCONT)
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc.wait(10)
        self._proc = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
