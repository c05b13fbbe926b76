"""FINN's streamlining with the same result, without re-running clean-ups on graphs they already cleaned.

Why (issue #19): FINN's ``Streamline`` applies 22 transformations, and after *each* one,
whether it changed the graph or not, five more (RemoveIdentityOps, GiveUniqueNodeNames,
GiveReadableTensorNames, InferDataTypes, InferDataLayouts), every one of them through
``ModelWrapper.transform``, which deep-copies the model and runs QONNX's five-pass
``cleanup``. Each of those passes visits every node and looks tensors up with QONNX's
list scans (``get_by_name``, ``get_initializer``, ``find_producer``, ``rename_tensor``), so
one pass costs O(nodes^2), and the build step runs ~600 of them. On most of the 22
transformations nothing matches (a PresB-Net has no Div, no Sub, no TopK...), and the
clean-up chain then runs on a graph it has just produced.

``Applier.transform`` is ``model.transform(t)`` (same fixed-point loop, same clean-up) that
also remembers the graphs (by a digest of the serialized model) on which a transformation
turned out to be, or by construction is, a no-op, and skips it there. Transformations
are deterministic, so skipping a no-op cannot change the result; the clean-up chain is
treated as idempotent (applying it to its own output changes nothing), which
``BNN2FPGA_FAST_APPLY_CHECK=1`` verifies on every skip (slow: it runs the skipped work
and raises on a difference). ``streamline`` and ``finn_step_streamline`` reproduce FINN's
``Streamline`` and ``step_streamline`` with it; their lists of transformations are read
from FINN's own source (``Streamline.apply``), and when FINN's code no longer has the
expected shape they fall back to calling FINN, so a FINN upgrade can make this slower,
never different.

The applier also skips the clean-up after a transformation that left a clean graph (one
that is a clean-up's output, remembered by digest across appliers) unchanged, and renames
the tensors of a clean graph for ``GiveReadableTensorNames`` in one sweep
(``readable_tensor_names``, QONNX's rename sequence played on a table of names).
``finn_step_qonnx_to_finn`` and ``finn_step_tidy_up`` reproduce FINN's steps of those
names the same way (checked against FINN's source as well); the first, given
``transforms/fold_quant_weights.py``'s transformation, folds all weight quantizers in one
pass before FINN's one-per-pass ``FoldQuantWeights``, which then finds nothing left.

What remained quadratic were QONNX's lookups by list scan inside passes that run hundreds
of times: ``infer_datatypes`` runs QONNX's own InferDataTypes with the model's datatype
lookups answered from tables, and ``qonnx_tables`` (entered by the build runner around
every step) swaps QONNX's shape check and three of its clean-up passes (SortGraph,
SortCommutativeInputsInitializerLast, GiveUniqueParameterTensors) for one-sweep versions
with the same results, also where FINN's and QONNX's passes call them inside their own;
InferDataLayouts and InferShapes run QONNX's own code with their lookups answered by the
same tables, and SortGraph's topological order is computed in one pass over the edges
(``toposort_levels``) where the toposort library rebuilds its map once per level.
InferShapes' hiding of custom ops behind stand-ins and their restoring replace nodes in place
(``hide_custom_ops``, ``restore_custom_ops``) where QONNX's ``remove`` compares each with every
node before it, and FINN's RoundAndClipThresholds, which rounds one threshold per pass and
re-infers and cleans up the whole graph after each, rounds all of them after its own first pass
(``round_and_clip_thresholds``; the applier and StreamlineResiduals use it).
"""
from __future__ import annotations

import ast
import contextlib
import copy
import hashlib
import inspect
import os
import zlib
from functools import lru_cache

from qonnx.core.modelwrapper import ModelWrapper

#: Set to 1 to run every skipped transformation anyway and fail when it would have changed the graph.
CHECK_ENV = "BNN2FPGA_FAST_APPLY_CHECK"


def digest(model: ModelWrapper, nodes: bool = True) -> bytes:
    """A digest of the whole model: nodes, tensor infos, annotations, initializers (names, types, shapes, data).

    ``nodes=False``: of everything but the node list.

    Serializing and hashing a PresB-Net whole took ~50 ms; hashing the graph's parts
    with a CRC of each initializer's bytes takes a third of that.
    """
    g = model.graph
    h = hashlib.sha1()
    for coll in (g.node if nodes else (), g.input, g.output, g.value_info, g.quantization_annotation,
                 g.sparse_initializer):
        h.update(b"|")
        for x in coll:
            h.update(x.SerializeToString(deterministic=True))
    for i in g.initializer:
        payload = i.raw_data
        if payload and not (i.float_data or i.int32_data or i.int64_data or i.double_data or i.string_data
                            or i.uint64_data or i.external_data):
            h.update(repr((i.name, i.data_type, tuple(i.dims), i.doc_string, i.data_location, len(payload),
                           zlib.crc32(payload))).encode())
        else:
            h.update(i.SerializeToString(deterministic=True))
    h.update(repr((g.name, g.doc_string, model.model.ir_version, [(o.domain, o.version) for o in model.model.opset_import],
                   [(p.key, p.value) for p in model.model.metadata_props])).encode())
    return h.digest()


def _key(t) -> object:
    # Same class and same settings: same transformation. Settings that print as object
    # addresses (functions, models) make the key the instance itself.
    try:
        r = repr(sorted(vars(t).items()))
    except TypeError:
        return t
    return t if " at 0x" in r else (type(t).__module__, type(t).__qualname__, r)


#: Digests of graphs that QONNX's clean-up leaves unchanged, shared by all appliers: a digest
#: names a graph's content, so what is true of it in one build step stays true in the next.
_CLEAN: set = set()
_CLEAN_MAX = 20_000


