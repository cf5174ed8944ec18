"""Shards on s3:// against a real S3 server on localhost (moto's standalone server), and gs:// URLs.

Nothing of the client is mocked: s3fs speaks HTTP to the server as it would to AWS or MinIO, and
reaches it only through the standard AWS environment variables. What is checked is what a user
sees: `data shard` / `data info` / the datamodules on s3:// URLs and prefixes, and one-line errors
that name the URL and the cause, in seconds. GCS has no local server: its URLs are checked up to
the client, which is pointed at a closed loopback port.
"""
import json
import socket
import sys
import time

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[dev]'): no local S3 server")
pytest.importorskip("s3fs", reason="the cloud extra is not installed (pip install -e '.[cloud]')")

from error_messages import one_line_error  # noqa: E402
from s3_server import aws_env, clean_aws_env, client, enforced_auth, free_port, moto_server, read_only_user  # noqa: E402

from soundstage.cli import main  # noqa: E402
from soundstage.data import object_store  # noqa: E402
from soundstage.data.audio_datamodule import AudioDataModule  # noqa: E402
from soundstage.data.remote import TIMEOUT_ENV, RemoteShardError  # noqa: E402
from soundstage.data.shards import count_samples, expand_shards  # noqa: E402

SR = 8000
N_FILES = 12


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        yield url


@pytest.fixture
def bucket(endpoint, monkeypatch, tmp_path, request):
    """A fresh bucket; this process's AWS variables point at the local server."""
    clean_aws_env(monkeypatch, aws_env(endpoint, tmp_path))
    name = f"b{abs(hash(request.node.name)) % 10**10}-{time.monotonic_ns() % 10**6}"
    client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    for i in range(N_FILES):
        sf.write(folder / f"utt{i:02d}.wav", 0.2 * rng.standard_normal(int(SR * rng.uniform(0.4, 0.8))), SR)
    return folder


