"""FP16 and BF16 through the torch runner for every registered preset, on CPU.

FP16 is the torch runner's default on a GPU and BF16 its other half precision; a network
that feeds an FP32 tensor to a half-precision layer (pix2pixHD's one-hot did) fails there
on its first call. This matrix runs each preset's CI-size bundle through the runner at
FP32, FP16 and BF16 (batch 2, eager; FP16 convolutions through FP32 on CPU, see
``sdk.train.deploy.precision.cpu_fp16_convolutions``) and bounds the relative L2 error of
every float output against FP32 (:data:`BOUNDS`).
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from sdk import Bundle
from sdk.train.deploy.precision import cpu_fp16_convolutions
from sdk.train.deploy.runner import TorchRunner
from sdk.train.models import list_models

BOUNDS = {"fp16": 1e-2, "bf16": 6e-2}
"""Relative L2 against FP32. Measured on 2026-12-02 (2-core AMD EPYC, torch 2.13 CPU, these
bundles, batch 2): FP16 1.0e-3..3.2e-3, BF16 7.5e-3..2.5e-2 (oasis-coco the worst of both;
BF16 keeps 8 significant bits to FP16's 11, hence ~8x). About 3x (FP16) and 2.4x (BF16)
the worst figure: a broken dtype flow (NaN, a half layer fed FP32, a norm run in half precision) fails and rounding does not."""


def rel_l2(got: np.ndarray, ref: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    return float(np.linalg.norm(got.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-12))


@pytest.mark.parametrize("name", list_models())
def test_half_precisions_match_fp32(small_bundle, name):
    bundle = Bundle(small_bundle(name))
    fp32 = TorchRunner(bundle, device="cpu", precision="fp32")
    feeds = {s.name: x.numpy() for s, x in zip(fp32.spec.inputs, fp32.spec.examples(2, seed=0))}
    ref = fp32.run(feeds)
    for precision in ("fp16", "bf16"):
        out = TorchRunner(bundle, device="cpu", precision=precision).run(feeds)
        assert set(out) == set(ref)
        for key, value in out.items():
            assert value.dtype == ref[key].dtype and value.shape == ref[key].shape, (precision, key)
            if value.dtype == np.float32:
                assert np.isfinite(value).all(), (precision, key)
                err = rel_l2(value, ref[key])
                assert err <= BOUNDS[precision], f"{name} {precision} {key}: relative L2 {err:.3g} > {BOUNDS[precision]}"


def test_fp16_on_cpu_says_it_is_for_testing(small_bundle, caplog):
    with caplog.at_level(logging.WARNING, logger="sdk"):
        runner = TorchRunner(Bundle(small_bundle("progan-64")), device="cpu", precision="fp16")
    assert runner.precision == "fp16" and runner.describe() == "torch eager fp16 cpu"
    lines = [r.getMessage() for r in caplog.records if "fp16 on CPU" in r.getMessage()]
    assert len(lines) <= 1 and all("\n" not in line and "for testing" in line and "slow" in line for line in lines)


def test_cpu_fp16_convolutions_round_like_a_gpu_and_keep_dtype_errors():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 5, 3, padding=1).half()
    x = torch.randn(2, 6, 9, 9).half()
    want = torch.nn.functional.conv2d(x.float(), conv.weight.float(), conv.bias.float(), padding=1).half()
    up = torch.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1).half()
    with torch.inference_mode(), cpu_fp16_convolutions():
        got = conv(x)
        assert got.dtype == torch.float16 and torch.equal(got, want)  # FP32 accumulation, rounded once
        assert up(x).dtype == torch.float16 and up(x).shape == (2, 4, 18, 18)
        with pytest.raises(RuntimeError, match="should be the same"):
            conv(x.float())  # an FP32 input to an FP16 layer still fails, as on a GPU
        assert torch.nn.Conv2d(6, 5, 1)(x.float()).dtype == torch.float32  # FP32 layers untouched