class Applier:
    """``ModelWrapper.transform`` with a memory of where transformations are no-ops (see the module).

    It also remembers the digest of the model it last returned: between two calls, change
    that model only through the applier (or call ``forget``).
    """

    def __init__(self, check: bool | None = None):
        self._noop: set = set()
        self._clean = _CLEAN  # digests of graphs QONNX's clean-up leaves unchanged (its own outputs)
        if len(_CLEAN) > _CLEAN_MAX:
            _CLEAN.clear()
        self._known: tuple | None = None  # (model it returned last, its digest)
        self._keep: list = []  # instances used as keys stay alive, so their ids are not reused
        self.check = os.environ.get(CHECK_ENV) == "1" if check is None else check
        self.ran = self.skipped = self.cleanups_skipped = self.fast_renames = 0

    def forget(self) -> None:
        """The model was changed outside the applier: digest it again on the next call."""
        self._known = None

    def _digest(self, model: ModelWrapper) -> bytes:
        if self._known is not None and self._known[0] is model:
            return self._known[1]
        return digest(model)

    def _skip(self, key, d: bytes) -> bool:
        return (key, d) in self._noop

    def _remember(self, key, d: bytes) -> None:
        if not isinstance(key, tuple):
            self._keep.append(key)
        self._noop.add((key, d))

    def transform(self, model: ModelWrapper, t, cleanup: bool = True, idempotent: bool = False) -> ModelWrapper:
        """``model.transform(t, make_deepcopy=False, cleanup=cleanup)`` unless known to change nothing.

        ``idempotent``: ``t`` (with the clean-up) changes nothing on its own output, so that
        output is remembered as a no-op for it too (true of the naming, inference and
        clean-up passes, not of an arbitrary transformation).
        """
        key = (_key(t), cleanup)
        before = self._digest(model)
        if self._skip(key, before):
            self.skipped += 1
            if self.check:
                self._check(model, before, lambda m: m.transform(t, make_deepcopy=False, cleanup=cleanup), key)
            return model
        self.ran += 1
        if before in self._clean and _is_readable_names(t) and self._readable_names(model, before):
            after = digest(model)
            self._clean.add(after)  # renaming a clean graph leaves it clean (checked with check=True)
        elif cleanup and before in self._clean:
            # The clean-up of a graph that is its own clean-up's output changes nothing: run
            # it only when ``t`` changed the graph.
            model = self._run(model, t)
            after = digest(model)
            if after != before:
                model = model.cleanup()
                after = digest(model)
            else:
                self.cleanups_skipped += 1
                if self.check:
                    self._check(model, after, lambda m: m.cleanup(), ("cleanup",))
        else:
            model = self._run(model, t)
            if cleanup:
                model = model.cleanup()
            after = digest(model)
        if cleanup:
            self._clean.add(after)
        self._known = (model, after)
        if after == before:
            self._remember(key, before)
        elif idempotent:
            self._remember(key, after)
        return model

    def _run(self, model: ModelWrapper, t) -> ModelWrapper:
        """``model.transform(t, make_deepcopy=False, cleanup=False)``; QONNX's InferShapes by ``infer_shapes``,
        its InferDataTypes by ``infer_datatypes``."""
        if _is_infer_datatypes(t):
            if not self.check:
                return infer_datatypes(model, t.allow_scaledint_dtypes)
            with qonnx_own():
                expected = copy.deepcopy(model).transform(t, make_deepcopy=False, cleanup=False)
            model = infer_datatypes(model, t.allow_scaledint_dtypes)
            if digest(model) != digest(expected):
                raise AssertionError("fast_apply: infer_datatypes differs from InferDataTypes")
            return model
        if _is_round_and_clip(t):
            return round_and_clip_thresholds(model, make_deepcopy=False, cleanup=False, check=self.check)
        if not _is_infer_shapes(t):
            return model.transform(t, make_deepcopy=False, cleanup=False)
        if not self.check:
            return infer_shapes(model)
        with qonnx_own():
            expected = copy.deepcopy(model).transform(t, make_deepcopy=False, cleanup=False)
        model = infer_shapes(model)
        if digest(model) != digest(expected):
            raise AssertionError("fast_apply: infer_shapes differs from InferShapes")
        return model

    def _readable_names(self, model: ModelWrapper, before: bytes) -> bool:
        """QONNX's GiveReadableTensorNames (with or without clean-up) on a clean graph, renamed in one sweep."""
        trial = None
        if self.check:
            from qonnx.transformation.general import GiveReadableTensorNames

            with qonnx_own():
                trial = copy.deepcopy(model).transform(GiveReadableTensorNames())
        if not readable_tensor_names(model):
            return False
        self.fast_renames += 1
        if trial is not None and digest(trial) != digest(model):
            raise AssertionError("fast_apply: readable_tensor_names differs from GiveReadableTensorNames")
        return True

    def chain(self, model: ModelWrapper, transforms: list, name: str) -> ModelWrapper:
        """Apply ``transforms`` (each idempotent, with clean-up) in order; skipped as a whole on its own output."""
        key = ("chain", name, tuple(_key(t) for t in transforms))
        before = self._digest(model)
        if self._skip(key, before):
            self.skipped += len(transforms)
            if self.check:
                def run(m):
                    for t in transforms:
                        m = m.transform(t, make_deepcopy=False)
                    return m
                self._check(model, before, run, key)
            return model
        for t in transforms:
            model = self.transform(model, t, idempotent=True)
        self._remember(key, self._digest(model))
        return model

    def _check(self, model: ModelWrapper, before: bytes, run, key) -> None:
        with qonnx_own():
            trial = run(copy.deepcopy(model))
        if digest(trial) != before:
            raise AssertionError(f"fast_apply: skipped {key} would have changed the graph")


# --- QONNX's GiveReadableTensorNames in one sweep ----------------------------------------


def _is_readable_names(t) -> bool:
    from qonnx.transformation.general import GiveReadableTensorNames

    return type(t) is GiveReadableTensorNames


def readable_tensor_names(model: ModelWrapper) -> bool:
    """Rename the tensors of a clean graph as QONNX's ``GiveReadableTensorNames`` does, in O(graph); in place.

    QONNX renames tensor by tensor (first to ``tensor_<i>``, then ``<node>_out<k>``,
    ``<node>_param<k>``, ``global_in``/``global_out``) with ``rename_tensor``, which scans
    every list of the graph each time: O(tensors x graph). The same sequence of renames is
    played here on a table of names, then written once. Its deep copy and clean-up change
    nothing on a clean graph (the caller's to know), and a rename leaves it clean.
    Returns False, with the model untouched, on anything the table does not model the way
    QONNX's list scans behave (a name twice in one list or one node, an empty name or node
    name, two tensors renamed to one name): the caller runs QONNX's own then.
    """
    g = model.graph
    if getattr(model, "fix_float64", False):
        return False
    names: set[str] = set()
    for coll, field in ((g.input, "name"), (g.output, "name"), (g.value_info, "name"), (g.initializer, "name"),
                        (g.quantization_annotation, "tensor_name")):
        seen = [getattr(x, field) for x in coll]
        if len(set(seen)) != len(seen) or "" in seen:
            return False
        names.update(seen)
    for n in g.node:
        if not n.name or len(set(n.input)) != len(n.input) or len(set(n.output)) != len(n.output) \
                or "" in n.input or "" in n.output:
            return False
        names.update(n.input)
        names.update(n.output)
    cur = {x: x for x in names}  # tensor (by its original name) -> its name now
    owner = dict(cur)  # name now -> tensor

    def rename(old: str, new: str) -> bool:
        if old not in owner or old == new:
            return True  # QONNX finds nothing to rename / renames to the same name
        if new in owner:
            return False  # two tensors would share a name: QONNX's list scans behave differently
        t = owner.pop(old)
        cur[t] = new
        owner[new] = t
        return True

    order = [x.name for x in g.value_info] + [x.name for x in g.input] + [x.name for x in g.output]
    for i, name in enumerate(order):  # GiveUniqueTensorNames
        if not rename(name, f"tensor_{i}"):
            return False
    inits = {x.name for x in g.initializer}
    for n in g.node:
        for k, o in enumerate(n.output):
            if not rename(cur[o], "%s_out%d" % (n.name, k)):
                return False
        k = 0
        for i in n.input:
            if i in inits:
                if not rename(cur[i], "%s_param%d" % (n.name, k)):
                    return False
                k += 1
    for k, x in enumerate(g.input):
        if not rename(cur[x.name], "global_in" if k == 0 else "global_in_%d" % k):
            return False
    for k, x in enumerate(g.output):
        if not rename(cur[x.name], "global_out" if k == 0 else "global_out_%d" % k):
            return False
    for coll in (g.input, g.output, g.value_info, g.initializer):
        for x in coll:
            x.name = cur[x.name]
    for a in g.quantization_annotation:
        a.tensor_name = cur[a.tensor_name]
    for n in g.node:
        n.input[:] = [cur[x] for x in n.input]
        n.output[:] = [cur[x] for x in n.output]
    return True


