"""Local transformers checkpoints (HuBERT / wav2vec2) as feature models; never downloaded."""
import shutil

import pytest
import torch

transformers = pytest.importorskip("transformers")

from soundstage.plugins.semantic.kmeans_stage import KMeansTokenizerConfig, KMeansTokenizerStage  # noqa: E402
from soundstage.plugins.semantic.ssl_features import SSLFeatures  # noqa: E402
from soundstage.stage import Stage  # noqa: E402

TINY = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
            conv_stride=(5, 4, 16), conv_kernel=(10, 4, 16), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def save_tiny(tmp_path, kind):
    torch.manual_seed(0)
    if kind == "hubert":
        model = transformers.HubertModel(transformers.HubertConfig(**TINY))
    else:
        model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**TINY, feat_extract_norm="layer", do_stable_layer_norm=True))
    path = tmp_path / kind
    model.eval().save_pretrained(path)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=kind != "hubert").save_pretrained(path)
    return model, path


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2"])
def test_layer_features_match_the_checkpoint_and_follow_the_frame_contract(tmp_path, kind):
    model, path = save_tiny(tmp_path, kind)
    feats = SSLFeatures.from_pretrained(path, layer=2)
    assert len(feats.model.encoder.layers) == 2 and feats.hop_length == 320
    wave = torch.randn(2, 16000)
    out = feats.features(wave, 2)
    assert out.shape == (2, 50, 32)
    if kind == "hubert":  # same numbers as the full model's hidden state 2 on the same padded input
        pad = feats.receptive_field - feats.hop_length
        with torch.no_grad():
            ref = model(torch.nn.functional.pad(wave, (pad // 2, pad - pad // 2)), output_hidden_states=True).hidden_states[2]
        assert torch.allclose(out, ref, atol=1e-5)
    for n in (319, 320, 5000):
        assert feats.features(torch.randn(1, n), 1).shape[1] == n // 320


def test_ssl_tokenizer_export_is_self_contained(tmp_path):
    _, path = save_tiny(tmp_path, "hubert")
    km = KMeansTokenizerStage(KMeansTokenizerConfig(features="ssl", ssl_path=str(path), layer=1, frame_rate=25.0, vocab_size=4))
    wave = torch.randn(3, 8000)
    x = km.raw_features(wave)
    assert x.shape == (3, 12, 32)
    km.feat_mean.copy_(x.flatten(0, 1).mean(0))
    km.feat_std.copy_(x.flatten(0, 1).std(0))
    km.kmeans.fit(km.features(wave).flatten(0, 1), num_iters=3, generator=torch.Generator().manual_seed(0))
    out = km.save_pretrained(tmp_path / "km.safetensors")
    shutil.rmtree(path)  # the saved tokenizer no longer needs the checkpoint directory
    loaded = Stage.load_pretrained(out)
    assert torch.equal(loaded.encode(wave), km.encode(wave))


def test_missing_directory_is_a_clear_error(tmp_path):
    from soundstage.errors import SoundstageError

    with pytest.raises(SoundstageError, match=r"ssl_path: .*nope does not exist"):
        SSLFeatures.from_pretrained(tmp_path / "nope", layer=1)
