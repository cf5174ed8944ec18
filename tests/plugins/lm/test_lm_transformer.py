"""The transformer core: causality, KV-cache equivalence, checkpointing, export round trip."""
import pytest
import torch

from soundstage.plugins.lm.stages import CoarseLMStage
from soundstage.plugins.lm.transformer import Transformer, TransformerConfig
from soundstage.stage import Stage

from lm_test_helpers import coarse_config

POSITIONS = ["rope", "relative_bias"]


def tiny(position: str, **kw) -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(d_model=32, n_layer=2, n_head=4, block_size=48, position=position,
                            rel_num_buckets=8, rel_max_distance=16, **kw)
    return Transformer(cfg, vocab_size=20).eval()


@pytest.mark.parametrize("position", POSITIONS)
def test_future_tokens_never_change_past_logits(position):
    model = tiny(position)
    idx = torch.randint(0, 20, (2, 30))
    changed = idx.clone()
    changed[:, 17:] = (changed[:, 17:] + 1 + torch.randint(0, 18, (2, 13))) % 20  # every future token differs
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :17], b[:, :17])
    assert not torch.allclose(a[:, 17:], b[:, 17:])


@pytest.mark.parametrize("position", POSITIONS)
def test_kv_cache_decoding_equals_full_sequence(position):
    model = tiny(position)
    idx = torch.randint(0, 20, (3, 40))
    with torch.no_grad():
        full = model(idx)
        cache = model.make_cache(3, 40)
        steps = [model(idx[:, :9], cache=cache, pos=0)]  # prefill
        steps.append(model(idx[:, 9:14], cache=cache, pos=9))  # a multi-token chunk after the prefill
        steps += [model(idx[:, t : t + 1], cache=cache, pos=t) for t in range(14, 40)]  # one token at a time
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)


def _static_decoding_against_full_pass(model, span_of=lambda t: None):
    """(logits of a full pass over 30 ids, the same ids prefilled then decoded one by one at tensor
    positions over a 48-position cache that holds a longer earlier sequence's stale keys), and the cache."""
    cache = model.make_cache(2, 48)
    with torch.no_grad():
        model(torch.randint(0, 20, (2, 40)), cache=cache, pos=0)  # an earlier generation's keys
        idx = torch.randint(0, 20, (2, 30))
        full = model(idx)
        steps = [model(idx[:, :5], cache=cache, pos=0)]
        for t in range(5, 30):
            steps.append(model(idx[:, t : t + 1], cache=cache, pos=torch.tensor(t), span=span_of(t)))
    return full, torch.cat(steps, dim=1), cache


@pytest.mark.parametrize("position", POSITIONS)
def test_static_decoding_over_a_reused_cache_equals_the_full_sequence(position):
    """Tensor positions over a block-sized cache (static shapes), the cache holding a longer earlier
    sequence's stale keys past the prompt: the logits are the full pass's."""
    full, decoded, _ = _static_decoding_against_full_pass(tiny(position))
    torch.testing.assert_close(decoded, full, atol=1e-5, rtol=1e-4)


def test_static_decoding_over_a_growing_span_of_the_cache_equals_the_full_sequence():
    """Static decoding attending over a prefix ("span") of the cache that grows with the position, the
    cache holding stale keys past it: the logits are the full pass's; a span too short is refused."""
    model = tiny("rope")
    full, decoded, cache = _static_decoding_against_full_pass(model, lambda t: next(s for s in (8, 16, 32, 48) if s > t))
    with torch.no_grad(), pytest.raises(ValueError, match="span=64"):
        model(torch.zeros(2, 1, dtype=torch.long), cache=cache, pos=torch.tensor(3), span=64)
    torch.testing.assert_close(decoded, full, atol=1e-5, rtol=1e-4)


def test_cache_and_block_size_limits():
    model = tiny("rope")
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 49, dtype=torch.long))
    with pytest.raises(ValueError, match="block_size"):
        model.make_cache(1, 100)


def test_activation_checkpointing_gives_the_same_gradients():
    plain, ckpt = tiny("rope").train(), tiny("rope", activation_checkpointing=True).train()
    ckpt.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 20, (2, 16))
    for m in (plain, ckpt):
        m(idx).logsumexp(-1).mean().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_weights_are_tied_and_the_export_round_trips(tmp_path):
    stage = CoarseLMStage(coarse_config())
    assert stage.model.head.weight is stage.model.embed.weight
    path = stage.save_pretrained(tmp_path / "coarse.safetensors")
    loaded = Stage.load_pretrained(path)
    assert isinstance(loaded, CoarseLMStage) and loaded.model.head.weight is loaded.model.embed.weight
    idx = torch.randint(0, stage.layout.vocab_size, (1, 20))
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx), stage.eval()(idx))


def test_condition_ids_shift_the_logits_and_cached_decoding_matches_the_full_pass():
    torch.manual_seed(0)
    cfg = TransformerConfig(d_model=32, n_layer=2, n_head=4, block_size=48)
    model = Transformer(cfg, vocab_size=20, num_conditions=5).eval()
    idx, cond = torch.randint(0, 20, (2, 30)), torch.randint(0, 6, (2, 30))
    with torch.no_grad():
        full = model(idx, conditions=cond)
        other = cond.clone()
        other[:, 12] = (other[:, 12] + 1) % 6
        assert not torch.allclose(model(idx, conditions=other)[:, 12], full[:, 12])  # the condition is read
        cache = model.make_cache(2, 30)
        steps = [model(idx[:, :7], cache=cache, pos=0, conditions=cond[:, :7])]
        steps += [model(idx[:, t : t + 1], cache=cache, pos=t, conditions=cond[:, t : t + 1]) for t in range(7, 30)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="condition ids"):
        model(idx)  # a conditioned model refuses to run without its condition ids
