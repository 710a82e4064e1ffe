"""The compiler: a PyTorch module in, a planned int8 graph and its C out.

The stages, in the order a weight flows through them (one module each):

1. ``capture``  — ``torch.export`` the module and lower it to the IR; constants keyed by
   the identity of their ``nn.Parameter``, so a shared weight is one IR constant.
2. ``ir``       — the graph: values, nodes, constants and their quantization.
3. ``passes``   — ``Graph -> Graph`` rewrites (BatchNorm folding, constant scaling, layout).
4. ``quantize`` — calibration ranges and the int8 graph; one set of quantization
   parameters per shared weight, activation ranges per use.
5. ``plan``     — the layer schedule and the static arena offsets.
6. ``codegen``  — C: weight pool, schedule table, model header (jinja2 templates).

``pipeline`` runs stages 1–4 (``compile_model``); the build command adds 5 and 6.

May import: ``tinygen.errors``, ``tinygen.fsutil``, ``tinygen.resources``, the golden
reference (``tinygen.reference``) and itself. Never the speech model or its training
(``tinygen.speech``), the targets, or the command modules: see ``tinygen.layers``.
"""