# --- QONNX's InferShapes without its quadratic check ---------------------------------------


def _is_infer_shapes(t) -> bool:
    from qonnx.transformation.infer_shapes import InferShapes

    return type(t) is InferShapes


def infer_shapes(model: ModelWrapper) -> ModelWrapper:
    """``model.transform(InferShapes(), make_deepcopy=False, cleanup=False)``, the same model, faster.

    QONNX's InferShapes wraps ONNX's result in a new ModelWrapper, whose constructor
    looks every node input and output up in the list of value infos one by one
    (``check_all_tensor_shapes_specified``): O(tensors x value infos) per inference, most
    of its time on a PresB-Net. Here that check is one pass over a table of names; the
    value infos it adds for initializers without one are added by QONNX's own
    ``get_tensor_shape``, in the same order.
    """
    import onnx.shape_inference as si
    from qonnx.transformation.infer_shapes import InferShapes

    if getattr(model, "fix_float64", False):
        return model.transform(InferShapes(), make_deepcopy=False, cleanup=False)
    # The custom ops' stand-ins read value infos and shapes (Quant: its output's type)
    # with QONNX's list scans; the hiding changes nodes only, so a table answers them.
    hidden = _with_table(lambda _, m: hide_custom_ops(m), None, model, "get_tensor_valueinfo", "get_tensor_shape")
    out = ModelWrapper(si.infer_shapes(model.model), fix_missing_initializer_valueinfo=False)
    _fix_missing_initializer_valueinfo(out)  # as the constructor does: before the custom ops are back
    restore_custom_ops(out, hidden)
    return out


def hide_custom_ops(model: ModelWrapper) -> dict:
    """QONNX's ``_hide_finn_ops(model)``: the same node list and returned map, without its list scans.

    QONNX inserts each custom op's stand-in behind it and then ``remove``s the custom op,
    which compares it with every node before it (whole protobufs): O(nodes^2) per shape
    inference, run hundreds of times in the streamlining. ``remove`` takes the first
    equal node; one before the current can only be equal to it if it has a custom domain
    too, and the only such nodes before it are stand-ins with a custom domain (the custom
    ops before it are all replaced), so those few are compared; the usual case is a
    replacement in place. The map keeps copies of the custom ops (QONNX keeps the removed
    objects: the same contents). Once one of those comparisons finds an equal node,
    QONNX's insert-and-remove runs on (the node lists are identical up to there).
    """
    from onnx import NodeProto
    from qonnx.custom_op.registry import is_custom_op
    from qonnx.transformation.infer_shapes import _make_shape_compatible_op

    nodes = model.graph.node
    hidden: dict = {}
    custom_stand_ins: list[int] = []
    qonnx_way = False
    for i in range(len(nodes)):
        node = nodes[i]
        if not is_custom_op(node.domain):
            continue
        new = _make_shape_compatible_op(node, model)
        new.name = node.name
        if not qonnx_way and any(nodes[j] == node for j in custom_stand_ins):
            qonnx_way = True
        if qonnx_way:
            hidden[str(new)] = node
            nodes.insert(i + 1, new)
            nodes.remove(node)
            continue
        kept = NodeProto()
        kept.CopyFrom(node)
        hidden[str(new)] = kept
        del nodes[i]
        nodes.insert(i, new)
        if is_custom_op(new.domain):
            custom_stand_ins.append(i)
    return hidden


def restore_custom_ops(model: ModelWrapper, hidden: dict) -> None:
    """QONNX's ``_restore_finn_ops(model, hidden)``: the same node list, without its list scans.

    As in ``hide_custom_ops``: QONNX's ``remove`` of a stand-in could only hit an earlier
    node if that one were equal to it, so it has the same text (nodes with a stand-in's
    text were all restored before it) or is a restored custom op, which can only be equal
    to a stand-in with a custom domain; those few are compared, and otherwise the stand-in
    is replaced in place.
    """
    from qonnx.custom_op.registry import is_custom_op

    nodes = model.graph.node
    restored: list[int] = []
    qonnx_way = False
    for i in range(len(nodes)):
        node = nodes[i]
        old = hidden.get(str(node))
        if old is None:
            continue
        if not qonnx_way and is_custom_op(node.domain) and any(nodes[j] == node for j in restored):
            qonnx_way = True
        if qonnx_way:
            nodes.insert(i + 1, old)
            nodes.remove(node)
            continue
        del nodes[i]
        nodes.insert(i, old)
        restored.append(i)


def infer_shapes_pass(t, model: ModelWrapper):
    """QONNX's ``InferShapes.apply`` (``t``) by ``infer_shapes``: the same model, without the quadratic lookups."""
    if getattr(model, "fix_float64", False):
        return _QONNX["InferShapes"](t, model)
    return infer_shapes(model), False


def _fix_missing_initializer_valueinfo(out: ModelWrapper) -> None:
    """``out.check_all_tensor_shapes_specified(fix_missing_init_shape=True)`` with a table of names."""
    check_all_tensor_shapes_specified(out, fix_missing_init_shape=True)


def check_all_tensor_shapes_specified(model: ModelWrapper, fix_missing_init_shape: bool = False) -> bool:
    """QONNX's ``ModelWrapper.check_all_tensor_shapes_specified``, same result and side effects, in O(graph).

    QONNX looks every node input and output up with ``get_tensor_shape``, which lists all
    value infos each time. Here a table of value-info names answers the common cases (one
    value info: a shape; none and no initializer: no shape); a name with several value
    infos (QONNX's assertion) or an initializer without one (whose value info QONNX adds)
    goes to QONNX's own ``get_tensor_shape``, in the same order.
    """
    g = model.graph
    count: dict[str, int] = {}
    for x in list(g.input) + list(g.output) + list(g.value_info):
        count[x.name] = count.get(x.name, 0) + 1
    inits = {i.name for i in g.initializer}
    ret = True
    for n in g.node:
        for t in [i for i in n.input if i != ""] + list(n.output):
            c = count.get(t, 0)
            if c > 1 or (c == 0 and t in inits):
                ret = (_QONNX_GET_TENSOR_SHAPE(model, t, fix_missing_init_shape=fix_missing_init_shape)
                       is not None) and ret
                if c == 0 and fix_missing_init_shape:
                    count[t] = 1  # its value info was just added
            elif c == 0:
                ret = False
    return ret


_QONNX_GET_TENSOR_SHAPE = ModelWrapper.get_tensor_shape
_QONNX_CHECK_SHAPES = ModelWrapper.check_all_tensor_shapes_specified


