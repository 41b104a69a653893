"""WCDGAN generator/discriminator wiring and the checkpoint format."""

from __future__ import annotations

import pytest
import torch

from export.receptive_field import block_pass_through
from models import (
    CheckpointError,
    Discriminator,
    GeneratorConfig,
    WCDGANGenerator,
    count_parameters,
    load_generator,
    save_generator,
)
from models.wcdgan import WCDB, DiscriminatorConfig, MixedConv, open_attention_gates

TINY = GeneratorConfig(features=16, num_blocks=1, branch_channels=8)


def test_default_generator_matches_paper_size():
    n_rgb = count_parameters(WCDGANGenerator())
    n_y = count_parameters(WCDGANGenerator(GeneratorConfig(in_channels=1)))
    print(f"WCDGAN generator parameters: RGB {n_rgb:,}  Y {n_y:,}")
    assert 1_600_000 <= n_rgb <= 1_750_000  # paper: 1.7 M
    assert n_rgb == 1_645_083 and n_y == 1_640_729


def test_generator_has_no_batchnorm():
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in WCDGANGenerator().modules())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("hw", [(1, 1), (17, 33), (40, 24)])
def test_generator_keeps_shape(channels, hw):
    g = WCDGANGenerator(GeneratorConfig(in_channels=channels, features=16, num_blocks=1, branch_channels=8)).eval()
    x = torch.rand(2, channels, *hw)
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_global_residual_option_adds_input():
    torch.manual_seed(0)
    plain = WCDGANGenerator(TINY).eval()
    res = WCDGANGenerator(GeneratorConfig(**{**TINY.__dict__, "global_residual": True})).eval()
    res.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(res(x), plain(x) + x)


