"""Static tools for ComfyUI workflows that need no ComfyUI: a checker for UI-format (litegraph) workflows,
a UI -> API converter, and /object_info-style node definitions built from V1 node classes.

Node definitions ("defs") are dicts shaped like `GET /object_info` entries:
{"input": {"required": {name: [type_or_options, config]}, "optional": {...}}, "input_order": {...},
 "output": [...], "output_name": [...], ...}. tools/data/core_object_info.json holds the core nodes our
workflows use, captured from a real server; `object_info_from_classes` builds the pack's own.

The widget rules mirror ComfyUI's frontend (comfyui-frontend-package 1.27): a saved node's
`widgets_values` is positional over its widget inputs in `input_order` (required, then optional), an INT
with `control_after_generate` (or named seed/noise_seed) is followed by its control value ("randomize", ...),
and an upload combo is followed by the upload widget's value(s).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Union

# Frontend-only node types: never sent to the server, never in /object_info.
VIRTUAL_NODE_TYPES = frozenset({"Note", "MarkdownNote", "PrimitiveNode", "Reroute", "GetNode", "SetNode"})
MODE_MUTED = 2  # litegraph "never": the node and everything only it feeds is left out
MODE_BYPASS = 4  # the node is skipped; its outputs are wired to its matching inputs
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
# The frontend adds UI-only widgets after upload combos; their values are saved in widgets_values too.
UPLOAD_EXTRA_VALUES = {"image_upload": 1, "video_upload": 1, "animated_image_upload": 1, "audio_upload": 2}

NodeDefs = Mapping[str, Mapping[str, Any]]
# Which combos may hold values missing from the captured option list (model files, input files).
EnvCombos = Union[Iterable[tuple[str, str]], Callable[[str, str], bool], None]


# --------------------------------------------------------------------------------------------------------------
# Reading workflows and node definitions
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Link:
    id: int
    origin_id: int
    origin_slot: int
    target_id: int
    target_slot: int
    type: str


def parse_links(workflow: Mapping[str, Any]) -> dict[int, Link]:
    """Links of a UI workflow by id; accepts both the list form (version 0.4) and the object form (version 1)."""
    out: dict[int, Link] = {}
    for raw in workflow.get("links") or []:
        if isinstance(raw, Mapping):
            link = Link(raw["id"], raw["origin_id"], raw["origin_slot"], raw["target_id"], raw["target_slot"],
                        raw.get("type", "*"))
        else:
            link = Link(*raw[:6])
        out[link.id] = link
    return out


def load_object_info(path: str | Path) -> dict[str, dict]:
    """Load an /object_info dump; top-level keys starting with "_" (provenance notes) are dropped."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # "COMBO" for option lists
    config: Mapping[str, Any]
    options: list | None  # combo options, else None
    required: bool

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and not self.config.get("forceInput")

    @property
    def extra_values(self) -> int:
        """How many UI-only values the frontend saves after this widget's own value."""
        # An explicit control_after_generate wins; legacy frontend rule: INTs named seed/noise_seed get one too.
        if "control_after_generate" in self.config:
            if self.config["control_after_generate"]:
                return 1
        elif self.type == "INT" and self.name in ("seed", "noise_seed"):
            return 1
        return max((n for key, n in UPLOAD_EXTRA_VALUES.items() if self.config.get(key)), default=0)


def input_specs(node_def: Mapping[str, Any]) -> list[InputSpec]:
    """Required then optional inputs of a node definition, in input_order (hidden inputs are not inputs)."""
    specs = []
    inputs = node_def.get("input") or {}
    order = node_def.get("input_order") or {}
    for section in ("required", "optional"):
        declared = inputs.get(section) or {}
        for name in order.get(section, list(declared)):
            if name not in declared:
                continue
            raw = declared[name]
            type_, config = raw[0], (raw[1] if len(raw) > 1 and isinstance(raw[1], Mapping) else {})
            if isinstance(type_, list):  # V1 combo: the option list is the type
                specs.append(InputSpec(name, "COMBO", config, list(type_), section == "required"))
            elif type_ == "COMBO":  # V3 combo: options in the config
                specs.append(InputSpec(name, "COMBO", config, list(config.get("options") or []), section == "required"))
            else:
                specs.append(InputSpec(name, str(type_), config, None, section == "required"))
    return specs


def widget_specs(node_def: Mapping[str, Any]) -> list[InputSpec]:
    return [s for s in input_specs(node_def) if s.is_widget]