# --- QONNX's clean-up passes in one sweep each ---------------------------------------------
# ``ModelWrapper.cleanup`` runs after every ``model.transform`` that FINN's and QONNX's passes
# make inside their own (one per removed identity op, per converted node...). Three of its
# five passes look tensors up one by one with list scans: O(nodes x graph) each time.


def sort_graph(t, model: ModelWrapper):
    """QONNX's ``SortGraph().apply(model)``, same node list, with a table of producers.

    QONNX finds each node's predecessors with ``find_producer`` (a scan of the nodes) and
    their positions with ``list.index`` (a comparison of whole protobufs). When every node
    has an output and no tensor is produced twice, no two nodes are equal, so the position
    is the node's own and the producer the only node with that output, as here; the order
    is ``toposort_flatten``'s (computed by ``toposort_levels``), and a graph already in that
    order is left as it is (QONNX re-inserts the same nodes). Other graphs go to QONNX's own.
    """
    from onnx import NodeProto
    from toposort import toposort_flatten

    g = model.graph
    nodes = list(g.node)
    outs = [o for n in nodes for o in n.output]
    inits, inputs = [i.name for i in g.initializer], [i.name for i in g.input]
    if (len(nodes) == 1 or any(len(n.output) == 0 for n in nodes) or len(set(outs)) != len(outs)
            or len(set(inits)) != len(inits) or len(set(inputs)) != len(inputs)):
        return _QONNX["SortGraph"](t, model)
    producer: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for o in n.output:
            producer.setdefault(o, i)
    static = set(inits) | set(inputs)
    deps: dict[int, set] = {}
    for i, n in enumerate(nodes):
        preds = {producer[x] for x in n.input if x in producer}
        if preds:
            deps[i] = preds
        elif any(x in static for x in n.input):
            deps[i] = set()
        # else: a node fed by nothing; QONNX's sort drops it
    order = toposort_levels(deps)
    if order is None:
        order = toposort_flatten(deps)  # a cycle: the library raises its own error
    if order != list(range(len(nodes))):
        kept = [nodes[k].SerializeToString() for k in order]
        del g.node[:]
        g.node.extend(NodeProto.FromString(b) for b in kept)
    return model, False


def toposort_levels(deps: dict) -> list | None:
    """``toposort.toposort_flatten(deps)`` in O(items + edges); None where the library would find a cycle.

    The library peels the graph level by level and rebuilds the whole dependency map for
    each level: O(levels x items), quadratic on a network, which is one long chain. The
    levels here are the same (an item's level is one more than its deepest dependency's,
    self-dependencies ignored, items named only as dependencies at level 0), each sorted.
    """
    pending: dict = {}
    users: dict = {}
    for item, dep in deps.items():
        dep = {d for d in dep if d != item}
        pending[item] = len(dep)
        for d in dep:
            users.setdefault(d, []).append(item)
    for d in users:
        pending.setdefault(d, 0)
    level = [item for item, n in pending.items() if n == 0]
    order: list = []
    while level:
        level.sort()
        order.extend(level)
        nxt = []
        for d in level:
            for u in users.get(d, ()):
                pending[u] -= 1
                if pending[u] == 0:
                    nxt.append(u)
        level = nxt
    return order if len(order) == len(pending) else None


def sort_commutative_inputs(t, model: ModelWrapper):
    """QONNX's ``SortCommutativeInputsInitializerLast().apply(model)`` with a set of initializer names."""
    inits = {i.name for i in model.graph.initializer}
    modified = False
    for node in model.graph.node:
        if node.op_type in t.SUPPORTED_COMMUTATIVE_OPS:
            dynamic = [x for x in node.input if x not in inits]
            ordered = dynamic + [x for x in node.input if x not in dynamic]
            if list(node.input) != ordered:
                node.input[:] = ordered
                modified = True
    return model, modified


def unique_parameter_tensors(t, model: ModelWrapper):
    """QONNX's ``GiveUniqueParameterTensors().apply(model)`` with a set of initializer names.

    QONNX reads every parameter input as an array (``get_initializer``, a scan and a copy)
    to learn that it is one; only a parameter used twice is read, and copied under a new
    name by QONNX's own calls, in the same order.
    """
    inits = {i.name for i in model.graph.initializer}
    seen: set[str] = set()
    for n in model.graph.node:
        for idx, x in enumerate(list(n.input)):
            if x not in inits:
                continue
            if x not in seen:
                seen.add(x)
                continue
            new = model.make_new_valueinfo_name()
            model.set_initializer(new, model.get_initializer(x))
            model.set_tensor_datatype(new, model.get_tensor_datatype(x))
            n.input[idx] = new
            inits.add(new)
    return model, False


def _qonnx_originals() -> dict:
    from qonnx.transformation.general import GiveUniqueParameterTensors, SortCommutativeInputsInitializerLast, SortGraph
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    return {"SortGraph": SortGraph.apply,
            "SortCommutativeInputsInitializerLast": SortCommutativeInputsInitializerLast.apply,
            "GiveUniqueParameterTensors": GiveUniqueParameterTensors.apply, "InferDataTypes": InferDataTypes.apply,
            "InferDataLayouts": InferDataLayouts.apply, "InferShapes": InferShapes.apply}


_QONNX = _qonnx_originals()


def _patches() -> list:
    """(class, attribute, our replacement) for every QONNX method ``qonnx_tables`` swaps."""
    from qonnx.transformation.general import GiveUniqueParameterTensors, SortCommutativeInputsInitializerLast, SortGraph
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    return [(ModelWrapper, "check_all_tensor_shapes_specified", check_all_tensor_shapes_specified),
            (SortGraph, "apply", sort_graph), (SortCommutativeInputsInitializerLast, "apply", sort_commutative_inputs),
            (GiveUniqueParameterTensors, "apply", unique_parameter_tensors),
            (InferDataTypes, "apply", infer_datatypes_pass), (InferDataLayouts, "apply", infer_data_layouts_pass),
            (InferShapes, "apply", infer_shapes_pass)]


@contextlib.contextmanager
def _swapped(use_ours: bool):
    originals = {"check_all_tensor_shapes_specified": _QONNX_CHECK_SHAPES}
    saved = []
    for cls, name, ours in _patches():
        saved.append((cls, name, vars(cls)[name]))
        setattr(cls, name, ours if use_ours else originals.get(name, _QONNX.get(cls.__name__)))
    try:
        yield
    finally:
        for cls, name, fn in saved:
            setattr(cls, name, fn)


@contextlib.contextmanager
def qonnx_tables():
    """While inside, QONNX's shape check, three clean-up passes and its datatype, layout and shape inference
    run by tables (above and below).

    Why: QONNX's InferShapes builds a new ModelWrapper, whose constructor runs
    ``check_all_tensor_shapes_specified``, and its clean-up runs after every
    ``model.transform``; FINN's and QONNX's passes call both inside their own (one per
    removed identity op, per converted Gemm or average pool, per move past a join...). On
    PresB-Net lite the shape check alone was 45% of qonnx_to_finn and the clean-ups 35%;
    after that, InferDataLayouts' annotation scans were a quarter of the streamlining. The
    build steps run inside this context (flows/runner.py); the originals are put back on
    leaving it, and each replacement is tested against QONNX's own on real graphs.
    """
    with _swapped(True):
        yield


