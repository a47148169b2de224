"""MSG U-Net: multi-scale input and output, block types, depth, FLOPs against pix2pixHD."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sdk.train.families.msgunet.network import MSGUNetConfig, MSGUNetModel
from sdk.train.models.registry import get_preset

SMALL = MSGUNetConfig(height=32, width=64, ngf=4, max_width=16, n_down=5)


def _meta(name: str) -> MSGUNetModel:
    with torch.device("meta"):
        return get_preset(name).build()


def test_cityscapes_graph_outputs_every_scale() -> None:
    model = _meta("msgunet-cityscapes-2048")
    assert model.task == "image2image"
    g = model.graphs()["model"]
    assert [(t.name, t.kind, t.shape) for t in g.inputs] == [("source", "image", (None, 3, 1024, 2048))]
    assert [t.name for t in g.outputs] == ["image", "image_1024x512", "image_512x256",
                                           "image_256x128", "image_128x64"]
    assert all(t.kind == "image" for t in g.outputs)
    assert g.outputs[-1].shape == (None, 3, 64, 128)


def test_full_size_depth_and_output_shapes_on_meta() -> None:
    model = _meta("msgunet-cityscapes-2048")
    seen = {}
    model.netG.down[-1].register_forward_hook(lambda m, i, o: seen.update(bottleneck=o.shape))
    outs = model(torch.empty(1, 3, 1024, 2048, device="meta"))
    assert seen["bottleneck"] == (1, 512, 4, 8)  # plain U-Net down to 8x4
    assert [o.shape[-2:] for o in outs] == [(1024 // 2**s, 2048 // 2**s) for s in range(5)]
    assert len(_meta("msgunet-512").graphs()["model"].outputs) == 5


def test_source_enters_every_scale_down_to_one_sixteenth() -> None:
    torch.manual_seed(0)
    net = MSGUNetModel(SMALL).netG.eval()
    src = torch.rand(1, 3, 32, 64) * 2 - 1
    grabbed = []
    for block in net.inject:
        block.register_forward_hook(lambda m, i, o: grabbed.append(i[0]))
    net(src)
    assert len(grabbed) == 4
    for s, x in enumerate(grabbed, start=1):
        assert x.shape[1] == net.widths[s] + 3 and x.shape[-2:] == (32 // 2**s, 64 // 2**s)
        torch.testing.assert_close(x[:, -3:], F.avg_pool2d(src, 2**s))


def test_blocks_are_conv_bn_leakyrelu_4x4() -> None:
    net = MSGUNetModel(SMALL).netG
    for block in net.down:
        conv, bn, act = block
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (4, 4) and conv.stride == (2, 2)
        assert isinstance(bn, nn.BatchNorm2d) and isinstance(act, nn.LeakyReLU)
    for block in net.up:
        convt, bn, act = block
        assert isinstance(convt, nn.ConvTranspose2d) and convt.kernel_size == (4, 4)
        assert isinstance(bn, nn.BatchNorm2d) and isinstance(act, nn.LeakyReLU)
    assert all(b[0].kernel_size == (1, 1) for b in net.inject)
    # U-Net skips: every decoder block after the first takes twice its scale's width
    assert [b[0].in_channels for b in net.up][1:] == [2 * w for w in net.widths[1:-1][::-1]]


def test_forward_and_discriminators_at_reduced_size() -> None:
    torch.manual_seed(0)
    model = MSGUNetModel(dataclasses.replace(SMALL, ndf=8))
    src = torch.rand(2, 3, 32, 64) * 2 - 1
    outs = model(src)
    assert [o.shape for o in outs] == [(2, 3, 32 // 2**s, 64 // 2**s) for s in range(5)]
    assert all(o.abs().max() <= 1 for o in outs)
    netD = model.build_discriminator()
    assert len(netD.nets) == 5
    scores = netD(src, outs)
    assert len(scores) == 5 and all(len(feats) == 5 for feats in scores)
    assert all(feats[-1].shape[:2] == (2, 1) for feats in scores)
    sum(feats[-1].mean() for feats in scores).backward()  # gradients reach the coarse decoder layers
    assert net_grad(model.netG.to_rgb[4]) and net_grad(model.netG.up[0])


def net_grad(module: nn.Module) -> bool:
    return all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def _flops(name: str) -> int:
    with torch.device("meta"):
        g = get_preset(name).build().graphs()["model"]
        ex = [torch.empty(tuple(1 if s is None else s for s in t.shape), dtype=getattr(torch, t.dtype))
              for t in g.inputs]
        with FlopCounterMode(display=False) as counter:
            g.module(*ex)
    return counter.get_total_flops()


def test_flops_at_2048x1024_well_below_pix2pixhd() -> None:
    msg, p2p = _flops("msgunet-cityscapes-2048"), _flops("pix2pixhd-cityscapes-2048")
    # paper: 1.28 vs 3.32 TFLOPs (ratio 0.386); ours 0.54 vs 1.50 TFLOPs (FLOP = 2 MACs)
    assert 0.5e12 < msg < 0.6e12
    assert msg / p2p < 1.28 / 3.32
