"""train.soup: the weighted weight average of checkpoints of one architecture, as a command."""

from __future__ import annotations

import torch

from models import GeneratorConfig, WCDGANGenerator, load_generator, save_generator
from train.soup import main

TINY = GeneratorConfig(features=8, num_blocks=1, branch_channels=4, global_residual=True)


def _checkpoint(path, seed: int, cfg: GeneratorConfig = TINY, **meta) -> WCDGANGenerator:
    torch.manual_seed(seed)
    model = WCDGANGenerator(cfg).eval()
    save_generator(path, model, {"iterations": seed, "val_psnr": 30.0 + seed, **meta})
    return model


def test_the_soup_is_the_weighted_mean_of_the_weights(tmp_path, capsys):
    a, b = _checkpoint(tmp_path / "a.pt", 1), _checkpoint(tmp_path / "b.pt", 2, qualities=[5, 10])
    out = tmp_path / "soup.pt"
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--weights", "1", "3", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    soup, meta = load_generator(out)
    for key, value in soup.state_dict().items():
        torch.testing.assert_close(value, 0.25 * a.state_dict()[key] + 0.75 * b.state_dict()[key])
    # the file restores as a model of the same architecture; the last input's facts, not its scores
    assert soup.cfg == TINY and meta["qualities"] == [5, 10] and "val_psnr" not in meta
    assert [s["weight"] for s in meta["soup"]] == [1.0, 3.0]
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert not torch.allclose(soup(x), a(x)) and not torch.allclose(soup(x), b(x))


def test_mistakes_are_one_line_and_write_nothing(tmp_path, capsys):
    _checkpoint(tmp_path / "a.pt", 1)
    _checkpoint(tmp_path / "wide.pt", 2, GeneratorConfig(features=16, num_blocks=1, branch_channels=4))
    before = (tmp_path / "a.pt").read_bytes()
    cases = [
        (["a.pt", "wide.pt", "-o", "s.pt"], "different architectures"),
        (["a.pt", "a.pt", "-o", "a.pt"], "a.pt: is one of the inputs"),
        (["a.pt", "missing.pt", "-o", "s.pt"], "missing.pt"),
        (["a.pt", "a.pt", "--weights", "1", "-o", "s.pt"], "one weight per checkpoint"),
        (["a.pt", "a.pt", "--weights", "1", "-1", "-o", "s.pt"], "non-negative"),
    ]
    for argv, message in cases:
        assert main([str(tmp_path / a) if a.endswith(".pt") else a for a in argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "s.pt").exists() and (tmp_path / "a.pt").read_bytes() == before
    (tmp_path / "s.pt").write_bytes(b"kept")
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "a.pt"), "-o", str(tmp_path / "s.pt")]) == 2
    assert "exists" in capsys.readouterr().err and (tmp_path / "s.pt").read_bytes() == b"kept"