def qonnx_own():
    """A context in which QONNX's own methods run, also inside ``qonnx_tables`` (for checks against them)."""
    return _swapped(False)


# --- QONNX's InferDataTypes with indexed lookups -------------------------------------------


def _is_infer_datatypes(t) -> bool:
    from qonnx.transformation.infer_datatypes import InferDataTypes

    return type(t) is InferDataTypes


class _LookupTable:
    """QONNX's per-tensor lookups of one model (datatype, layout, shape, value info), by tables of names.

    QONNX finds a tensor's annotation, value info and initializer by scanning their lists
    (``get_by_name``, ``get_tensor_valueinfo``, ``get_initializer``), so one InferDataTypes
    or InferDataLayouts pass costs O(nodes x tensors), and the streamlining fixed points run
    them hundreds of times. The tables are built once per pass and rebuilt when a list
    changes length (a custom op may add a value info while inferring); entries are the
    graph's own protobuf objects, so values are read live. A graph with a name twice in a
    list (where QONNX asserts, raises or takes the first) is left to QONNX's own lookups.
    """

    def __init__(self, model: ModelWrapper):
        self.model = model
        self.g = model.graph
        self.ok = True
        self._ann = self._vi = self._init = None
        self._lens = None
        self._dtypes: dict = {}  # annotation text -> DataType (DataTypes compare by name)
        self._layouts: dict = {}  # annotation text -> layout, as a tuple of strings
        self._build()

    def _sizes(self) -> tuple:
        g = self.g
        return (len(g.quantization_annotation), len(g.input), len(g.output), len(g.value_info), len(g.initializer))

    def _build(self) -> None:
        g = self.g
        self._ann = {a.tensor_name: a for a in g.quantization_annotation}
        vis = list(g.input) + list(g.output) + list(g.value_info)
        self._vi = {v.name: v for v in vis}
        self._init = {}
        for i in g.initializer:
            self._init.setdefault(i.name, i)  # QONNX's get_initializer takes the first
        self.ok = len(self._ann) == len(g.quantization_annotation) and len(self._vi) == len(vis)
        self._lens = self._sizes()

    def _fresh(self) -> bool:
        if self._sizes() != self._lens:
            self._build()
        return self.ok

    def install(self, *names: str) -> None:
        """Answer the model's methods ``names`` (e.g. ``get_tensor_datatype``) from this table until ``remove``."""
        for n in names:
            setattr(self.model, n, getattr(self, n))

    def remove(self, *names: str) -> None:
        """Give the model back QONNX's own methods ``names``."""
        for n in names:
            delattr(self.model, n)

    def get_tensor_datatype(self, tensor_name: str):
        """``ModelWrapper.get_tensor_datatype(tensor_name)``."""
        from onnx import TensorProto
        from qonnx.core.datatype import DataType

        if not self._fresh():
            return ModelWrapper.get_tensor_datatype(self.model, tensor_name)
        a = self._ann.get(tensor_name)
        if a is not None:
            e = _entry(a, "finn_datatype")
            if e is not None:
                dt = self._dtypes.get(e.value)
                if dt is None:
                    dt = self._dtypes[e.value] = DataType[e.value]
                return dt
        vi = self._vi.get(tensor_name)
        if vi is not None:
            elem = vi.type.tensor_type.elem_type
        else:
            i = self._init.get(tensor_name)
            elem = i.data_type if i is not None else None
        return DataType["FLOAT16"] if elem == TensorProto.FLOAT16 else DataType["FLOAT32"]

    def set_tensor_datatype(self, tensor_name: str, datatype) -> None:
        """``ModelWrapper.set_tensor_datatype(tensor_name, datatype)``."""
        if not self._fresh():
            return ModelWrapper.set_tensor_datatype(self.model, tensor_name, datatype)
        a = self._ann.get(tensor_name)
        if a is not None:
            e = _entry(a, "finn_datatype")
            if e is not None:
                if datatype is None:
                    e.Clear()
                else:
                    e.value = datatype.name
            elif datatype is not None:
                _add_entry(a, "finn_datatype", datatype.name)
        elif datatype is not None:
            self._annotate(tensor_name, "finn_datatype", datatype.name)

    def get_tensor_layout(self, tensor_name: str):
        """``ModelWrapper.get_tensor_layout(tensor_name)``."""
        if not self._fresh():
            return ModelWrapper.get_tensor_layout(self.model, tensor_name)
        a = self._ann.get(tensor_name)
        if a is None:
            return None
        e = _entry(a, "tensor_layout")
        if e is None:
            return None
        layout = self._layouts.get(e.value)
        if layout is None:
            value = eval(e.value)  # noqa: S307 - as QONNX reads it
            if not (isinstance(value, list) and all(isinstance(x, str) for x in value)):
                return value
            layout = self._layouts[e.value] = tuple(value)
        return list(layout)  # a new list each time, as QONNX's eval makes one

    def set_tensor_layout(self, tensor_name: str, data_layout) -> None:
        """``ModelWrapper.set_tensor_layout(tensor_name, data_layout)``."""
        assert type(data_layout) is list, "data_layout must be a list"
        if not self._fresh():
            return ModelWrapper.set_tensor_layout(self.model, tensor_name, data_layout)
        a = self._ann.get(tensor_name)
        if a is not None:
            e = _entry(a, "tensor_layout")
            if e is not None:
                e.value = str(data_layout)
            else:
                _add_entry(a, "tensor_layout", str(data_layout))
        else:
            self._annotate(tensor_name, "tensor_layout", str(data_layout))

    def get_tensor_shape(self, tensor_name: str, fix_missing_init_shape: bool = False):
        """``ModelWrapper.get_tensor_shape(tensor_name, fix_missing_init_shape)``."""
        vi = self._vi.get(tensor_name) if self._fresh() else None
        if vi is None:  # an initializer's shape, or none: QONNX's own
            return ModelWrapper.get_tensor_shape(self.model, tensor_name, fix_missing_init_shape)
        return [x.dim_value for x in vi.type.tensor_type.shape.dim]

    def get_tensor_valueinfo(self, tensor_name: str):
        """``ModelWrapper.get_tensor_valueinfo(tensor_name)``."""
        if not self._fresh():
            return ModelWrapper.get_tensor_valueinfo(self.model, tensor_name)
        return self._vi.get(tensor_name)

    def _annotate(self, name: str, key: str, value: str) -> None:
        import onnx

        a = onnx.TensorAnnotation(tensor_name=name)
        _add_entry(a, key, value)
        self.g.quantization_annotation.append(a)
        self._ann[name] = self.g.quantization_annotation[-1]
        self._lens = self._sizes()