def _impulse_radius(module: torch.nn.Module, channels: int, size: int = 97) -> int:
    """Radius (px) of the input region that influences the centre output pixel, from the input gradient."""
    x = torch.zeros(1, channels, size, size, requires_grad=True)
    module(x)[0, :, size // 2, size // 2].sum().backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1)).sum(dim=1) > 0).flatten()
    return int(size // 2 - rows.min())


def test_mixed_conv_dilation_sets_receptive_field():
    torch.manual_seed(0)
    for d in (1, 2, 4, 8):
        assert _impulse_radius(MixedConv(8, 4, d, 0.02), 8) == d


class _UnitGate(torch.nn.Module):
    """Stands in for channel attention: a gate of ones, so only the block's local path remains."""

    def forward(self, x):
        return torch.ones_like(x[:, :, :1, :1])


def test_wcdb_receptive_field_is_sum_of_dilations():
    # Chained dilations 1+2+4+8 = 15 px, plus 2 from the 5×5 spatial-attention conv. The channel attention's
    # global pooling is replaced by a unit gate so the local receptive field is measured alone.
    torch.manual_seed(0)
    block = WCDB(GeneratorConfig(features=8, branch_channels=4)).eval()
    block.attention.channel = _UnitGate()
    assert _impulse_radius(block, 8) == 15 + 2


def test_channel_attention_makes_output_depend_on_far_pixels():
    torch.manual_seed(0)
    g = WCDGANGenerator(TINY).eval()
    x = torch.rand(1, 3, 96, 96)
    y0 = g(x)[0, :, 0, 0]
    x2 = x.clone()
    x2[..., 80:, 80:] = 0  # far outside the convolutional receptive field of pixel (0, 0)
    assert (g(x2)[0, :, 0, 0] - y0).abs().max() > 0  # global pooling reaches every pixel


def test_discriminator_shapes_and_widths():
    d = Discriminator()
    out = d(torch.rand(3, 3, 80, 80))
    assert out.shape == (3, 1)
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 9 and convs[0].out_channels == 64 and convs[-1].out_channels == 512
    linears = [m for m in d.head if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2
    assert Discriminator(DiscriminatorConfig(in_channels=1))(torch.rand(2, 1, 80, 80)).shape == (2, 1)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    g = WCDGANGenerator(GeneratorConfig(in_channels=1, features=16, num_blocks=2, branch_channels=8))
    save_generator(tmp_path / "g.pt", g, {"iterations": 7})
    g2, meta = load_generator(tmp_path / "g.pt")
    assert meta == {"iterations": 7} and g2.cfg == g.cfg and not g2.training
    x = torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(g2(x), g.eval()(x))
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]  # no temporary left behind


def test_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        load_generator(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_generator(tmp_path / "text.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a WCDGAN"):
        load_generator(tmp_path / "other.pt")


def test_open_attention_gates_lets_local_detail_through_the_block_chain():
    """Default init: 8 chained blocks pass ~0.25⁸ of a local change; gates opened at bias 3 pass most of it."""

    def chain_sensitivity(model: WCDGANGenerator) -> float:
        with torch.no_grad():
            f0 = model.shallow(x)
            eps = 1e-3 * f0.abs().mean() * torch.randn(f0.shape, generator=torch.Generator().manual_seed(1))
            return float((model.blocks(f0 + eps) - model.blocks(f0)).abs().mean() / eps.abs().mean())

    cfg = GeneratorConfig(features=16, num_blocks=8, branch_channels=8)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    default = WCDGANGenerator(cfg)
    torch.manual_seed(0)
    opened = WCDGANGenerator(cfg)
    open_attention_gates(opened, 3.0)
    assert count_parameters(opened) == count_parameters(default)
    with torch.no_grad():
        gate = opened.blocks[0].attention.channel(opened.shallow(x))
    assert float(gate.min()) > 0.9
    assert chain_sensitivity(default) < 1e-3 < 0.1 < chain_sensitivity(opened)


HALF = GeneratorConfig(features=16, num_blocks=2, branch_channels=8, trunk="half", skip_around_attention=True)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("hw", [(1, 1), (17, 33), (40, 24)])
def test_half_trunk_keeps_shape_and_starts_near_the_identity(channels, hw):
    """Any size (odd ones padded inside); the output convolution starts small, so the untrained model changes its
    input by a few 8-bit levels on average (PyTorch's default: tens): training starts near the JPEG."""
    g = WCDGANGenerator(GeneratorConfig(**{**HALF.__dict__, "in_channels": channels})).eval()
    x = torch.rand(2, channels, *hw)
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape and 0 < (y - x).abs().mean() < 4 / 255


def _perturbed_half(channels: int = 3) -> WCDGANGenerator:
    torch.manual_seed(0)
    g = WCDGANGenerator(GeneratorConfig(**{**HALF.__dict__, "in_channels": channels}))
    torch.nn.init.normal_(g.reconstruct[-1].weight, std=0.05)  # as after training: the residual is not zero
    return g.eval()


def test_half_trunk_reads_chroma_at_its_coded_resolution():
    """A 4:2:0 JPEG codes Cb/Cr once per 2×2 pixels: a chroma change that keeps every 2×2 mean (luma unchanged)
    leaves the model's correction unchanged, while a luma change at one pixel does not."""
    g = _perturbed_half()
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 0.5 + 0.25
    # ±d along the Cb axis in RGB (zero luma) on the two pixels of one 2×2 cell: its Cb mean stays.
    cb = torch.tensor([0.0, -0.344136, 1.772])  # RGB change of +1 in Cb (JFIF inverse), luma 0
    moved = x.clone()
    moved[0, :, 4, 4] += 0.05 * cb
    moved[0, :, 4, 5] -= 0.05 * cb
    luma = x.clone()
    luma[0, :, 4, 4] += 0.05
    with torch.no_grad():
        base, chroma_only, luma_only = g(x) - x, g(moved) - moved, g(luma) - luma
    assert (chroma_only - base).abs().max() < 1e-5
    assert (luma_only - base).abs().max() > 1e-3


def _impulse_radius_of(g: WCDGANGenerator, size: int = 129) -> int:
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    g(x)[0, :, size // 2, size // 2].sum().backward()
    g_abs = x.grad.abs().sum(dim=(0, 1))
    rows = torch.nonzero(g_abs.sum(dim=1) >= 1e-2 * g_abs.max()).flatten()  # local field (GAP reaches all)
    return int(size // 2 - rows.min())


def test_half_trunk_doubles_the_field_in_pixels():
    full = WCDGANGenerator(GeneratorConfig(**{**HALF.__dict__, "trunk": "full"})).eval()
    torch.nn.init.normal_(full.reconstruct[-1].weight, std=0.05)
    r_full, r_half = _impulse_radius_of(full), _impulse_radius_of(_perturbed_half())
    assert r_half >= 2 * r_full >= 4, (r_full, r_half)


def _block_pass_through(cfg: GeneratorConfig) -> float:
    torch.manual_seed(0)
    x = torch.rand(1, cfg.in_channels, 32, 32, generator=torch.Generator().manual_seed(0))
    return block_pass_through(WCDGANGenerator(cfg).eval(), x)[0]


def test_skip_around_attention_passes_local_change_through_each_block():
    """The paper's block multiplies its skip by both gates (≈ 0.5 each at init): ≈ 0.25 of a local change passes.
    With the skip around the attention at least all of it passes."""
    paper = _block_pass_through(GeneratorConfig(**{**HALF.__dict__, "skip_around_attention": False}))
    around = _block_pass_through(HALF)
    assert paper < 0.4 and around >= 0.9, (paper, around)


def test_half_trunk_checkpoint_round_trip(tmp_path):
    g = _perturbed_half()
    save_generator(tmp_path / "h.pt", g, {"note": "half"})
    loaded, meta = load_generator(tmp_path / "h.pt")
    assert loaded.cfg == g.cfg and meta == {"note": "half"}
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), g(x))


def test_unknown_trunk_is_refused():
    with pytest.raises(ValueError, match="trunk must be one of"):
        GeneratorConfig(trunk="quarter")
