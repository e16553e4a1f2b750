"""Truncating a network at named graph nodes, declaratively.

Nodes are the names ``torchvision.models.feature_extraction.get_graph_node_names(model)`` lists (eval mode),
or the name of a module (``features.13``), which stands for that module's output.
``"default"`` means the pooled features right before the classifier. Several nodes come out of one forward
pass. Where FX cannot trace a model, module outputs are captured with forward hooks instead.
"""

from __future__ import annotations

import copy
import difflib
import logging
import warnings
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from headstart.errors import UserError
from headstart.features.pooling import pool

__all__ = [
    "Extractor",
    "classifier_name",
    "NodeError",
    "build_extractor",
    "default_node",
    "fold_batchnorm",
    "graph_nodes",
    "resolve_layers",
]

log = logging.getLogger(__name__)

_HEAD_NAMES = ("fc", "classifier", "head", "heads", "last_linear")


class NodeError(UserError, ValueError):
    """A node that the model's graph does not have."""


def graph_nodes(model: nn.Module) -> list[str]:
    """The eval-mode graph nodes of ``model``, in execution order."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="NOTE: The nodes obtained by tracing")
            return list(get_graph_node_names(model)[1])
    except Exception as err:  # noqa: BLE001 - FX cannot trace everything; modules are still addressable
        log.warning("FX could not trace %s (%s); only module names can be used as layers", type(model).__name__, err)
        return [name for name, _ in model.named_modules() if name]


def classifier_name(model: nn.Module) -> str | None:
    """The top-level child that holds the classifier (``fc``, ``classifier``, ``heads``, ...), or ``None``."""
    children = [name for name, _ in model.named_children()]
    head = next((name for name in reversed(children) if name in _HEAD_NAMES), None)
    if head is None:
        linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
        head = linears[-1].split(".")[0] if linears else None
    return head


def default_node(model: nn.Module, nodes: list[str]) -> str:
    """The last node before the classifier: the pooled features the classifier reads."""
    head = classifier_name(model)
    if head is not None:
        modules = dict(model.named_modules())
        for i, node in enumerate(nodes):
            if node == head or node.startswith(head + "."):
                # step back over dropout (an identity in eval mode) to the node that computes the features
                j = i - 1
                while j > 0 and isinstance(modules.get(nodes[j]), nn.Dropout):
                    j -= 1
                if j < 0:
                    break
                return nodes[j]
    raise NodeError(
        f"cannot tell where the classifier of {type(model).__name__} starts; name the layer "
        "explicitly (see torchvision.models.feature_extraction.get_graph_node_names)"
    )


def resolve_layers(arch: str, nodes: list[str], default: str, layers: tuple[str, ...]) -> tuple[str, ...]:
    """Replace ``"default"`` by the default node and check every node exists."""
    resolved = []
    for layer in layers:
        node = default if layer == "default" else layer
        # a module name (e.g. `features.13`) stands for the module's output, its last node
        if node not in nodes and not any(n.startswith(node + ".") for n in nodes):
            close = difflib.get_close_matches(node, nodes, n=5, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NodeError(
                f"{arch} has no node '{node}'{hint} Its nodes are listed by "
                f"`headstart backbones {arch}` (torchvision.models.feature_extraction.get_graph_node_names)"
                f"; e.g. {', '.join(nodes[-6:])}"
            )
        if node not in resolved:
            resolved.append(node)
    return tuple(resolved)


class Extractor(nn.Module):
    """One forward pass, several nodes and pooling modes: ``{(node, pooling): (N, D) float tensor}``."""

    def __init__(
        self, body: nn.Module, outputs: dict[str, str], poolings: tuple[str, ...], hooks: bool = False
    ) -> None:
        super().__init__()
        self.body = body
        self.outputs = outputs  # output key -> node
        self.poolings = poolings
        self.hooks = hooks
        self.reentrant = not hooks  # passes may run in several threads at once (hooks keep per-pass state)
        self.applied: dict[tuple[str, str], str] = {}
        self._captured: dict[str, torch.Tensor] = {}
        if hooks:
            modules = dict(body.named_modules())
            for key, node in outputs.items():
                modules[node].register_forward_hook(self._capture(key))

    def _capture(self, key: str) -> Any:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            self._captured[key] = output

        return hook

    def forward(self, x: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
        if self.hooks:
            self._captured = {}
            self.body(x)
            raw = self._captured
        else:
            raw = self.body(x)
        out = {}
        for key, node in self.outputs.items():
            for mode in self.poolings:
                vectors, applied = pool(raw[key], mode)
                self.applied[(node, mode)] = applied
                out[(node, mode)] = vectors.float()
        return out


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``model`` (eval mode) with every BatchNorm that directly follows a convolution folded into it.

    Module names stay the same (the BatchNorm becomes an ``nn.Identity``), so graph nodes keep their names.
    The output is the same up to float rounding; on a CPU it is faster (docs/performance.md), because each
    BatchNorm is one pass less over the activations. Written here rather than
    ``torch.fx.experimental.optimization.fuse``, which returns a traced copy without the BatchNorm modules whose
    graph nodes are not the model's (MobileNetV2: 102 instead of 84), the names params.yaml's ``layers`` use.
    """
    model = copy.deepcopy(model).eval()
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as err:  # noqa: BLE001 - untraceable models run unfolded
        log.debug("not folding BatchNorm of %s: %s", type(model).__name__, err)
        return model, 0
    modules = dict(model.named_modules())

    def replace(target: str, module: nn.Module) -> None:
        parent, _, name = target.rpartition(".")
        setattr(modules[parent] if parent else model, name, module)

    folded = 0
    for node in graph.nodes:
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, nn.BatchNorm2d) or not bn.track_running_stats:
            continue
        source = node.args[0]
        if not (isinstance(source, fx.Node) and source.op == "call_module" and len(source.users) == 1):
            continue
        conv = modules.get(source.target)
        if isinstance(conv, nn.Conv2d):
            replace(source.target, fuse_conv_bn_eval(conv, bn))
            replace(node.target, nn.Identity())
            folded += 1
    return model, folded


def build_extractor(model: nn.Module, nodes: tuple[str, ...], poolings: tuple[str, ...]) -> Extractor:
    """Truncate ``model`` after the last of ``nodes`` (BatchNorm folded) and return an :class:`Extractor`."""
    outputs = {f"out{i}": node for i, node in enumerate(nodes)}
    model, folded = fold_batchnorm(model)
    if folded:
        log.debug("folded %d BatchNorm layers into their convolutions", folded)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="NOTE: The nodes obtained by tracing")
            body = create_feature_extractor(model, return_nodes={node: key for key, node in outputs.items()})
        return Extractor(body.eval(), outputs, poolings)
    except Exception as err:  # noqa: BLE001 - fall back to hooks when FX tracing fails
        modules = dict(model.named_modules())
        missing = [n for n in nodes if n not in modules]
        if missing:
            raise NodeError(
                f"FX could not trace {type(model).__name__} ({err}) and {missing} are not module names, "
                "so hooks cannot reach them either; choose module names"
            ) from err
        log.warning(
            "FX could not trace %s (%s); capturing %s with forward hooks", type(model).__name__, err, ", ".join(nodes)
        )
        return Extractor(model.eval(), outputs, poolings, hooks=True)