def _entry(annotation, key: str):
    """``get_by_name(annotation.quant_parameter_tensor_names, key, "key")``: the entry, None, or QONNX's error."""
    found = None
    for e in annotation.quant_parameter_tensor_names:
        if e.key == key:
            if found is not None:
                raise Exception("Found multiple get_by_name matches, undefined behavior")
            found = e
    return found


def _add_entry(annotation, key: str, value: str) -> None:
    import onnx

    annotation.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key=key, value=value))


def infer_datatypes(model: ModelWrapper, allow_scaledint_dtypes: bool = False) -> ModelWrapper:
    """``model.transform(InferDataTypes(allow_scaledint_dtypes), make_deepcopy=False, cleanup=False)``, faster.

    QONNX's own pass runs (no copy of its rules), with the model's datatype lookups
    answered from ``_LookupTable`` while it runs: O(nodes) per pass instead of
    O(nodes x tensors).
    """
    from qonnx.transformation.infer_datatypes import InferDataTypes

    t = InferDataTypes(allow_scaledint_dtypes=allow_scaledint_dtypes)
    if getattr(model, "fix_float64", False):
        return model.transform(t, make_deepcopy=False, cleanup=False)
    changed = True
    while changed:
        model, changed = infer_datatypes_pass(t, model)
    return model


def infer_datatypes_pass(t, model: ModelWrapper):
    """One ``InferDataTypes.apply`` of QONNX (``t``), the model's datatype lookups answered by ``_LookupTable``."""
    return _with_table(_QONNX["InferDataTypes"], t, model, "get_tensor_datatype", "set_tensor_datatype")


def infer_data_layouts_pass(t, model: ModelWrapper):
    """One ``InferDataLayouts.apply`` of QONNX (``t``), its layout and shape lookups answered by ``_LookupTable``.

    QONNX's pass reads and writes every tensor's layout annotation with ``get_by_name``
    over all annotations: O(nodes x tensors) per pass, and FINN runs it after every move
    past a join or fork and in every clean-up chain of the streamlining.
    """
    return _with_table(_QONNX["InferDataLayouts"], t, model, "get_tensor_layout", "set_tensor_layout",
                       "get_tensor_shape")


def _with_table(original, t, model: ModelWrapper, *methods: str):
    """``original(t, model)`` with the model's ``methods`` answered by a ``_LookupTable`` while it runs."""
    if any(m in vars(model) for m in methods):  # already answered by a table (a pass inside a pass)
        return original(t, model)
    table = _LookupTable(model)
    table.install(*methods)
    try:
        return original(t, model)
    finally:
        table.remove(*methods)


# --- FINN's RoundAndClipThresholds without one pass per threshold --------------------------


def _is_round_and_clip(t) -> bool:
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds

    return type(t) is RoundAndClipThresholds


def _rounded(thresholds, dt):
    """The thresholds a MultiThreshold on integer inputs of ``dt`` keeps after FINN's rounding and clipping."""
    import numpy as np

    return np.clip(np.ceil(thresholds), dt.min(), dt.max() + 1).astype(np.float32)


def _round_all_thresholds(model: ModelWrapper) -> None:
    """Round and clip, in place, every MultiThreshold's thresholds that FINN's pass would still change.

    Only where the later passes provably see the same input datatypes (see
    ``round_and_clip_thresholds``); otherwise it changes nothing. The initializers keep
    their places: FINN's last pass re-inserts every one of them in node order anyway.
    """
    import numpy as np
    from onnx import numpy_helper
    from qonnx.custom_op.general.multithreshold import MultiThreshold
    from qonnx.custom_op.registry import getCustomOp, is_custom_op

    g = model.graph
    nodes = list(g.node)
    if any(n.op_type.startswith(("Thresholding", "MVAU", "VVAU")) for n in nodes):
        return  # FINN's pass rounds these too, with other rules and node attributes
    inits: dict = {}
    for i in g.initializer:
        if i.name in inits:
            return  # QONNX's lookups take the first of two: not modelled here
        inits[i.name] = i
    uses: dict = {}
    for n in nodes:
        for x in n.input:
            uses[x] = uses.get(x, 0) + 1
    produced = {o for n in nodes for o in n.output}
    graph_io = {x.name for x in g.input} | {x.name for x in g.output}
    todo = []
    for n in nodes:
        if n.op_type != "MultiThreshold":
            continue
        if len(n.input) < 2 or n.input[1] not in inits:
            continue  # FINN's pass skips it too
        name = n.input[1]
        # The datatype inference between FINN's passes must not read these thresholds:
        # only this node uses them, and its rule reads node attributes alone.
        if (uses.get(name) != 1 or name in produced or name in graph_io or not is_custom_op(n.domain)
                or type(getCustomOp(n)).infer_node_datatype is not MultiThreshold.infer_node_datatype):
            return
        dt = model.get_tensor_datatype(n.input[0])
        if dt.is_integer():
            todo.append((inits[name], dt))
        elif dt.is_fixed_point():
            return  # rounding to a scale factor: settling after two roundings is not argued here
    rounded = []
    for init, dt in todo:
        old = numpy_helper.to_array(init)
        if np.isnan(old).any():
            return  # FINN's pass never settles on these; keep its behaviour
        new = _rounded(old, dt)
        if np.any(new != old):
            rounded.append((init, new))
    for init, new in rounded:
        init.CopyFrom(numpy_helper.from_array(new, init.name))


def round_and_clip_thresholds(model: ModelWrapper, make_deepcopy: bool = True, cleanup: bool = True,
                              check: bool | None = None) -> ModelWrapper:
    """``model.transform(RoundAndClipThresholds(), make_deepcopy, cleanup)`` with the same result, in ~2 passes.

    FINN's pass stops at the first threshold it changes, then infers all datatypes and
    cleans up (a deep copy and five passes), and the fixed point re-runs it from the top:
    one O(graph) pass per MultiThreshold, a quadratic term of the streamlining (PresB-Net
    lite 2222: 78 passes, a quarter of StreamlineResiduals). Here FINN's own first pass
    runs, after which every datatype is its inference's fixed point and, as its rule
    for MultiThreshold reads no thresholds, stays so; the thresholds FINN would change in
    the later passes are then rounded at once (the rounding of an already rounded
    threshold is the same array, so how often FINN's passes repeat it does not matter),
    and FINN's own passes run on until they change nothing, which re-writes every
    threshold, its datatype and its place as FINN's last pass does. Graphs outside those
    conditions (see ``_round_all_thresholds``) run FINN's passes only.
    ``check`` (default: ``BNN2FPGA_FAST_APPLY_CHECK=1``) compares with FINN's own and raises on a difference.
    """
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds

    t = RoundAndClipThresholds()
    if getattr(model, "fix_float64", False):
        return model.transform(t, make_deepcopy=make_deepcopy, cleanup=cleanup)
    expected = None
    if os.environ.get(CHECK_ENV) == "1" if check is None else check:
        with qonnx_own():
            expected = copy.deepcopy(model).transform(t, make_deepcopy=False, cleanup=cleanup)
    m = copy.deepcopy(model) if make_deepcopy else model
    m, changed = t.apply(m)
    if changed:
        _round_all_thresholds(m)
    while changed:
        m, changed = t.apply(m)
    if cleanup:
        m.cleanup()  # as QONNX's transform: in place
    if expected is not None and digest(m) != digest(expected):
        raise AssertionError("fast_apply: round_and_clip_thresholds differs from RoundAndClipThresholds")
    return m


