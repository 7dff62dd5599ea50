"""Run a real ComfyUI headless for end-to-end tests, and talk to it over HTTP + websocket.

    with ComfyServer(comfyui_dir, packs={"MyPack": repo_root}, models_dir=..., input_files=[...]) as srv:
        srv.require_pack("MyPack")                       # PackImportError (with the traceback) if it did not load
        res = srv.run_workflow(ui_json, overrides={"12": {"seed": 1}}, timeout=300)
        res.raise_for_status()                           # AssertionError with the node's traceback / node_errors
        res.files                                        # output files on disk

The server gets a private --base-directory (custom_nodes/ with symlinks to the packs, models/ as a symlink to the
given folder, input/, output/, temp/, user/), listens on 127.0.0.1 only, on a free port, and is killed as a whole
process group on stop(), on garbage collection and at interpreter exit. HTTP uses urllib; the websocket needs the
`websocket-client` package (imported lazily so that collecting the tests never requires it).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from tools.workflow_tools import convert_ui_to_api

__all__ = ["ComfyServer", "ComfyServerError", "PackImportError", "PromptRejected", "RunResult",
           "convert_ui_to_api", "find_pack_import_error", "free_port"]

EventCallback = Callable[[str, dict], None]
TERMINAL_EVENTS = {"execution_success": "success", "execution_error": "error",
                   "execution_interrupted": "interrupted"}


class ComfyServerError(RuntimeError):
    """The server did not start, died, or answered something unexpected."""


class PackImportError(ComfyServerError):
    """A node pack registered no nodes; the message carries the import traceback from the server log."""


class PromptRejected(ComfyServerError):
    """POST /prompt answered 400 (validation failed); `body` is the server's JSON answer."""

    def __init__(self, body: Mapping[str, Any]):
        self.body = dict(body)
        super().__init__(format_validation_error(self.body))


@dataclass
class RunResult:
    """Outcome of one prompt. status: success | error | interrupted | invalid (HTTP 400) | timeout."""
    status: str
    prompt_id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)  # /history outputs: {node_id: ui dict}
    files: list[Path] = field(default_factory=list)  # files named in outputs that exist on disk
    execution_error: dict[str, Any] | None = None  # the websocket execution_error payload
    validation_error: dict[str, Any] | None = None  # the 400 body: {"error": ..., "node_errors": ...}
    messages: list[tuple[str, Any]] = field(default_factory=list)  # websocket JSON events of this prompt
    roundtrip_s: float = 0.0  # POST /prompt to the terminal event
    api_prompt: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def events(self, kind: str) -> list[Any]:
        return [data for typ, data in self.messages if typ == kind]

    def describe(self) -> str:
        if self.status == "error" and self.execution_error:
            e = self.execution_error
            tb = "".join(e.get("traceback") or [])
            return (f"node {e.get('node_id')} ({e.get('node_type')}) raised {e.get('exception_type')}: "
                    f"{e.get('exception_message')}\n{tb}")
        if self.status == "invalid" and self.validation_error:
            return format_validation_error(self.validation_error)
        return f"status {self.status}"

    def raise_for_status(self) -> RunResult:
        if not self.ok:
            raise AssertionError(f"prompt {self.prompt_id} did not succeed: {self.describe()}")
        return self


def format_validation_error(body: Mapping[str, Any]) -> str:
    err = body.get("error") or {}
    lines = [f"{err.get('type')}: {err.get('message')} {err.get('details') or ''}".rstrip()]
    for node_id, node_err in (body.get("node_errors") or {}).items():
        for e in node_err.get("errors", []):
            lines.append(f"  node {node_id} ({node_err.get('class_type')}): {e.get('type')}: "
                         f"{e.get('message')}: {e.get('details')}")
    return "\n".join(lines)


