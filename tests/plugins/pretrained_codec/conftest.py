"""Tiny checkpoints of each family, written once per test session (transformers is the `codecs` extra)."""
import pytest

pytest.importorskip("transformers")

from tiny_codecs import FAMILIES, save_tiny  # noqa: E402


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """family -> directory of a tiny randomly initialised checkpoint (config.json + model.safetensors)."""
    root = tmp_path_factory.mktemp("codec_checkpoints")
    return {family: save_tiny(family, root / family) for family in FAMILIES}