# --- FINN's Streamline, read from its source -----------------------------------------------


def _calls_in(node) -> list[str]:
    """Names of the classes instantiated with no arguments in ``model.transform(X())`` calls, in order."""
    found = []
    for n in ast.walk(node):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "transform"
                and n.args and isinstance(n.args[0], ast.Call) and not n.args[0].args and not n.args[0].keywords):
            f = n.args[0].func
            found.append(((n.lineno, n.col_offset), f.id if isinstance(f, ast.Name) else ast.unparse(f)))
    return [name for _, name in sorted(found)]


@lru_cache(maxsize=1)
def _streamline_plan() -> tuple[list[str], list[str]] | None:
    """(the 22 transformations, the chain run after each) of FINN's ``Streamline.apply``, or None."""
    from finn.transformation.streamline import Streamline

    try:
        fn = ast.parse(inspect.cleandoc("\n" + inspect.getsource(Streamline.apply))).body[0]
        assign, loop, ret = fn.body[1], fn.body[2], fn.body[3]
        assert isinstance(assign, ast.Assign) and isinstance(assign.value, ast.List)
        assert isinstance(loop, ast.For) and isinstance(ret, ast.Return)
        trns = []
        for e in assign.value.elts:
            assert isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and not e.args and not e.keywords
            trns.append(e.func.id)
        body = [s for s in loop.body]
        assert all(isinstance(s, ast.Assign) for s in body)
        first = body[0].value
        assert ast.unparse(first) == f"model.transform({loop.target.id})"
        post = _calls_in(ast.Module(body=body[1:], type_ignores=[]))
        assert len(post) == len(body) - 1
        return trns, post
    except Exception:  # noqa: BLE001 - any other shape: use FINN's own class
        return None


def _resolve(names: list[str], module) -> list:
    return [getattr(module, n)() for n in names]


def streamline(model: ModelWrapper, applier: Applier | None = None) -> ModelWrapper:
    """``model.transform(Streamline())`` with the same result (in place; deep-copy first if needed)."""
    import finn.transformation.streamline as fs

    plan = _streamline_plan()
    a = applier or Applier()
    a.forget()  # whatever the caller did to the model since
    if plan is None:
        return model.transform(fs.Streamline(), make_deepcopy=False)
    trns, post = plan
    post_t = _resolve(post, fs)
    for trn in _resolve(trns, fs):
        model = a.transform(model, trn)
        model = a.chain(model, post_t, "streamline-post")
    return a.transform(model, _CleanupOnly(), idempotent=True)  # Streamline's own transform() clean-up


class _CleanupOnly:
    """A transformation that changes nothing: ``model.transform(_CleanupOnly())`` is just the clean-up."""

    def apply(self, model):
        return model, False


#: The ``model.transform(...)`` calls of FINN's ``step_streamline`` that ``finn_step_streamline`` reproduces.
_FINN_STEP_CALLS = ["absorb.AbsorbScalarBiasIntoMultiThreshold", "Streamline", "LowerConvsToMatMul",
                    "MakeMaxPoolNHWC", "absorb.AbsorbTransposeIntoMultiThreshold", "MakeMaxPoolNHWC",
                    "absorb.AbsorbConsecutiveTransposes", "ConvertBipolarMatMulToXnorPopcount", "Streamline",
                    "absorb.AbsorbScalarMulAddIntoTopK", "InferDataLayouts", "RemoveUnusedTensors"]


@lru_cache(maxsize=1)
def _finn_step_matches() -> bool:
    from bnn2fpga.hw import finn_env

    b = finn_env.finn_steps()
    try:
        return _calls_in(ast.parse(inspect.getsource(b.step_streamline))) == _FINN_STEP_CALLS
    except Exception:  # noqa: BLE001
        return False


def finn_step_streamline(model: ModelWrapper, cfg, applier: Applier | None = None) -> ModelWrapper:
    """FINN's ``step_streamline(model, cfg)`` with the same result, faster (falls back to FINN's own)."""
    from bnn2fpga.hw import finn_env

    b = finn_env.finn_steps()

    if not _finn_step_matches() or _streamline_plan() is None:
        return b.step_streamline(model, cfg)
    import finn.transformation.streamline.absorb as absorb
    from finn.transformation.streamline.reorder import MakeMaxPoolNHWC
    from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
    from qonnx.transformation.general import RemoveUnusedTensors
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

    a = applier or Applier()
    model = copy.deepcopy(model)
    model = a.transform(model, absorb.AbsorbScalarBiasIntoMultiThreshold())
    model = streamline(model, a)
    if len(model.get_nodes_by_op_type("Conv")) > 0:
        model = a.transform(model, LowerConvsToMatMul())
        model = a.transform(model, MakeMaxPoolNHWC())
        model = a.transform(model, absorb.AbsorbTransposeIntoMultiThreshold())
        model = a.transform(model, MakeMaxPoolNHWC())
        model = a.transform(model, absorb.AbsorbConsecutiveTransposes())
    model = a.transform(model, ConvertBipolarMatMulToXnorPopcount())
    model = streamline(model, a)
    model = a.transform(model, absorb.AbsorbScalarMulAddIntoTopK())
    model = a.transform(model, InferDataLayouts(), idempotent=True)
    model = a.transform(model, RemoveUnusedTensors(), idempotent=True)
    b_verify = getattr(b, "VerificationStepType", None)
    if b_verify is not None and b_verify.STREAMLINED_PYTHON in cfg._resolve_verification_steps():
        b.verify_step(model, cfg, "streamlined_python", need_parent=False)
    return model


# --- FINN's step_qonnx_to_finn ------------------------------------------------------------


def _transform_names(fn) -> list[str]:
    """Class names in ``model.transform(X(...))`` calls of function ``fn``, in source order (with or without arguments)."""
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(fn)))
    found = []
    for n in ast.walk(tree):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "transform"
                and n.args and isinstance(n.args[0], ast.Call)):
            f = n.args[0].func
            found.append(((n.lineno, n.col_offset), f.id if isinstance(f, ast.Name) else ast.unparse(f)))
    return [name for _, name in sorted(found)]


#: QONNX's ``cleanup_model`` transformations (preserve_qnt_ops, no input size override).
_CLEANUP_MODEL = ["InferShapes", "GiveUniqueParameterTensors", "FoldConstants", "FoldTransposeIntoQuantInit",
                  "RemoveUnusedTensors", "RemoveStaticGraphInputs", "GiveUniqueNodeNames", "GiveReadableTensorNames"]
#: The ``model.transform`` calls of FINN's ``ConvertQONNXtoFINN.apply``.
_CONVERT_QONNX = ["InferMissingConvKernelShape", "ExtractBiasFromConv", "InferMissingGemmBias", "GemmToMatMul",
                  "FoldTransposeIntoQuantInit", "InferDataTypes", "FoldQuantWeights", "InferDataLayouts",
                  "ConvertQuantActToMultiThreshold", "InferDataTypes", "InferDataLayouts",
                  "AvgPoolAndTruncToQuantAvgPool", "RemoveIdentityOps"]