def free_port() -> int:
    # Ask the kernel for a free loopback port; the tiny window before ComfyUI binds it is acceptable in tests.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_pack_import_error(log_text: str, module_path: str) -> str | None:
    """The part of the server log that explains why the pack at `module_path` did not load
    (the traceback ComfyUI logs before "Cannot import <path> module for custom nodes: ...")."""
    lines = log_text.splitlines()
    markers = ("Cannot import", "Skip ", "Error while calling comfy_entrypoint",
               "did not return a ComfyExtension", "did not return a list of nodes")
    for i, line in enumerate(lines):
        if module_path in line and any(m in line for m in markers):
            start = i
            for j in range(i - 1, -1, -1):
                if lines[j].startswith("Traceback (most recent call last)"):
                    start = j
                    break
                if "custom nodes" in lines[j] and module_path not in lines[j]:
                    break  # another pack's message: no traceback of ours in between
            return "\n".join(lines[start:i + 1])
    return None


def _kill_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL after 10 s. Module-level so weakref.finalize can hold it."""
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # The group outlives its leader while children remain (start_new_session made pgid == pid).
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


class ComfyServer:
    """A ComfyUI server process in a private base directory. Use as a context manager or call start()/stop()."""

    def __init__(self, comfyui_dir: str | os.PathLike, packs: Mapping[str, str | os.PathLike] | None = None,
                 models_dir: str | os.PathLike | None = None,
                 input_files: Iterable[str | os.PathLike] | Mapping[str, str | os.PathLike] = (),
                 python: str | None = None, extra_args: Iterable[str] = ("--disable-api-nodes",),
                 startup_timeout: float = 240.0, keep_base_dir: bool = False):
        self.comfyui_dir = Path(comfyui_dir).resolve()
        if not (self.comfyui_dir / "main.py").is_file():
            raise ComfyServerError(f"{self.comfyui_dir} is not a ComfyUI checkout (no main.py)")
        self.packs = {name: Path(p).resolve() for name, p in (packs or {}).items()}
        self.models_dir = Path(models_dir).resolve() if models_dir else None
        self._initial_inputs = input_files
        self.python = python or sys.executable
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.keep_base_dir = keep_base_dir
        self.base_dir: Path | None = None
        self.port: int | None = None
        self.startup_s: float | None = None
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self._finalizer: weakref.finalize | None = None
        self._object_info: dict[str, Any] | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "comfyui.log"

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _make_base_dir(self) -> None:
        self.base_dir = Path(tempfile.mkdtemp(prefix="comfy_e2e_"))
        # main.py lists <base>/custom_nodes before creating it (FileNotFoundError), so all folders are made here.
        for sub in ("custom_nodes", "input", "output", "temp", "user"):
            (self.base_dir / sub).mkdir()
        for name, path in self.packs.items():
            (self.base_dir / "custom_nodes" / name).symlink_to(path, target_is_directory=True)
        if self.models_dir:
            (self.base_dir / "models").symlink_to(self.models_dir, target_is_directory=True)
        else:
            (self.base_dir / "models").mkdir()
        items = self._initial_inputs.items() if isinstance(self._initial_inputs, Mapping) else \
            ((None, p) for p in self._initial_inputs)
        for name, src in items:
            self.add_input_file(src, name)

    def start(self) -> ComfyServer:
        if self._proc is not None:
            return self
        self._make_base_dir()
        self.port = free_port()
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--base-directory", str(self.base_dir), *self.extra_args]
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   DO_NOT_TRACK="1")
        self._log_file = open(self.log_path, "wb")
        t0 = time.monotonic()
        # A new session makes the server the leader of its own process group, so stop() also ends its children.
        self._proc = subprocess.Popen(cmd, cwd=self.comfyui_dir, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                      stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._finalizer = weakref.finalize(self, _kill_process_group, self._proc)
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        while time.monotonic() - t0 < self.startup_timeout:
            if self._proc.poll() is not None:
                raise ComfyServerError(f"ComfyUI exited with code {self._proc.returncode} during startup:\n"
                                       f"{self.log_tail()}")
            try:
                self.get_json("/system_stats", timeout=2)
                return
            except (OSError, ComfyServerError):
                time.sleep(0.2)
        raise ComfyServerError(f"ComfyUI did not answer /system_stats within {self.startup_timeout:.0f} s:\n"
                               f"{self.log_tail()}")

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs _kill_process_group once
            self._finalizer = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._proc = None
        if self.base_dir is not None and not self.keep_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.base_dir else ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    # ---------------------------------------------------------------- packs, inputs

    def object_info(self, refresh: bool = False) -> dict[str, Any]:
        if self._object_info is None or refresh:
            self._object_info = self.get_json("/object_info", timeout=60)
        return self._object_info

    def pack_nodes(self, name: str) -> list[str]:
        """Node ids the pack registered (from /object_info python_module, which ComfyUI sets per pack folder)."""
        module = f"custom_nodes.{name}"
        return sorted(k for k, v in self.object_info().items() if v.get("python_module") == module)

    def require_pack(self, name: str) -> list[str]:
        """The pack's node ids; PackImportError with the import traceback from the log if it registered none."""
        found = self.pack_nodes(name)
        if found:
            return found
        module_path = str(self.base_dir / "custom_nodes" / name)
        why = find_pack_import_error(self.log_text(), module_path) or \
            f"(no import error for {module_path} in the log; last lines:)\n{self.log_tail(40)}"
        raise PackImportError(f"node pack {name!r} registered no nodes in ComfyUI:\n{why}")

    def add_input_file(self, src: str | os.PathLike, name: str | None = None) -> str:
        """Copy a file into the server's input/ folder (where LoadImage/LoadVideo look); returns its name."""
        name = name or Path(src).name
        dest = self.input_dir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return name

    # ---------------------------------------------------------------- HTTP

    def _request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"error": {"type": "http_error", "message": raw.decode(errors="replace")}}
            if e.code == 400 and path == "/prompt":
                raise PromptRejected(payload) from None
            raise ComfyServerError(f"{method} {path}: HTTP {e.code}: {raw[:2000]!r}") from None
        return json.loads(raw) if raw else None

    def get_json(self, path: str, timeout: float = 30) -> Any:
        return self._request("GET", path, timeout=timeout)

    def post_json(self, path: str, body: Any, timeout: float = 30) -> Any:
        return self._request("POST", path, body if body is not None else {}, timeout=timeout)

    def submit(self, api_prompt: Mapping[str, Any], client_id: str | None = None,
               extra_data: Mapping[str, Any] | None = None) -> str:
        """POST /prompt; returns the prompt id. Raises PromptRejected on a validation error (HTTP 400)."""
        body: dict[str, Any] = {"prompt": api_prompt, "client_id": client_id or uuid.uuid4().hex}
        if extra_data:
            body["extra_data"] = dict(extra_data)
        return self.post_json("/prompt", body)["prompt_id"]

    def interrupt(self, prompt_id: str | None = None) -> None:
        """POST /interrupt: stops the running prompt (only that one when prompt_id is given)."""
        self.post_json("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        return (self.get_json(f"/history/{prompt_id}") or {}).get(prompt_id)

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self.post_json("/free", {"unload_models": unload_models, "free_memory": free_memory})

    # ---------------------------------------------------------------- running prompts

    def run_workflow(self, ui_workflow: Mapping[str, Any], overrides: Mapping[Any, Mapping[str, Any]] | None = None,
                     timeout: float = 300.0, on_event: EventCallback | None = None) -> RunResult:
        """Convert a UI-format workflow against the live /object_info (an API-format one is taken as it is),
        apply `overrides` ({node_id: {input_name: value}}, on the API prompt), run it and wait for the outcome."""
        if "nodes" in ui_workflow:
            prompt = convert_ui_to_api(ui_workflow, self.object_info())
        else:
            prompt = json.loads(json.dumps(ui_workflow))
        for node_id, values in (overrides or {}).items():
            if str(node_id) not in prompt:
                raise KeyError(f"override for node {node_id}: not an executed node of this workflow "
                               f"(have {sorted(prompt)})")
            prompt[str(node_id)]["inputs"].update(values)
        # Saved like the frontend does, so output files carry the workflow as metadata.
        extra = {"extra_pnginfo": {"workflow": ui_workflow}} if "nodes" in ui_workflow else None
        return self.run_prompt(prompt, timeout=timeout, on_event=on_event, extra_data=extra)

    def run_prompt(self, api_prompt: Mapping[str, Any], timeout: float = 300.0,
                   extra_data: Mapping[str, Any] | None = None,
                   on_event: EventCallback | None = None) -> RunResult:
        """Submit an API-format prompt and wait on the websocket for success, error, interruption or `timeout`.
        on_event(type, data), if given, sees every JSON event of this prompt as it arrives (e.g. to interrupt)."""
        try:
            import websocket  # websocket-client
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ComfyServerError("the e2e harness needs `pip install websocket-client` "
                                   "(listed in requirements-test.txt)") from e
        client_id = uuid.uuid4().hex
        # Connect before submitting so that no event of this prompt can be missed.
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=10)
        try:
            t0 = time.monotonic()
            try:
                prompt_id = self.submit(api_prompt, client_id, extra_data)
            except PromptRejected as e:
                return RunResult("invalid", validation_error=e.body, api_prompt=dict(api_prompt),
                                 roundtrip_s=time.monotonic() - t0)
            result = RunResult("timeout", prompt_id=prompt_id, api_prompt=dict(api_prompt))
            self._follow(ws, result, t0 + timeout, on_event)
            result.roundtrip_s = time.monotonic() - t0
        finally:
            ws.close()
        if result.status == "timeout":
            # Leave the shared server idle for the next test: drop the prompt and stop it if it is running.
            self.post_json("/queue", {"delete": [prompt_id]})
            self.interrupt(prompt_id)
        self._collect_outputs(result)
        return result

    def _follow(self, ws: Any, result: RunResult, deadline: float, on_event: EventCallback | None) -> None:
        import websocket
        while time.monotonic() < deadline:
            ws.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                if not self.running:
                    raise ComfyServerError(f"ComfyUI died while running a prompt:\n{self.log_tail()}") from None
                continue
            if isinstance(frame, bytes):
                continue  # binary preview images
            msg = json.loads(frame)
            typ, data = msg.get("type"), msg.get("data") or {}
            if data.get("prompt_id") not in (None, result.prompt_id):
                continue
            if typ in ("status", "crystools.monitor"):
                continue
            result.messages.append((typ, data))
            if on_event is not None:
                on_event(typ, data)
            if typ in TERMINAL_EVENTS and data.get("prompt_id") == result.prompt_id:
                result.status = TERMINAL_EVENTS[typ]
                if typ == "execution_error":
                    result.execution_error = data
                return

    def _collect_outputs(self, result: RunResult) -> None:
        if result.prompt_id is None:
            return
        # The executor stores history just after sending the terminal event; poll briefly for it.
        deadline = time.monotonic() + 10
        entry = self.history(result.prompt_id)
        while entry is None and result.status != "timeout" and time.monotonic() < deadline:
            time.sleep(0.05)
            entry = self.history(result.prompt_id)
        result.outputs = (entry or {}).get("outputs") or {}
        folders = {"output": self.output_dir, "temp": self.base_dir / "temp", "input": self.input_dir}
        for ui in result.outputs.values():
            for items in ui.values():
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, Mapping) and "filename" in item:
                        path = folders.get(item.get("type", "output"), self.output_dir) / \
                            item.get("subfolder", "") / item["filename"]
                        if path.exists() and path not in result.files:
                            result.files.append(path)