def expected_widget_count(node_def: Mapping[str, Any]) -> int:
    return sum(1 + s.extra_values for s in widget_specs(node_def))


def map_widget_values(node: Mapping[str, Any], node_def: Mapping[str, Any]) -> dict[str, Any]:
    """Widget input name -> saved value. Tolerant of files saved without the UI-only extra values (older frontends):
    an extra value is only skipped while more values remain than widgets still to fill."""
    values = node.get("widgets_values")
    widgets = widget_specs(node_def)
    if isinstance(values, Mapping):  # some custom frontends save widgets by name
        return {w.name: values[w.name] for w in widgets if w.name in values}
    values = list(values or [])
    out: dict[str, Any] = {}
    pos = 0
    for i, w in enumerate(widgets):
        if pos >= len(values):
            break
        out[w.name] = values[pos]
        pos += 1
        for _ in range(w.extra_values):
            remaining_widgets = len(widgets) - i - 1
            if len(values) - pos > remaining_widgets:
                pos += 1
    return out


def types_compatible(output_type: str, input_type: str) -> bool:
    """Server rule (comfy_execution/validation.py, non-strict) plus "*"/"" as wildcards, as the frontend allows."""
    if output_type == input_type or output_type in ("*", "") or input_type in ("*", ""):
        return True
    received = {t.strip() for t in str(output_type).split(",")}
    accepted = {t.strip() for t in str(input_type).split(",")}
    return "*" in received or "*" in accepted or bool(received & accepted)


# --------------------------------------------------------------------------------------------------------------
# Static checker
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Issue:
    kind: str  # unknown_node_type | widget_count | combo_value | out_of_range | bad_value_type | link_type_mismatch
    #            | bad_link | unknown_input | missing_input
    node_id: Any
    node_type: str
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] node {self.node_id} ({self.node_type}): {self.message}"


def _env_combo_predicate(env_combos: EnvCombos) -> Callable[[str, str], bool]:
    if env_combos is None:
        return lambda node_type, name: False
    if callable(env_combos):
        return env_combos
    allowed = {tuple(pair) for pair in env_combos}
    return lambda node_type, name: (node_type, name) in allowed or ("*", name) in allowed


def _check_widget_value(spec: InputSpec, value: Any, env_dependent: bool) -> tuple[str, str] | None:
    cfg = spec.config
    if spec.type == "COMBO":
        if env_dependent or any(cfg.get(k) for k in UPLOAD_EXTRA_VALUES):
            return None  # model / input file lists depend on the machine
        if value not in (spec.options or []):
            return "combo_value", f"{spec.name}: {value!r} not in {spec.options}"
        return None
    if spec.type == "INT":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            return "bad_value_type", f"{spec.name}: {value!r} is not an INT"
    elif spec.type == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "bad_value_type", f"{spec.name}: {value!r} is not a FLOAT"
    elif spec.type == "BOOLEAN":
        if not isinstance(value, bool):
            return "bad_value_type", f"{spec.name}: {value!r} is not a BOOLEAN"
        return None
    elif spec.type == "STRING":
        if not isinstance(value, str):
            return "bad_value_type", f"{spec.name}: {value!r} is not a STRING"
        return None
    if "min" in cfg and value < cfg["min"]:
        return "out_of_range", f"{spec.name}: {value} < min {cfg['min']}"
    if "max" in cfg and value > cfg["max"]:
        return "out_of_range", f"{spec.name}: {value} > max {cfg['max']}"
    return None


def _resolve_origin(nodes: Mapping[int, Mapping], links: Mapping[int, Link],
                    link_id: int) -> tuple[Mapping, int] | None:
    """Follow a link back through Reroute nodes to the real source (node, output slot); None if dangling."""
    seen = set()
    while link_id is not None and link_id not in seen:
        seen.add(link_id)
        link = links.get(link_id)
        node = nodes.get(link.origin_id) if link else None
        if node is None:
            return None
        if node.get("type") != "Reroute":
            return node, link.origin_slot
        inputs = node.get("inputs") or []
        link_id = inputs[0].get("link") if inputs else None
    return None


