"""A model's graph, read as one chain of layers from its one input to its one output.

denselab runs a dense network as a chain: each layer feeds the next. ``model.layers`` lists
a model's layers whatever the graph, so the graph itself is read here: a model with several
inputs or outputs, a layer applied twice (shared weights) or a layer that joins branches
(``Add``, ``Concatenate``) is refused, with the reason, before any work.

:func:`chain` reads a live Keras 3 model; :func:`saved_chain` reads the graph a model file
saved as JSON (Keras 2.0 to 3.x spellings), for a file Keras 3 cannot load itself.
"""

from __future__ import annotations

from ..backend import keras as _keras
from ..errors import DenselabError

MAX_NESTING = 8  # models inside models; deeper is a damaged or hostile file
MODEL_CLASSES = ("Sequential", "Model", "Functional")

_ONE_CHAIN = "denselab handles one chain of layers, from one input to one output"


def chain(model) -> list:
    """The layers of ``model`` from input to output (nested models opened), or a refusal."""
    layers = _live_chain(model, 0)
    seen: dict[int, int] = {}
    for layer in layers:
        seen[id(layer)] = seen.get(id(layer), 0) + 1
    for layer in layers:
        if seen[id(layer)] > 1:
            raise DenselabError(_shared(layer.name, seen[id(layer)]))
    return layers


def saved_chain(config: dict, depth: int = 0) -> list[dict]:
    """The layer configs of a saved model config, from input to output (nested models opened).

    ``config`` is ``{"class_name": "Sequential" | "Model" | "Functional", "config": ...}`` as a
    Keras ``model_config`` holds it. The first entry is the ``InputLayer`` when the file has
    one (a Keras 2 Sequential often has none: its first layer says ``batch_input_shape``).
    """
    if depth > MAX_NESTING:
        raise DenselabError(f"models nested more than {MAX_NESTING} deep")
    body = config.get("config")
    if config.get("class_name") == "Sequential":
        layers = body if isinstance(body, list) else _get(body, "layers", list)  # 2.1: a list
    elif config.get("class_name") in ("Model", "Functional"):
        layers = _functional_chain(_dict(body, "the model's config"))
    else:
        raise DenselabError(f"the model is a {config.get('class_name')!r}, not a Keras model")
    opened: list[dict] = []
    for layer in layers:
        layer = _dict(layer, "a layer")
        if layer.get("class_name") in MODEL_CLASSES:
            inner = saved_chain(layer, depth + 1)
            opened.extend(x for x in inner if x.get("class_name") != "InputLayer")
        else:
            opened.append(layer)
    return opened


def layer_name(layer: dict) -> str:
    """A saved layer's name (functional configs repeat it outside ``config``)."""
    name = layer.get("name")
    if not isinstance(name, str) and isinstance(layer.get("config"), dict):
        name = layer["config"].get("name")
    if not isinstance(name, str):
        raise DenselabError(f"a {layer.get('class_name')!r} layer has no name")
    return name


# --- a live Keras 3 model ---------------------------------------------------------------------


def _live_chain(model, depth: int) -> list:
    keras = _keras()
    if depth > MAX_NESTING:
        raise DenselabError(f"models nested more than {MAX_NESTING} deep")
    if isinstance(model, keras.Sequential):
        ops = list(model.layers)
    elif hasattr(model, "_nodes_by_depth"):  # a functional model: walk its graph
        ops = _walk(model)
    else:
        raise DenselabError(
            f"the model is a subclassed {type(model).__name__}: its graph cannot be read; "
            "build it with keras.Sequential or the functional API"
        )
    layers = []
    for op in ops:
        if isinstance(op, keras.Model):
            layers.extend(_live_chain(op, depth + 1))
        else:
            layers.append(op)
    return layers


