"""The arena plan against a floor worked out here from the graph alone: the largest
number of bytes live at any one step. The README's claim: the arena equals that floor
(rounded to the 16-byte alignment), and no two tensors live at the same step overlap."""

from __future__ import annotations

import numpy as np
import pytest

from tinygen.compiler.ir import Graph
from tinygen.compiler.pipeline import compile_model
from tinygen.compiler.plan import ALIGN, Plan, make_plan
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model

# README "Measured (host build)" table: the arena of each model, 1 s window.
README_ARENA = {"mcu-tiny": 37_312, "share-blocks": 19_248, "paper-5m": 307_968}

ELEMENTWISE = ("add", "mul", "logistic")  # output[i] is a function of inputs[i]


class Lifetimes:
    """Activation tensors of the int8 graph, read from its nodes: a reshape is its input
    (no copy), constants live in flash, the model input is live from the first step and
    the output until after the last; everything else from the step that writes it to the
    last step that reads it."""

    def __init__(self, graph: Graph) -> None:
        alias: dict[str, str] = {}
        self.steps: list[tuple[str, list[str], list[str]]] = []
        for n in graph.nodes:
            if n.op == "reshape":
                alias[n.outputs[0]] = n.inputs[0]
                continue
            ins = [t for t in n.inputs if t and not graph.values[t].is_const]
            self.steps.append((n.op, [self._root(alias, t) for t in ins],
                               [self._root(alias, t) for t in n.outputs]))
        self.alias = alias
        self.size = {t: int(np.prod(graph.values[t].shape, dtype=np.int64))
                     for _, ins, outs in self.steps for t in (*ins, *outs)}
        self.span: dict[str, tuple[int, int]] = {}
        for i, (_, ins, outs) in enumerate(self.steps):
            for t in (*ins, *outs):
                a, z = self.span.get(t, (i, i))
                self.span[t] = (min(a, i), max(z, i))
        self.input = self._root(alias, graph.inputs[0])
        self.output = self._root(alias, graph.outputs[0])
        self.span[self.input] = (0, self.span[self.input][1])
        self.span[self.output] = (self.span[self.output][0], len(self.steps))

    @staticmethod
    def _root(alias: dict[str, str], t: str) -> str:
        while t in alias:
            t = alias[t]
        return t

    def live(self, i: int) -> list[str]:
        return [t for t, (a, z) in self.span.items() if a <= i <= z]

    def in_place(self, i: int) -> tuple[str, str] | None:
        """(input, output) of step i when an elementwise op may write over an input of the
        output's size that no later step reads (not the model's input or output)."""
        op, ins, outs = self.steps[i]
        if op not in ELEMENTWISE or outs[0] in (self.input, self.output):
            return None
        for t in ins:
            if t != self.input and self.span[t][1] == i and self.size[t] == self.size[outs[0]]:
                return t, outs[0]
        return None

    def floor(self) -> int:
        peak = 0
        for i in range(len(self.steps)):
            live = sum(self.size[t] for t in self.live(i))
            pair = self.in_place(i)
            peak = max(peak, live - (self.size[pair[1]] if pair else 0))
        return peak


@pytest.fixture(scope="module", params=sorted(README_ARENA))
def planned(request: pytest.FixtureRequest) -> tuple[str, Graph, Plan]:
    name = request.param
    model = load_model(f"preset:{name}")
    frames = window_frames(model.cfg, 1000)
    graph = compile_model(model, frames, inputs(model.cfg, frames, 1, seed=0)).int8
    return name, graph, make_plan(graph)


def test_arena_equals_the_live_bytes_floor(planned: tuple[str, Graph, Plan]) -> None:
    name, graph, plan = planned
    floor = Lifetimes(graph).floor()
    print(f"{name}: arena {plan.arena_bytes:,} B, live-bytes floor {floor:,} B")
    assert plan.arena_bytes == -(-floor // ALIGN) * ALIGN
    assert plan.arena_bytes == README_ARENA[name]


def test_live_tensors_never_share_bytes(planned: tuple[str, Graph, Plan]) -> None:
    """At every step, the arena ranges of the tensors live there are disjoint, except an
    elementwise output written over the input it replaces (the same range)."""
    _, graph, plan = planned
    life = Lifetimes(graph)
    for i in range(len(life.steps)):
        pair = life.in_place(i)
        ranges = [(plan.offset(t), plan.offset(t) + life.size[t], t) for t in life.live(i)]
        for k, (a0, a1, ta) in enumerate(ranges):
            assert a0 >= 0 and a1 <= plan.arena_bytes, (i, ta)
            for b0, b1, tb in ranges[k + 1:]:
                if pair is not None and {ta, tb} == set(pair):
                    assert (a0, a1) == (b0, b1), (i, ta, tb)
                    continue
                assert a1 <= b0 or b1 <= a0, \
                    f"step {i}: {ta} [{a0}, {a1}) overlaps {tb} [{b0}, {b1})"