@lru_cache(maxsize=1)
def _qonnx_plan_matches() -> bool:
    """FINN's step_qonnx_to_finn, ConvertQONNXtoFINN and QONNX's cleanup_model still have the shape reproduced here."""
    from bnn2fpga.hw import finn_env

    try:
        from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
        from qonnx.util import cleanup as qc

        step_src = inspect.getsource(finn_env.finn_steps().step_qonnx_to_finn)
        tree = ast.parse(inspect.getsource(qc.cleanup_model))
        lists = [n for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.List)
                 and any(getattr(t, "id", "") == "cleanup_transformations" for t in n.targets)]
        cleanup_names = [e.func.id for e in lists[0].value.elts] if len(lists) == 1 else None
        return (_transform_names(ConvertQONNXtoFINN.apply) == _CONVERT_QONNX
                and cleanup_names == _CLEANUP_MODEL
                and _transform_names(finn_env.finn_steps().step_qonnx_to_finn) == ["ConvertQONNXtoFINN"]
                and step_src.count("cleanup_model(model)") == 1)
    except Exception:  # noqa: BLE001 - any other shape: use FINN's own
        return False


def cleanup_model(model: ModelWrapper, applier: Applier) -> ModelWrapper:
    """QONNX's ``cleanup_model(model)`` (quantizers kept) through ``applier``; in place."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (
        GiveReadableTensorNames,
        GiveUniqueNodeNames,
        GiveUniqueParameterTensors,
        RemoveStaticGraphInputs,
        RemoveUnusedTensors,
    )
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    if not _qonnx_plan_matches():
        from qonnx.util.cleanup import cleanup_model as qonnx_cleanup

        applier.forget()
        return qonnx_cleanup(model)
    changed = False
    for n in model.graph.node:
        if n.op_type in ("Quant", "Trunc", "BipolarQuant") and n.domain != "qonnx.custom_op.general":
            n.domain, changed = "qonnx.custom_op.general", True
    if changed:
        applier.forget()
    keep = ["Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear"]
    for t in (InferShapes(), GiveUniqueParameterTensors(), FoldConstants(exclude_op_types=keep),
              FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs(), GiveUniqueNodeNames(),
              GiveReadableTensorNames()):
        model = applier.transform(model, t)
    return model


def convert_qonnx_to_finn(model: ModelWrapper, filter_function, applier: Applier, fold_weights=None) -> ModelWrapper:
    """``model.transform(ConvertQONNXtoFINN(filter_function))`` with the same result; in place.

    ``fold_weights``: a transformation class that folds all weight quantizers as FINN's
    FoldQuantWeights does, in one pass, run right before it (the build step passes
    ``transforms.fold_quant_weights.FoldAllQuantWeights``; this module does not import
    the transformations, which use it).
    """
    from finn.transformation.qonnx import convert_qonnx_to_finn as cq
    from qonnx.transformation.extract_conv_bias import ExtractBiasFromConv
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit
    from qonnx.transformation.remove import RemoveIdentityOps

    a = applier
    if not _qonnx_plan_matches():
        a.forget()
        return model.transform(cq.ConvertQONNXtoFINN(filter_function=filter_function), make_deepcopy=False)
    for t in (cq.InferMissingConvKernelShape(), ExtractBiasFromConv(), cq.InferMissingGemmBias(), GemmToMatMul(),
              FoldTransposeIntoQuantInit(), InferDataTypes()):
        model = a.transform(model, t)
    if fold_weights is not None:
        model = a.transform(model, fold_weights())
    model = a.transform(model, cq.FoldQuantWeights())  # finds nothing left, unless a case ours leaves to FINN
    for t in (InferDataLayouts(), cq.ConvertQuantActToMultiThreshold(filter_function=filter_function),
              InferDataTypes(), InferDataLayouts(), cq.AvgPoolAndTruncToQuantAvgPool(), RemoveIdentityOps()):
        model = a.transform(model, t)
    return a.transform(model, _CleanupOnly(), idempotent=True)  # ConvertQONNXtoFINN's own transform() clean-up


def finn_step_qonnx_to_finn(model: ModelWrapper, cfg, applier: Applier | None = None,
                            fold_weights=None) -> ModelWrapper:
    """FINN's ``step_qonnx_to_finn(model, cfg)`` with the same result, faster (falls back to FINN's own); in place.

    ``fold_weights``: see ``convert_qonnx_to_finn``.
    """
    from bnn2fpga.hw import finn_env

    b = finn_env.finn_steps()
    if not _qonnx_plan_matches():
        return b.step_qonnx_to_finn(model, cfg)
    from finn.transformation.qonnx.quant_act_to_multithreshold import default_filter_function_generator

    if not any(n.op_type in ("BipolarQuant", "BinaryQuant", "Quant", "Trunc") for n in model.graph.node):
        return model
    a = applier or Applier()
    model = cleanup_model(model, a)
    model = convert_qonnx_to_finn(
        model, default_filter_function_generator(max_multithreshold_bit_width=cfg.max_multithreshold_bit_width), a,
        fold_weights)
    b_verify = getattr(b, "VerificationStepType", None)
    if b_verify is not None and b_verify.QONNX_TO_FINN_PYTHON in cfg._resolve_verification_steps():
        b.verify_step(model, cfg, "finn_onnx_python", need_parent=False)
    return model


# --- FINN's step_tidy_up ------------------------------------------------------------------

_TIDY_UP = ["InferShapes", "FoldConstants", "GiveUniqueNodeNamesRecursive", "GiveReadableTensorNames",
            "InferDataTypes", "RemoveStaticGraphInputs"]


@lru_cache(maxsize=1)
def _tidy_up_matches() -> bool:
    from bnn2fpga.hw import finn_env

    try:
        return _transform_names(finn_env.finn_steps().step_tidy_up) == _TIDY_UP
    except Exception:  # noqa: BLE001
        return False


def finn_step_tidy_up(model: ModelWrapper, cfg, applier: Applier | None = None) -> ModelWrapper:
    """FINN's ``step_tidy_up(model, cfg)`` with the same result, without clean-ups of clean graphs; in place."""
    from bnn2fpga.hw import finn_env

    b = finn_env.finn_steps()
    if not _tidy_up_matches():
        return b.step_tidy_up(model, cfg)
    from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import GiveReadableTensorNames, RemoveStaticGraphInputs
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    a = applier or Applier()
    for t in (InferShapes(), FoldConstants(), GiveUniqueNodeNamesRecursive(), GiveReadableTensorNames(),
              InferDataTypes(), RemoveStaticGraphInputs()):
        model = a.transform(model, t)
    b_verify = getattr(b, "VerificationStepType", None)
    if b_verify is not None and b_verify.TIDY_UP_PYTHON in cfg._resolve_verification_steps():
        b.verify_step(model, cfg, "initial_python", need_parent=False)
    return model