def _walk(model) -> list:
    """From the output back to the input, each layer's one input; returned input first."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1:
        raise DenselabError(_several("inputs", [_producer(t) for t in inputs]))
    if len(outputs) != 1:
        raise DenselabError(_several("outputs", [_producer(t) for t in outputs]))
    ops = []
    tensor = outputs[0]
    while True:
        history = getattr(tensor, "_keras_history", None)
        op = getattr(history, "operation", None)
        if op is None:
            break
        node = op._inbound_nodes[history.node_index]
        if node.is_input:
            break
        sources = node.input_tensors
        if len(sources) != 1:
            raise DenselabError(_joins(op.name, type(op).__name__, len(sources)))
        ops.append(op)
        tensor = sources[0]
    return ops[::-1]


def _producer(tensor) -> str:
    op = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    return getattr(op, "name", None) or getattr(tensor, "name", "?")


# --- a saved (JSON) functional config ------------------------------------------------------


def _functional_chain(body: dict) -> list[dict]:
    layers = _get(body, "layers", list)
    by_name: dict[str, dict] = {}
    for layer in layers:
        by_name[layer_name(_dict(layer, "a layer"))] = layer
    inputs = _refs(body.get("input_layers"))
    outputs = _refs(body.get("output_layers"))
    if len(inputs) != 1:
        raise DenselabError(_several("inputs", [ref[0] for ref in inputs]))
    if len(outputs) != 1:
        raise DenselabError(_several("outputs", [ref[0] for ref in outputs]))
    for name, layer in by_name.items():
        nodes = layer.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise DenselabError(f"layer {name!r} has damaged inbound_nodes")
        if len(nodes) > 1:
            raise DenselabError(_shared(name, len(nodes)))
    ordered = []
    name = outputs[0][0]
    for _ in range(len(by_name) + 1):
        layer = by_name.get(name)
        if layer is None:
            raise DenselabError(f"the model's graph names a layer {name!r} it does not have")
        ordered.append(layer)
        if layer.get("class_name") == "InputLayer":
            break
        nodes = layer.get("inbound_nodes") or []
        sources = _node_refs(nodes[0]) if nodes else []
        if len(sources) != 1:
            if not sources:
                raise DenselabError(f"layer {name!r} has no input in the model's graph")
            raise DenselabError(_joins(name, str(layer.get("class_name")), len(sources)))
        name = sources[0][0]
    else:
        raise DenselabError("the model's graph is a loop; the file is damaged")
    if name != inputs[0][0]:
        raise DenselabError(f"the model's output does not come from its input {inputs[0][0]!r}")
    return ordered[::-1]


def _refs(value) -> list[list]:
    """``[[name, node, tensor], ...]``; Keras 3 writes a single one unwrapped."""
    if not isinstance(value, list):
        raise DenselabError("the model's config has no input_layers/output_layers")
    if len(value) >= 3 and isinstance(value[0], str):
        value = [value]
    if not all(_is_ref(ref) for ref in value):
        raise DenselabError("the model's config has damaged input_layers/output_layers")
    return value


def _is_ref(value) -> bool:
    return isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str)


def _node_refs(node) -> list[list]:
    """The tensors one call of a layer took: ``[[name, node, tensor, kwargs], ...]`` in Keras
    2, ``{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}]}``
    in Keras 3."""
    if isinstance(node, list):  # Keras 2
        return [ref for ref in node if _is_ref(ref)]
    found, stack = [], [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            history = item.get("keras_history") if "keras_history" in item else None
            if _is_ref(history):
                found.append(history)
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def _get(body, key: str, kind: type):
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, kind):
        raise DenselabError(f"the model's config has no {key!r}")
    return value


def _dict(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise DenselabError(f"{what} in the model's config is not an object")
    return value


# --- the refusals ------------------------------------------------------------------------


def _several(what: str, names: list[str]) -> str:
    return f"the model has {len(names)} {what} ({', '.join(map(str, names))}); {_ONE_CHAIN}"


def _shared(name: str, times: int) -> str:
    return f"layer {name!r} is applied {times} times (shared weights); {_ONE_CHAIN}"


def _joins(name: str, kind: str, count: int) -> str:
    return f"layer {name!r} ({kind}) joins {count} branches; {_ONE_CHAIN}"