def check_workflow(workflow: Mapping[str, Any], node_defs: NodeDefs, env_combos: EnvCombos = None) -> list[Issue]:
    """Report what would break loading or queueing a UI-format workflow against `node_defs`.

    env_combos: combos whose values are environment dependent (model files), as (node_type, input_name) pairs
    (node_type "*" matches any node) or a predicate. Upload combos (LoadImage, LoadVideo) are always treated so.
    Subgraphs (definitions.subgraphs) are not expanded: their instance nodes are reported as unknown types.
    """
    is_env = _env_combo_predicate(env_combos)
    nodes = {n["id"]: n for n in workflow.get("nodes") or []}
    links = parse_links(workflow)
    issues: list[Issue] = []

    for node in nodes.values():
        nid, ntype = node.get("id"), node.get("type", "")
        if ntype in VIRTUAL_NODE_TYPES:
            continue
        node_def = node_defs.get(ntype)
        if node_def is None:
            issues.append(Issue("unknown_node_type", nid, ntype, f"node type {ntype!r} is not registered"))
            continue
        specs = {s.name: s for s in input_specs(node_def)}

        if not isinstance(node.get("widgets_values"), Mapping):
            n_values, n_expected = len(node.get("widgets_values") or []), expected_widget_count(node_def)
            if n_values != n_expected:
                issues.append(Issue("widget_count", nid, ntype,
                                    f"{n_values} widgets_values, expected {n_expected} "
                                    f"for widgets {[s.name for s in widget_specs(node_def)]}"))
        for name, value in map_widget_values(node, node_def).items():
            problem = _check_widget_value(specs[name], value, is_env(ntype, name))
            if problem:
                issues.append(Issue(problem[0], nid, ntype, problem[1]))

        linked = set()
        for slot in node.get("inputs") or []:
            name = slot.get("name")
            if name not in specs:
                issues.append(Issue("unknown_input", nid, ntype, f"input {name!r} is not in the node definition"))
                continue
            if slot.get("link") is None:
                continue
            linked.add(name)
            origin = _resolve_origin(nodes, links, slot["link"])
            if origin is None:
                issues.append(Issue("bad_link", nid, ntype, f"input {name!r}: link {slot['link']} has no source node"))
                continue
            onode, oslot = origin
            if onode.get("type") in VIRTUAL_NODE_TYPES:  # PrimitiveNode takes the type of what it feeds
                continue
            odef = node_defs.get(onode.get("type"))
            if odef is None:
                continue  # already reported as an unknown type
            outputs = odef.get("output") or []
            if not 0 <= oslot < len(outputs):
                issues.append(Issue("bad_link", nid, ntype,
                                    f"input {name!r}: source {onode['type']} has no output slot {oslot}"))
                continue
            wanted = specs[name].type
            if not types_compatible(outputs[oslot], wanted):
                issues.append(Issue("link_type_mismatch", nid, ntype,
                                    f"input {name!r} ({wanted}) linked from {onode['type']} "
                                    f"(node {onode['id']}) output {oslot} ({outputs[oslot]})"))

        if node.get("mode", 0) not in (MODE_MUTED, MODE_BYPASS):
            for spec in specs.values():
                if spec.required and not spec.is_widget and spec.name not in linked:
                    issues.append(Issue("missing_input", nid, ntype, f"required input {spec.name!r} is not linked"))
    return issues


# --------------------------------------------------------------------------------------------------------------
# UI -> API conversion
# --------------------------------------------------------------------------------------------------------------

class WorkflowConversionError(ValueError):
    pass


def _bypass_input_index(node: Mapping, slot: int, wanted_type: str) -> int | None:
    """Which input of a bypassed node stands in for its output `slot` (frontend's #getBypassSlotIndex)."""
    inputs = node.get("inputs") or []
    outputs = node.get("outputs") or []
    if not inputs:
        return None
    if wanted_type in ("*", ""):
        return slot if slot < len(inputs) else 0
    out_type = outputs[slot].get("type", "*") if slot < len(outputs) else "*"
    if slot < len(inputs) and types_compatible(inputs[slot].get("type", "*"), out_type) \
            and types_compatible(inputs[slot].get("type", "*"), wanted_type):
        return slot
    for i, inp in enumerate(inputs):
        if inp.get("type") == wanted_type:
            return i
    for i, inp in enumerate(inputs):
        if types_compatible(inp.get("type", "*"), wanted_type):
            return i
    return None