def _objects(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    pages = client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _modified(endpoint: str, bucket: str, prefix: str) -> dict[str, str]:
    page = client(endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: str(o["LastModified"]) for o in page.get("Contents", [])}


# --- writing, listing, reading ------------------------------------------------------------------
def test_data_shard_writes_to_s3_and_data_info_reads_it_back(endpoint, bucket, audio_folder, capsys):
    out = f"s3://{bucket}/speech/train"
    args = ["data", "shard", str(audio_folder), out, "--sample-rate", str(SR), "--shard-mb", "0.03"]
    assert main(args) == 0
    assert f"index: {out}/index.json" in capsys.readouterr().out
    keys = _objects(endpoint, bucket)
    shards = [k for k in keys if k.endswith(".tar")]
    assert len(shards) >= 3 and "speech/train/index.json" in keys
    assert not [k for k in keys if k.endswith(".tmp")]
    index = json.loads(client(endpoint).get_object(Bucket=bucket, Key="speech/train/index.json")["Body"].read())
    assert index["num_samples"] == N_FILES and [f"speech/train/{s['name']}" for s in index["shards"]] == shards

    assert len([k for k in keys if k.startswith("speech/train/progress/")]) >= len(shards)  # one per shard
    written = _modified(endpoint, bucket, "speech/train/shard-")
    time.sleep(1.1)  # LastModified has a resolution of one second
    assert main(args) == 0  # resumed: every input is in a finished shard already, nothing is rewritten
    capsys.readouterr()
    assert _modified(endpoint, bucket, "speech/train/shard-") == written

    assert main(["data", "info", f"s3://{bucket}/speech/"]) == 0  # a prefix: every shard under it
    info = json.loads(capsys.readouterr().out)
    assert info["shards"] == len(shards) and info["samples"] == N_FILES and info["from"] == "index.json"

    assert main(["data", "info", "--scan", f"{out}/shard-{{000000..000001}}.tar"]) == 0  # brace pattern, streamed
    info = json.loads(capsys.readouterr().out)
    first_two = sum(s["count"] for s in index["shards"][:2])
    assert info["samples"] == first_two and info["members"] == {"flac": first_two, "json": first_two}
    assert info["errors"] == 0 and info["rates"] == {f"sample_rate={SR}": first_two}


def test_datamodule_streams_a_prefix_with_workers_and_counts_from_the_index(bucket, audio_folder):
    assert main(["data", "shard", str(audio_folder), f"s3://{bucket}/a", "--sample-rate", str(SR),
                 "--shard-mb", "0.03"]) == 0
    urls = expand_shards(f"s3://{bucket}/a/")
    assert urls == sorted(urls) and all(u.startswith(f"s3://{bucket}/a/shard-") for u in urls)
    assert count_samples(urls) == N_FILES  # from index.json on the bucket: the epoch length is known
    dm = AudioDataModule(f"s3://{bucket}/a", f"s3://{bucket}/a/shard-000000.tar", sample_rate=SR, batch_size=2,
                         segment_samples=1000, num_workers=2, shuffle_buffer=2)
    batches = list(dm.train_dataloader())  # two DataLoader worker processes, each with its own client
    assert len(batches) == N_FILES // 2 and all(b["audio"].shape == (2, 1000) for b in batches)
    val_keys = [k for b in dm.val_dataloader() for k in b["key"]]
    assert val_keys and set(val_keys) <= {f"utt{i:02d}" for i in range(N_FILES)}
    assert dm.num_skipped == 0


# --- errors: one line, naming the URL and the cause, in seconds -----------------------------------
def test_missing_bucket_and_missing_key(bucket, capsys):
    t0 = time.monotonic()
    with pytest.raises(RemoteShardError) as err:
        object_store.open_url("s3://no-such-bucket-here/x-000000.tar")
    one_line_error(err, "cannot read s3://no-such-bucket-here/x-000000.tar: no such bucket 'no-such-bucket-here'")
    with pytest.raises(RemoteShardError) as err:
        expand_shards("s3://no-such-bucket-here/speech/")
    one_line_error(err, "cannot list s3://no-such-bucket-here/speech/: no such bucket 'no-such-bucket-here'")
    with pytest.raises(RemoteShardError) as err:
        object_store.open_url(f"s3://{bucket}/missing-000000.tar")
    one_line_error(err, f"cannot read s3://{bucket}/missing-000000.tar: no such object")
    with pytest.raises(FileNotFoundError, match=f"no shards .* under s3://{bucket}/empty/"):
        expand_shards(f"s3://{bucket}/empty/")
    assert time.monotonic() - t0 < 30

    assert main(["data", "info", "s3://no-such-bucket-here/speech/"]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert err_lines == ["error: cannot list s3://no-such-bucket-here/speech/: no such bucket 'no-such-bucket-here'"]


def test_training_stops_on_a_missing_shard_instead_of_skipping_it(bucket):
    dm = AudioDataModule(f"s3://{bucket}/gone-{{000000..000001}}.tar", None, sample_rate=SR, batch_size=2,
                         segment_samples=1000, batches_per_epoch=2, shuffle_buffer=1)
    with pytest.raises(RemoteShardError, match=f"cannot read s3://{bucket}/gone-00000[01].tar: no such object"):
        list(dm.train_dataloader())
    assert dm.num_skipped == 0


def test_missing_credentials(bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    t0 = time.monotonic()
    with pytest.raises(RemoteShardError) as err:
        object_store.open_url(f"s3://{bucket}/x-000000.tar")
    one_line_error(err, f"cannot read s3://{bucket}/x-000000.tar: no credentials", "AWS_ACCESS_KEY_ID")
    with pytest.raises(RemoteShardError) as err:
        expand_shards(f"s3://{bucket}/speech/")
    one_line_error(err, f"cannot list s3://{bucket}/speech/: no credentials")
    assert time.monotonic() - t0 < 30


def test_access_denied(endpoint, bucket, monkeypatch, audio_folder, tmp_path):
    client(endpoint).put_object(Bucket=bucket, Key="x-000000.tar", Body=b"\0" * 1024)
    key_id, secret = read_only_user(endpoint, f"reader-{bucket}")
    with enforced_auth(endpoint):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        assert expand_shards(f"s3://{bucket}/") == [f"s3://{bucket}/x-000000.tar"]  # listing is allowed
        with pytest.raises(RemoteShardError) as err:  # reading is not
            object_store.open_url(f"s3://{bucket}/x-000000.tar")
        one_line_error(err, f"cannot read s3://{bucket}/x-000000.tar: access denied")
        with pytest.raises(RemoteShardError) as err:  # nor writing (the upload completes when a shard closes)
            main(["--debug", "data", "shard", str(audio_folder), f"s3://{bucket}/out", "--sample-rate", str(SR)])
        one_line_error(err, f"s3://{bucket}/out/", "access denied")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
        with pytest.raises(RemoteShardError) as err:  # a key the server does not know
            expand_shards(f"s3://{bucket}/")
        one_line_error(err, f"cannot list s3://{bucket}/: access denied", "InvalidAccessKeyId")


def test_unreachable_endpoint(bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    t0 = time.monotonic()  # default timeout and retries
    with pytest.raises(RemoteShardError) as err:
        object_store.open_url(f"s3://{bucket}/x-000000.tar")
    one_line_error(err, f"cannot reach s3://{bucket}/x-000000.tar: ", "127.0.0.1")
    assert time.monotonic() - t0 < 30

    monkeypatch.setenv(TIMEOUT_ENV, "2")
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        t0 = time.monotonic()
        with pytest.raises(RemoteShardError) as err:
            expand_shards(f"s3://{bucket}/speech/")
        one_line_error(err, f"cannot reach s3://{bucket}/speech/: ")
        assert time.monotonic() - t0 < 10


def test_a_missing_client_names_the_pip_command(monkeypatch):
    for package in ("s3fs", "gcsfs"):
        monkeypatch.setitem(sys.modules, package, None)  # as if the cloud extra were not installed
    monkeypatch.setattr(object_store, "_filesystems", {})
    for url, package in (("s3://bucket/a.tar", "s3fs"), ("gs://bucket/a.tar", "gcsfs")):
        with pytest.raises(RemoteShardError) as err:
            object_store.open_url(url)
        one_line_error(err, f"cannot read {url}: ", f"need {package}", "pip install 'soundstage[cloud]'")


# --- gs:// ----------------------------------------------------------------------------------------
def test_gcs_urls_translate_to_the_gcsfs_client():
    from webdataset.gopen import gopen_schemes

    assert object_store.split_url("gs://bucket/speech/a.tar") == ("gcs", "bucket/speech/a.tar")
    assert object_store.split_url("gcs://bucket/a.tar") == ("gcs", "bucket/a.tar")
    assert object_store.split_url("s3://bucket/a.tar") == ("s3", "bucket/a.tar")
    assert gopen_schemes["gs"] is gopen_schemes["s3"] is object_store.open_url  # not webdataset's gsutil pipe
    assert expand_shards("gs://bucket/speech/train-{000000..000002}.tar") == [
        f"gs://bucket/speech/train-00000{i}.tar" for i in range(3)]  # a brace pattern needs no request
    with pytest.raises(RemoteShardError, match="not an object-storage URL"):
        object_store.split_url("gs:///a.tar")


def test_gcs_unreachable_endpoint_fails_in_one_line(monkeypatch):
    pytest.importorskip("gcsfs", reason="the cloud extra is not installed (pip install -e '.[cloud]')")
    import fsspec.config

    monkeypatch.setitem(fsspec.config.conf, "gcs", {"token": "anon"})  # no Google credentials lookup
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv(TIMEOUT_ENV, "3")
    t0 = time.monotonic()
    for url, verb in (("gs://bucket/a-000000.tar", "read"), ("gs://bucket/speech/", "list")):
        with pytest.raises(RemoteShardError) as err:
            expand_shards(url) if verb == "list" else object_store.open_url(url)
        one_line_error(err, f"{url}: ")
    assert time.monotonic() - t0 < 20


# --- a pipeline whose data lives on the bucket ----------------------------------------------------
@pytest.mark.slow
def test_a_recipe_trains_from_s3_and_its_token_shards_land_there(endpoint, bucket, tmp_path, capsys):
    """speech_tiny's codec and k-means train on s3:// audio, tokenize writes to s3://, the semantic LM reads it."""
    from soundstage.recipe import load_recipe
    from soundstage.runner import PipelineRunner

    rng = np.random.default_rng(1)
    for split, n in (("train", 8), ("val", 2)):
        folder = tmp_path / "wav" / split
        folder.mkdir(parents=True)
        for i in range(n):
            t = np.arange(int(16000 * rng.uniform(1.0, 1.5))) / 16000
            sf.write(folder / f"{split}{i}.wav", 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t), 16000)
        assert main(["data", "shard", str(folder), f"s3://{bucket}/speech/{split}", "--shard-mb", "0.05"]) == 0
    capsys.readouterr()
    few_steps = [
        f"data.train_shards=s3://{bucket}/speech/train/", f"data.val_shards=s3://{bucket}/speech/val/",
        "trainer.enable_progress_bar=false", "trainer.limit_val_batches=1", "trainer.checkpoint_every_n_steps=1000",
        "stages.codec.config.batches_per_epoch=2", "stages.codec.trainer.max_steps=2",
        "stages.semantic.config.init_batches=1", "stages.semantic.config.batches_per_epoch=2",
        "stages.semantic.trainer.max_steps=2",
        f"stages.tokens.config.output=s3://{bucket}/tokens",
        "stages.semantic_lm.config.batches_per_epoch=2", "stages.semantic_lm.trainer.max_steps=2",
    ]
    recipe = load_recipe("speech_tiny", few_steps)
    results = PipelineRunner(recipe, tmp_path / "run", log=lambda m: None).run(["codec", "semantic", "tokens",
                                                                               "semantic_lm"])
    assert [r.name for r in results] == ["codec", "semantic", "tokens", "semantic_lm"]
    done = json.loads((tmp_path / "run" / "tokens" / "done.json").read_text())
    assert done["outputs"]["train_tokens"] == f"s3://{bucket}/tokens/train"
    assert not (tmp_path / "run" / "tokens" / "tokens").exists()  # nothing written locally
    tokens = _objects(endpoint, bucket, "tokens/")
    assert "tokens/train/index.json" in tokens and "tokens/val/index.json" in tokens
    assert "tokens/train/r0-000000.tar" in tokens
    index = json.loads(client(endpoint).get_object(Bucket=bucket, Key="tokens/train/index.json")["Body"].read())
    assert index["num_samples"] == 8
    assert (tmp_path / "run" / "semantic_lm" / "done.json").exists()
