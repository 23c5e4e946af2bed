"""Names people know variables by, found on the live object at save time.

A Keras model in a ``tf.train.Checkpoint`` saves its weights as
``model/optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE``: the layer names appear
nowhere in the checkpoint. While the object is at hand we walk its trackable graph beside the
saved object graph (as TensorFlow's own restore does) to learn which live variable each key
holds, and name it:

* a Keras 3 variable by its ``path`` under the checkpoint's attribute, without the model's own
  name (``model/dense/kernel``);
* an optimizer slot under its variable (``model/dense/kernel/adam/momentum``), the optimizer's
  own counters under the optimizer (``model/adam/iteration``). An optimizer Keras named itself is
  named by its kind (``adam``), without the count Keras appends per process (``adam_3`` for the
  fourth Adam made in a grid search): the same model saved from two processes is named alike;
* any other variable by its attribute path (``model/w``).

Best effort: anything unexpected gives no readable name, never a failed save.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from pathlib import Path
from typing import Any

from .reader import OBJECT_GRAPH_KEY, TF2_SUFFIX
from .runtime import tf

log = logging.getLogger(__name__)


def readable_names(target: Any, prefix: Path) -> dict[str, str]:
    """{checkpoint key: readable name} for the TF2 checkpoint just written at ``prefix`` from
    ``target``; empty for TF1 sessions (their keys are the graph's names already)."""
    try:
        return _names(target, prefix)
    except Exception as exc:  # noqa: BLE001 - names are a convenience, the save must not fail
        log.debug("no readable variable names for %s: %s", prefix.name, exc)
        return {}


def _is_variable(obj: Any) -> bool:
    return hasattr(obj, "assign") and hasattr(obj, "shape") and hasattr(obj, "dtype")


def _names(target: Any, prefix: Path) -> dict[str, str]:
    t = tf()
    if isinstance(target, t.compat.v1.Session):
        return {}
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    from .savers import tf2_checkpoint

    root = tf2_checkpoint(target)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(t.train.load_checkpoint(str(prefix)).get_tensor(OBJECT_GRAPH_KEY))
    keys: dict[int, str] = {}  # id(variable) -> checkpoint key
    attr_path: dict[int, str] = {}  # id(variable) -> shortest attribute path
    seen: set[int] = set()
    todo: deque[tuple[Any, int, str]] = deque([(root, 0, "")])
    while todo:
        obj, node_id, path = todo.popleft()
        if id(obj) in seen or node_id >= len(graph.nodes):
            continue
        seen.add(id(obj))
        node = graph.nodes[node_id]
        if _is_variable(obj):
            key = next((a.checkpoint_key for a in node.attributes if a.name == "VARIABLE_VALUE"), None)
            if key is not None:
                keys[id(obj)] = key
                attr_path.setdefault(id(obj), path)
            continue
        children = {c.local_name: c.node_id for c in node.children}
        for name, child in t.train.TrackableView.children(obj).items():
            if name in children:
                todo.append((child, children[name], f"{path}/{name}" if path else name))
    readable: dict[int, str] = {}
    for attr, obj in t.train.TrackableView.children(root).items():
        _keras_names(attr, obj, readable)
    out: dict[str, str] = {}
    for vid, key in keys.items():
        name = readable.get(vid) or attr_path.get(vid, "")
        if name and name != key and name + TF2_SUFFIX != key:
            out[key] = name
        elif name and name + TF2_SUFFIX == key:
            continue
    return out


def _keras_names(attr: str, obj: Any, out: dict[int, str]) -> None:
    """Readable names of a Keras 3 model's variables and of its optimizer's."""
    variables = getattr(obj, "variables", None)
    model_name = getattr(obj, "name", None)
    if not isinstance(variables, (list, tuple)) or not isinstance(model_name, str):
        return
    by_flat: dict[str, str] = {}
    for v in variables:
        path = getattr(v, "path", None)
        if not isinstance(path, str):
            continue
        rel = path[len(model_name) + 1 :] if path.startswith(model_name + "/") else path
        out.setdefault(id(v), f"{attr}/{rel}")
        by_flat[path.replace("/", "_")] = f"{attr}/{rel}"
    opt = getattr(obj, "optimizer", None)
    opt_vars = getattr(opt, "variables", None)
    if not isinstance(opt_vars, (list, tuple)):
        return
    opt_name = _stable_name(opt)
    for ov in opt_vars:
        vname = getattr(ov, "name", None)
        if not isinstance(vname, str):
            continue
        # Keras names a slot "<variable path with _ for />_<slot>" (add_variable_from_reference).
        owner = max((flat for flat in by_flat if vname.startswith(flat + "_")), key=len, default=None)
        if owner is not None:
            out.setdefault(id(ov), f"{by_flat[owner]}/{opt_name}/{vname[len(owner) + 1:]}")
        else:
            out.setdefault(id(ov), f"{attr}/{opt_name}/{vname}")


def _snake_case(name: str) -> str:
    """Keras's ``to_snake_case``, which makes the names it gives objects (``Adam`` -> ``adam``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _stable_name(opt: Any) -> str:
    """The optimizer's name, or its kind when Keras named it: Keras names the n-th optimizer of a
    class made in a process ``adam_n``, a counter that says nothing about the model and differs
    between two runs of one grid. A name the user gave is kept as it is."""
    name = getattr(opt, "name", None)
    kind = _snake_case(type(opt).__name__)
    if not isinstance(name, str):
        return kind or "optimizer"
    if kind and re.fullmatch(re.escape(kind) + r"(_\d+)?", name):
        return kind
    return name
