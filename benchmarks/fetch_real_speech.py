"""Fetch a small set of real speech recordings with transcripts, for scoring codecs on real audio.

19 recordings from two package registries, nothing else: the 8 channel announcements of Debian's
``alsa-utils`` (a man's voice: "front center", ...; ``apt-get download``) and 11 test recordings in the
source distribution of ``pocketsphinx`` on PyPI (5 LibriVox sentences of *Sense and Sensibility*,
5 card names, "go forward ten meters"). Each becomes ``OUT/<name>.wav`` (16 kHz mono) next to
``OUT/<name>.txt`` (its words), the layout ``codec_quality.py --real-audio OUT/*.wav`` reads.
Run once by hand; soundstage never downloads data at run time.

    python benchmarks/fetch_real_speech.py /tmp/real_speech
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

POCKETSPHINX_VERSION = "5.1.1"
ALSA_NAMES = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right",
              "Side_Left", "Side_Right")  # Noise.wav is not speech


def alsa_recordings(work: Path, out: Path) -> int:
    subprocess.run(["apt-get", "download", "alsa-utils"], cwd=work, check=True, capture_output=True)
    deb = next(work.glob("alsa-utils_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(work / "alsa")], check=True)
    for name in ALSA_NAMES:
        wave, sr = sf.read(work / "alsa/usr/share/sounds/alsa" / f"{name}.wav", dtype="float32", always_2d=True)
        sf.write(out / f"alsa_{name}.wav", wave.mean(1), sr)
        (out / f"alsa_{name}.txt").write_text(name.replace("_", " ").lower() + "\n")
    return len(ALSA_NAMES)


def pocketsphinx_recordings(work: Path, out: Path) -> int:
    index = urllib.request.urlopen("https://pypi.org/simple/pocketsphinx/").read().decode()  # PEP 503 page
    url = re.search(rf'href="(https://[^"#]*/pocketsphinx-{re.escape(POCKETSPHINX_VERSION)}\.tar\.gz)', index).group(1)
    archive = work / "pocketsphinx.tar.gz"
    urllib.request.urlretrieve(url, archive)
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    data = work / f"pocketsphinx-{POCKETSPHINX_VERSION}/test/data"
    count = 0
    for wav in sorted((data / "librivox").glob("*.wav")):
        wave, sr = sf.read(wav, dtype="float32", always_2d=True)
        sf.write(out / f"librivox_{wav.stem[-4:]}.wav", wave.mean(1), sr)
        (out / f"librivox_{wav.stem[-4:]}.txt").write_text(wav.with_suffix(".txt").read_text().strip() + "\n")
        count += 1
    for line in (data / "cards/cards.transcription").read_text().splitlines():
        text, number = re.match(r"<s>(.*)</s>\s*\((\d+)\)", line).groups()
        wave, sr = sf.read(data / f"cards/{number}.wav", dtype="float32", always_2d=True)
        sf.write(out / f"cards_{number}.wav", wave.mean(1), sr)
        (out / f"cards_{number}.txt").write_text(text.strip() + "\n")
        count += 1
    pcm = np.fromfile(data / "goforward.raw", dtype="<i2").astype(np.float32) / 32768  # 16 kHz, the tests' input
    sf.write(out / "goforward.wav", pcm, 16000)
    (out / "goforward.txt").write_text("go forward ten meters\n")
    return count + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        n = alsa_recordings(Path(tmp), out) + pocketsphinx_recordings(Path(tmp), out)
    print(json.dumps({"recordings": n, "out": str(out)}))


if __name__ == "__main__":
    main()