def _resolve_link_for_api(nodes: Mapping[int, Mapping], links: Mapping[int, Link], link_id: int,
                          wanted_type: str, depth: int = 0) -> tuple[Mapping, int] | None:
    """Real (executed) source of a link: through reroutes and bypassed nodes. None drops the input
    (muted source, unlinked bypass input, primitive widget source), as the frontend does."""
    if depth > 100:
        raise WorkflowConversionError(f"link {link_id}: cycle while resolving reroutes/bypasses")
    link = links.get(link_id)
    node = nodes.get(link.origin_id) if link else None
    if node is None:
        return None
    mode = node.get("mode", 0)
    if node.get("type") == "Reroute" or mode == MODE_BYPASS:
        index = 0 if node.get("type") == "Reroute" else _bypass_input_index(node, link.origin_slot, wanted_type)
        inputs = node.get("inputs") or []
        if index is None or index >= len(inputs) or inputs[index].get("link") is None:
            return None
        return _resolve_link_for_api(nodes, links, inputs[index]["link"], wanted_type, depth + 1)
    if node.get("type") in VIRTUAL_NODE_TYPES or mode == MODE_MUTED:
        return None
    return node, link.origin_slot


def convert_ui_to_api(workflow: Mapping[str, Any], object_info: NodeDefs) -> dict[str, dict]:
    """UI (litegraph) workflow -> API prompt {"id": {"class_type", "inputs", "_meta"}} using /object_info defs.

    Handles positional widgets_values (with control/upload extra values), Note/MarkdownNote/PrimitiveNode/Reroute
    (skipped; a widget fed by a PrimitiveNode keeps the value the frontend synced into it), muted nodes
    (left out, and links from them dropped), bypassed nodes (wired through) and reroutes. Not subgraphs."""
    if "nodes" not in workflow:
        raise WorkflowConversionError("not a UI-format workflow (no 'nodes')")
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = parse_links(workflow)
    unknown = sorted({n.get("type") for n in nodes.values()
                      if n.get("type") not in VIRTUAL_NODE_TYPES and n.get("type") not in object_info
                      and n.get("mode", 0) not in (MODE_MUTED, MODE_BYPASS)})
    if unknown:
        raise WorkflowConversionError(f"node types not registered on the server: {unknown}")

    prompt: dict[str, dict] = {}
    for node in nodes.values():
        ntype = node.get("type")
        if ntype in VIRTUAL_NODE_TYPES or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASS):
            continue
        node_def = object_info[ntype]
        specs = {s.name: s for s in input_specs(node_def)}
        inputs: dict[str, Any] = {}
        for name, value in map_widget_values(node, node_def).items():
            # A list value would read as a link [node_id, slot]; the server unwraps {"__value__": ...}.
            inputs[name] = {"__value__": value} if isinstance(value, list) else copy.deepcopy(value)
        for slot in node.get("inputs") or []:
            if slot.get("link") is None or slot.get("name") not in specs:
                continue
            wanted = specs[slot["name"]].type
            origin = _resolve_link_for_api(nodes, links, slot["link"], wanted)
            if origin is not None:
                inputs[slot["name"]] = [str(origin[0]["id"]), origin[1]]
            elif not specs[slot["name"]].is_widget:
                inputs.pop(slot["name"], None)
        title = node.get("title") or node_def.get("display_name") or ntype
        prompt[str(node["id"])] = {"class_type": ntype, "inputs": inputs, "_meta": {"title": title}}

    # Links into nodes that were left out (muted sources resolved above; here: sources that are bypassed
    # chains ending nowhere) must not survive, as in the frontend's final cleanup.
    for entry in prompt.values():
        for name, value in list(entry["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and value[0] not in prompt:
                del entry["inputs"][name]
    return prompt


# --------------------------------------------------------------------------------------------------------------
# /object_info entries from V1 node classes (so the pack's nodes can be checked without ComfyUI)
# --------------------------------------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    # /object_info is JSON: tuples become lists; anything not JSON-serializable would break the real endpoint too.
    return json.loads(json.dumps(value))


def node_info_from_v1_class(cls: type, node_id: str, display_name: str | None = None,
                            python_module: str = "custom_nodes.pack") -> dict[str, Any]:
    """The /object_info entry ComfyUI's server.py builds for a V1 class (same fields, same defaults).
    A V3 class (with GET_NODE_INFO_V1, needs comfy_api importable) is asked directly."""
    if hasattr(cls, "GET_NODE_INFO_V1"):
        return _jsonable(cls.GET_NODE_INFO_V1())
    input_types = cls.INPUT_TYPES()
    info: dict[str, Any] = {
        "input": input_types,
        "input_order": {key: list(value.keys()) for key, value in input_types.items()},
        "output": list(cls.RETURN_TYPES),
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(cls.RETURN_TYPES))),
        "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
        "name": node_id,
        "display_name": display_name or node_id,
        "description": getattr(cls, "DESCRIPTION", ""),
        "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", python_module),
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": getattr(cls, "OUTPUT_NODE", False) is True,
    }
    if hasattr(cls, "OUTPUT_TOOLTIPS"):
        info["output_tooltips"] = list(cls.OUTPUT_TOOLTIPS)
    if getattr(cls, "DEPRECATED", False):
        info["deprecated"] = True
    if getattr(cls, "EXPERIMENTAL", False):
        info["experimental"] = True
    if hasattr(cls, "API_NODE"):
        info["api_node"] = cls.API_NODE
    return _jsonable(info)


