"""Frontend (torch.export -> IR) and each Graph -> Graph pass on its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tinygen.compiler import passes
from tinygen.compiler.capture import UnsupportedOpError, capture
from tinygen.compiler.ir import Graph
from tinygen.reference import floatref
from tinygen.speech.checkpoint import load_model


def run_both(model: nn.Module, graph: Graph, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        ref = model(x).numpy()
    return floatref.run(graph, [x.numpy()])[0], ref


@pytest.fixture(scope="module")
def mcu_tiny() -> tuple[nn.Module, Graph, torch.Tensor]:
    model = load_model("preset:mcu-tiny")
    x = torch.randn(1, 101, model.cfg.n_mels, generator=torch.Generator().manual_seed(0))
    return model, capture(model, x), x


def test_capture_matches_torch_and_keeps_sharing(mcu_tiny) -> None:  # type: ignore[no-untyped-def]
    model, graph, x = mcu_tiny
    got, ref = run_both(model, graph, x)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    users = graph.users()
    down = model.shared_factors["ffn_w1_down"]
    (const,) = [v for v in graph.constants() if v.data is not None
                and v.data.shape == tuple(down.shape)
                and np.array_equal(v.data, down.detach().numpy())]
    assert len(users[const.name]) == 12  # 6 virtual layers x 2 macaron halves
    # One constant per unique parameter tensor that the forward pass reads.
    weights = {id(p) for n, p in model.named_parameters() if not n.endswith("bn.weight")
               and not n.endswith("bn.bias")}
    assert sum(1 for v in graph.constants() if v.shape != ()) >= len(weights)


def test_unsupported_op_names_op_origin_and_list() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.GELU())
    with pytest.raises(UnsupportedOpError) as info:
        capture(model, torch.randn(1, 3, 4))
    msg = str(info.value)
    assert "gelu" in msg and "at 1" in msg and "linear" in msg and "silu" in msg
    assert "rewrite it with the ops tinygen compiles" in msg  # what to do instead


class ConvBN(nn.Module):
    def __init__(self, share: bool, same_bn: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 5, padding=2, groups=8)
        self.conv2 = self.conv if share else nn.Conv1d(8, 8, 5, padding=2, groups=8)
        self.bn1 = nn.BatchNorm1d(8)
        self.bn2 = self.bn1 if same_bn else nn.BatchNorm1d(8)
        for bn in (self.bn1, self.bn2):
            with torch.no_grad():
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
                bn.weight.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C)
        h = self.bn1(self.conv(x.transpose(1, 2)))
        h = self.bn2(self.conv2(h))
        return h.transpose(1, 2)


@pytest.mark.parametrize("share,same_bn,folds", [(False, False, True), (True, True, True),
                                                 (True, False, False)])
def test_fold_batch_norm(share: bool, same_bn: bool, folds: bool) -> None:
    model = ConvBN(share, same_bn).eval()
    x = torch.randn(1, 12, 8, generator=torch.Generator().manual_seed(1))
    g = passes.fold_batch_norm(capture(model, x))
    assert ("batch_norm" in g.op_counts()) is not folds
    got, ref = run_both(model, g, x)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    if share:  # still one weight constant for both convolutions
        assert g.op_counts()["depthwise_conv2d"] == 2
        w = {n.inputs[1] for n in g.nodes if n.op == "depthwise_conv2d"}
        assert len(w) == 1


class Scaled(nn.Module):
    def __init__(self, both: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.both = both

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + 0.5 * self.lin(x)
        return y + (0.5 if self.both else 0.25) * self.lin(y)


@pytest.mark.parametrize("both", [True, False])
def test_fold_constant_scaling_only_when_sharing_survives(both: bool) -> None:
    model = Scaled(both).eval()
    x = torch.randn(1, 3, 6, generator=torch.Generator().manual_seed(2))
    g0 = capture(model, x)
    g = passes.fold_constant_scaling(g0)
    assert g.op_counts().get("mul", 0) == (0 if both else 2)
    (w,) = {n.inputs[1] for n in g.nodes if n.op == "linear"}  # one shared weight
    factor = 0.5 if both else 1.0
    np.testing.assert_allclose(g.values[w].data, model.lin.weight.detach().numpy() * factor,
                               rtol=1e-6)
    got, ref = run_both(model, g, x)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert g0.op_counts()["mul"] == 2  # the input graph is untouched


def test_fold_scaling_through_attention_matmul(mcu_tiny) -> None:  # type: ignore[no-untyped-def]
    model, graph, x = mcu_tiny
    g = passes.fold_constant_scaling(passes.optimize_layout(graph))
    assert "mul" not in g.op_counts()  # macaron halves and 1/sqrt(dh) all folded
    got, ref = run_both(model, g, x)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_dce_removes_unused_work() -> None:
    class Dead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _unused = self.b(x)
            return self.a(x)

    g = capture(Dead().eval(), torch.randn(1, 4))
    cleaned = passes.eliminate_dead_code(g)
    assert cleaned.op_counts() == {"linear": 1}
    assert sum(1 for _ in cleaned.constants()) == 2


def test_infer_shapes_recomputes_and_checks(mcu_tiny) -> None:  # type: ignore[no-untyped-def]
    _, graph, _ = mcu_tiny
    g = passes.optimize(graph)
    want = {k: v.shape for k, v in g.values.items()}
    for name in g.values:
        if not g.values[name].is_const and name not in g.inputs:
            g.values[name].shape = (0,)
    g = passes.infer_shapes(g)
    assert {k: v.shape for k, v in g.values.items()} == want
    bad = g.copy()
    next(n for n in bad.nodes if n.op == "reshape").attrs["shape"] = [1, 2, 3]
    with pytest.raises(ValueError, match="changes the size"):
        passes.infer_shapes(bad)


def test_layout_and_cse_on_the_full_pipeline() -> None:
    model = load_model("preset:share-subcomponents")  # k and v share one projection
    x = torch.randn(1, 101, model.cfg.n_mels, generator=torch.Generator().manual_seed(3))
    g0 = capture(model, x)
    g = passes.optimize(g0)
    counts = g.op_counts()
    assert counts["linear"] == g0.op_counts()["linear"] - 4  # k/v computed once per layer
    # Only the attention head split/merge moves data: 3 per layer (q, k=v, context).
    assert counts["transpose"] == 3 * 4
    assert "batch_norm" not in counts and "mul" not in counts and "relu" not in counts
    got, ref = run_both(model, g, x)
    np.testing.assert_allclose(got, ref, atol=1e-4)