def object_info_from_classes(class_mappings: Mapping[str, type], display_names: Mapping[str, str] | None = None,
                             python_module: str = "custom_nodes.pack") -> dict[str, dict]:
    """/object_info-style dict for NODE_CLASS_MAPPINGS (+ NODE_DISPLAY_NAME_MAPPINGS)."""
    display_names = display_names or {}
    return {node_id: node_info_from_v1_class(cls, node_id, display_names.get(node_id), python_module)
            for node_id, cls in class_mappings.items()}


# --------------------------------------------------------------------------------------------------------------
# Building small UI workflows in tests
# --------------------------------------------------------------------------------------------------------------

class UIGraph:
    """Builds a UI-format workflow the way the frontend saves one (sockets for non-widget inputs, links both in
    the `links` table and on the node slots), for tests that need realistic workflows without hand-written JSON."""

    def __init__(self, node_defs: NodeDefs):
        self.node_defs = node_defs
        self.nodes: list[dict[str, Any]] = []
        self.links: list[list[Any]] = []

    def node(self, node_type: str, widgets_values: Iterable[Any] | None = (), mode: int = 0, title: str | None = None,
             inputs: list[dict] | None = None, outputs: list[dict] | None = None) -> int:
        """Add a node; sockets come from its definition unless given. Returns the node id."""
        node_id = len(self.nodes) + 1
        node_def = self.node_defs.get(node_type)
        if inputs is None:
            if node_type == "Reroute":
                inputs = [{"name": "", "type": "*", "link": None}]
            else:
                inputs = [{"name": s.name, "type": s.type, "link": None}
                          for s in (input_specs(node_def) if node_def else []) if not s.is_widget]
        if outputs is None:
            if node_type == "Reroute":
                outputs = [{"name": "", "type": "*", "links": []}]
            elif node_def:
                outputs = [{"name": n, "type": t, "links": [], "slot_index": i}
                           for i, (t, n) in enumerate(zip(node_def["output"], node_def["output_name"], strict=True))]
            else:
                outputs = []
        node: dict[str, Any] = {"id": node_id, "type": node_type, "pos": [300 * node_id, 100], "size": [300, 100],
                                "flags": {}, "order": node_id - 1, "mode": mode, "inputs": inputs,
                                "outputs": outputs, "properties": {"Node name for S&R": node_type},
                                "widgets_values": None if widgets_values is None else list(widgets_values)}
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node_id

    def link(self, src: int, src_slot: int, dst: int, input_name: str = "") -> int:
        """Connect output `src_slot` of node `src` to input `input_name` of node `dst` (a widget input is
        turned into a socket, as when a widget is converted to an input in the frontend)."""
        source, target = self.nodes[src - 1], self.nodes[dst - 1]
        link_id = len(self.links) + 1
        out = source["outputs"][src_slot]
        slots = [i for i, s in enumerate(target["inputs"]) if s["name"] == input_name]
        if slots:
            slot = slots[0]
        else:
            spec = {s.name: s for s in input_specs(self.node_defs.get(target["type"], {}))}.get(input_name)
            target["inputs"].append({"name": input_name, "type": spec.type if spec else out["type"], "link": None,
                                     "widget": {"name": input_name}})
            slot = len(target["inputs"]) - 1
        target["inputs"][slot]["link"] = link_id
        out.setdefault("links", []).append(link_id)
        link_type = out["type"]
        if target["type"] == "Reroute":
            target["outputs"][0]["type"] = out["type"]  # a reroute takes the type of what feeds it
        self.links.append([link_id, src, src_slot, dst, slot, link_type])
        return link_id

    def to_json(self) -> dict[str, Any]:
        return {"id": "00000000-0000-4000-8000-000000000000", "revision": 0,
                "last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": copy.deepcopy(self.nodes), "links": copy.deepcopy(self.links), "groups": [], "config": {},
                "extra": {}, "version": 0.4}
