"""The pack's web extension in ComfyUI's own front end, driven in headless Chromium over the DevTools protocol.

For each bundled workflow: load it with app.loadGraphData, check that no node of the pack is reported missing and
that each one is a real, sized node on the canvas, then run only the DWPose node (and what feeds it) on the tiny
models and wait for the animated skeleton preview to play. Also checks the socket colours and the help page.

Skipped unless COMFYUI_DIR is set (see tests/e2e/conftest.py) and a Chromium is found (CHROMIUM, or
/usr/bin/chromium; Debian: `apt-get install chromium`). Screenshots go to STABLEANIMATOR_E2E_ARTIFACTS (or to
pytest's tmp_path); their paths are printed. Uses websocket-client (a test dependency) rather than Playwright.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PACK_NAME, REPO_ROOT, pack_server_running, skip_or_fail
from tests.e2e.small_settings import small_overrides

WORKFLOWS = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
DWPOSE = "StableAnimatorDWPose"
SOCKET_COLOURS = {"STABLEANIMATOR_MODEL", "STABLEANIMATOR_CLIP", "STABLEANIMATOR_FACE", "STABLEANIMATOR_COND",
                  "STABLEANIMATOR_HJB"}


def find_chromium() -> str | None:
    """$CHROMIUM when set (and only it), else the Debian/Ubuntu locations or the PATH."""
    if os.environ.get("CHROMIUM"):
        candidates = [os.environ["CHROMIUM"]]
    else:
        candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium"),
                      shutil.which("chromium-browser")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


class BrowserError(AssertionError):
    pass


class Chromium:
    """A headless Chromium with one page, spoken to over the DevTools protocol (a websocket, JSON messages)."""

    def __init__(self, executable: str, width: int = 1600, height: int = 1000):
        self.profile = Path(tempfile.mkdtemp(prefix="sa_chromium_"))
        self.log = open(self.profile / "chromium.log", "wb")  # noqa: SIM115 (lives as long as the browser)
        # Port 0: Chromium picks a free loopback port and writes it to DevToolsActivePort (no race with others).
        # The resolver rule makes every host name but the loopback ComfyUI unreachable, so the page (which would
        # ask comfy.org for release notes) never leaves the machine.
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--mute-audio", f"--user-data-dir={self.profile}",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.ws = None
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout: float = 60) -> None:
        import websocket

        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (active.is_file() and active.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"Chromium did not open its DevTools port:\n{self.log_tail()}")
            time.sleep(0.1)
        port = int(active.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        # suppress_origin: Chromium refuses DevTools websockets that carry an Origin it was not told to allow
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def log_tail(self, n: int = 30) -> str:
        self.log.flush()
        return "\n".join((self.profile / "chromium.log").read_text(errors="replace").splitlines()[-n:])

    def send(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def js(self, expression: str, timeout: float = 120) -> Any:
        """Evaluate in the page (awaiting a promise) and return the JSON value; a JS exception fails the test."""
        result = self.send("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JS error: {text}\nin: {expression[:500]}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float, what: str, interval: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(interval)
        raise BrowserError(f"timed out after {timeout:.0f} s waiting for {what}\npage console:\n{self.console()}")

    def console(self, n: int = 30) -> str:
        lines = []
        for ev in self.events:
            p = ev.get("params", {})
            if ev["method"] == "Runtime.consoleAPICalled":
                lines.append(f"console.{p['type']}: " + " ".join(str(a.get("value", a.get("description", "")))
                                                                 for a in p.get("args", [])))
            elif ev["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                lines.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif ev["method"] == "Log.entryAdded":
                lines.append(f"log.{p['entry']['level']}: {p['entry']['text']} {p['entry'].get('url', '')}")
        return "\n".join(lines[-n:])

    def screenshot(self, path: Path, clip: dict[str, float] | None = None) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", **params)["data"]))
        return path

    def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):  # the browser may already be gone
                self.ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def chromium_path(comfy_env, request) -> str:
    path = find_chromium()
    if not path:
        where = f"CHROMIUM={os.environ['CHROMIUM']} is not executable" if os.environ.get("CHROMIUM") else \
            "no Chromium found (set CHROMIUM=/path/to/chromium, or `apt-get install chromium` for /usr/bin/chromium)"
        reason = f"{where}: the browser test needs a headless Chromium"
        # -q hides skip reasons; COMFYUI_DIR was set, so this one is worth saying out of pytest's capture
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if capture is not None and reporter is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"\nbrowser test skipped: {reason}")
        skip_or_fail(reason)
    return path


def _frontends() -> list[tuple[str, str | None]]:
    """("bundled", None) (the comfyui-frontend-package ComfyUI's requirements pin), then each NAME=STATIC_FOLDER
    of STABLEANIMATOR_E2E_FRONTENDS (separated by os.pathsep), served with --front-end-root."""
    extra = [item.split("=", 1) for item in os.environ.get("STABLEANIMATOR_E2E_FRONTENDS", "").split(os.pathsep)
             if "=" in item]
    return [("bundled", None)] + [(name, root) for name, root in extra]


FRONTENDS = dict(_frontends())


@pytest.fixture(scope="module", params=list(FRONTENDS))
def frontend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(frontend, request, comfy_env, tiny_models_dir):
    root = FRONTENDS[frontend]
    if root is None:
        yield request.getfixturevalue("pack_server")
        return
    if not (Path(root) / "index.html").is_file():
        pytest.fail(f"front end {frontend}: no index.html in {root}", pytrace=False)
    with pack_server_running(comfy_env, f"comfyui_frontend_{frontend}", tiny_models_dir,
                             extra_args=["--disable-api-nodes", "--front-end-root", root]) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(chromium_path, server):
    browser = Chromium(chromium_path)
    try:
        t0 = time.monotonic()
        browser.send("Page.navigate", url=server.url + "/")
        browser.wait_for(f"""!!(window.app && app.graph && app.canvas && window.LiteGraph
                              && LiteGraph.registered_node_types[{json.dumps(DWPOSE)}]
                              && app.extensions.some(e => e.name === 'StableAnimator.frontend'))""",
                         timeout=180, what="ComfyUI's front end with the StableAnimator extension")
        browser.version = browser.js("window.__COMFYUI_FRONTEND_VERSION__ ?? null")
        print(f"\nfront end {browser.version} ready in {time.monotonic() - t0:.1f} s")
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, frontend) -> Path:
    target = os.environ.get("STABLEANIMATOR_E2E_ARTIFACTS")
    folder = Path(target) / "browser" / frontend if target else tmp_path_factory.mktemp(f"browser_{frontend}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ------------------------------------------------------------------------------------------------ page helpers

JS_NODES = """(() => app.graph.nodes.map(n => ({
    id: n.id, type: n.type, comfyClass: n.constructor?.comfyClass ?? null, title: n.title,
    pos: Array.from(n.pos ?? []), size: Array.from(n.size ?? []), has_errors: !!n.has_errors,
    registered: n.type in LiteGraph.registered_node_types})))()"""

JS_MISSING_DIALOG = """(() => {
    const list = document.querySelector('.global-dialog .comfy-missing-nodes');
    return list ? Array.from(list.querySelectorAll('.node-type'), e => e.textContent.trim()) : null; })()"""

JS_CLOSE_DIALOGS = """(() => { document.querySelectorAll('.global-dialog .p-dialog-close-button, '
    + '.global-dialog .p-dialog-header-close').forEach(b => b.click()); return true; })()"""

# Fits the whole graph into the view and lets litegraph draw it, then lists the nodes it drew.
JS_VISIBLE_AFTER_FIT = """(() => {
    const xs = [], ys = [];
    for (const n of app.graph.nodes) { xs.push(n.pos[0], n.pos[0] + n.size[0]); ys.push(n.pos[1] - 30, n.pos[1] + n.size[1]); }
    const x = Math.min(...xs), y = Math.min(...ys);
    app.canvas.ds.fitToBounds([x, y, Math.max(...xs) - x, Math.max(...ys) - y], { zoom: 0.95 });
    app.canvas.setDirty(true, true); app.canvas.draw(true, true);
    return app.canvas.visible_nodes.map(n => n.id); })()"""

# Queue only the DWPose node and its ancestors, through the page's own api (so this page gets the `executed`
# message and the extension's onExecuted runs, exactly as after "Queue" in the UI).
JS_RUN_DWPOSE = """(async (target, inputs) => {
    window.__saEvents = [];
    if (!window.__saListening) {
        window.__saListening = true;
        for (const type of ['executed', 'execution_error', 'execution_success'])
            window.comfyAPI.api.api.addEventListener(type, e => window.__saEvents.push({ type, detail: e.detail }));
    }
    const { output, workflow } = await app.graphToPrompt();
    const keep = new Set(), stack = [String(target)];
    while (stack.length) {
        const id = stack.pop();
        if (keep.has(id) || !output[id]) continue;
        keep.add(id);
        for (const v of Object.values(output[id].inputs))
            if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string') stack.push(v[0]);
    }
    const prompt = Object.fromEntries([...keep].map(id => [id, output[id]]));
    Object.assign(prompt[String(target)].inputs, inputs || {});
    // DWPose is not an output node; a core Preview Image on its skeletons makes it runnable alone, as in the UI
    prompt['99999'] = { class_type: 'PreviewImage', inputs: { images: [String(target), 0] } };
    const res = await window.comfyAPI.api.api.queuePrompt(0, { output: prompt, workflow });
    return { prompt_id: res.prompt_id, nodes: [...keep].sort() }; })"""

JS_PREVIEW_STATE = """(() => {
    const root = document.querySelector('.stableanimator-pose-preview');
    const canvas = root?.querySelector('canvas');
    if (!root || !canvas || !root.dataset.drawn) return null;
    const r = root.getBoundingClientRect();
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0; for (let i = 0; i < px.length; i += 4) sum += px[i] + px[i + 1] + px[i + 2];
    return { frame: root.dataset.frame, frames: Number(root.dataset.frames), drawn: Number(root.dataset.drawn),
             run: Number(root.dataset.run), count: document.querySelectorAll('.stableanimator-pose-preview').length,
             counter: root.querySelector('.stableanimator-pose-counter')?.textContent,
             overlay: root.querySelector('input.stableanimator-pose-overlay')?.checked,
             url: canvas.toDataURL(), mean: sum / (px.length / 4 * 3), width: canvas.width, height: canvas.height,
             rect: { x: r.x, y: r.y, width: r.width, height: r.height },
             events: (window.__saEvents || []).map(e => e.type) }; })()"""


def _events(page: Chromium, prompt_id: str) -> list[dict[str, Any]]:
    return page.js(f"(window.__saEvents || []).filter(e => e.detail?.prompt_id === {json.dumps(prompt_id)})")


def _wait_for_animation(page: Chromium, prompt_id: str, timeout: float, after_run: int = 0) -> dict[str, Any]:
    """Wait for the preview of a run newer than `after_run` to show two different frames."""
    deadline = time.monotonic() + timeout
    first = None
    while time.monotonic() < deadline:
        errors = [e for e in _events(page, prompt_id) if e["type"] == "execution_error"]
        if errors:
            d = errors[0]["detail"]
            raise BrowserError(f"node {d.get('node_id')} ({d.get('node_type')}) raised "
                               f"{d.get('exception_type')}: {d.get('exception_message')}")
        state = page.js(JS_PREVIEW_STATE)
        if state and state["run"] > after_run and state["drawn"] >= 1:
            if first is None:
                first = state
            elif state["url"] != first["url"]:
                return {"first": first, "later": state}
        time.sleep(0.3)
    raise BrowserError(f"the pose preview did not show two different frames within {timeout:.0f} s "
                       f"(last state: {first and {k: v for k, v in first.items() if k != 'url'}}; events {json.dumps(_events(page, prompt_id))[:3000]})\n{page.console()}")


# ------------------------------------------------------------------------------------------------ the test

def test_bundled_workflows_in_the_real_front_end(page, server, artifacts):
    t_start = time.monotonic()
    object_info = server.object_info()
    ours = set(server.pack_nodes(PACK_NAME))
    shots: list[Path] = []

    # Socket colours: pinned in setup(), and still there after the palette was applied over them.
    colours = page.js(f"""(() => {{ const t = {json.dumps(sorted(SOCKET_COLOURS))};
        return {{ slots: t.map(k => app.canvas.default_connection_color_byType[k] || ''),
                  links: t.map(k => LGraphCanvas.link_type_colors[k] || ''),
                  core: app.canvas.default_connection_color_byType.IMAGE || '' }}; }})()""")
    assert all(c.startswith("#") for c in colours["slots"] + colours["links"]), colours
    assert len(set(colours["slots"])) == len(SOCKET_COLOURS) and colours["core"], colours
    # Switching palettes re-applies node_slot colours over every known type; ours must survive it.
    after_switch = page.js(f"""(async () => {{ const s = app.extensionManager.setting;
        const was = s.get('Comfy.ColorPalette');
        await s.set('Comfy.ColorPalette', was === 'light' ? 'dark' : 'light');
        await new Promise(r => setTimeout(r, 300));
        const seen = {json.dumps(sorted(SOCKET_COLOURS))}.map(k => app.canvas.default_connection_color_byType[k] || '');
        await s.set('Comfy.ColorPalette', was); await new Promise(r => setTimeout(r, 300));
        return seen; }})()""")
    assert after_switch == colours["slots"], (after_switch, colours)

    # DWPose is not an output node (an invalid prompt must not half-run), so ComfyUI re-sends its preview when it
    # runs, not from its cache: every run here gets DWPose inputs no earlier run used (same skeletons on a CPU)
    variants = iter([{"provider": p, "face_masks_from": f, "align": a} for a in ("global", "limbs")
                     for f in ("skeleton", "insightface", "official") for p in ("cpu", "cuda", "auto")])
    for path in WORKFLOWS:
        workflow = json.loads(path.read_text())
        t0 = time.monotonic()
        page.js(f"app.loadGraphData({json.dumps(workflow)}).then(() => new Promise(r => setTimeout(r, 500)))")
        # What ComfyUI cannot run (another pack's node) may be reported; never a node of this pack or of the core.
        expected_missing = sorted({n["type"] for n in workflow["nodes"] if n["type"] not in object_info
                                   and n["type"] not in ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")})
        listed = page.js(JS_MISSING_DIALOG)
        if expected_missing:
            if listed is None:  # the dialog opens after the graph has loaded, later on newer front ends
                with contextlib.suppress(BrowserError):
                    listed = page.wait_for(JS_MISSING_DIALOG, 10, "the missing-nodes dialog")
            if listed is None:
                # front ends that report a missing node once per session (or only on the node) show no dialog
                # the second time: then the graph itself must hold exactly those nodes as unregistered types
                unregistered = sorted({n["type"] for n in page.js(JS_NODES) if not n["registered"]}
                                      - {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
                assert unregistered == expected_missing, (path.name, unregistered)
            else:
                assert sorted(set(listed)) == expected_missing, (path.name, listed)
                page.js(JS_CLOSE_DIALOGS)
                page.wait_for(f"{JS_MISSING_DIALOG} === null", 10, "the missing-nodes dialog to close")
        else:
            assert listed is None, f"{path.name}: missing-nodes dialog lists {listed}"

        # ids as strings: front ends from 1.5x keep node ids as strings, 1.27 as numbers
        nodes = {str(n["id"]): n for n in page.js(JS_NODES)}
        visible = {str(i) for i in page.js(JS_VISIBLE_AFTER_FIT)}
        pack_nodes = [n for n in workflow["nodes"] if n["type"] in ours]
        assert pack_nodes, path.name
        for wn in pack_nodes:
            live = nodes.get(str(wn["id"]))
            assert live, f"{path.name}: node {wn['id']} ({wn['type']}) not in app.graph"
            assert live["type"] == wn["type"] == live["comfyClass"] and live["registered"], live
            assert not live["has_errors"], f"{path.name}: node {wn['id']} ({wn['type']}) is in the missing state"
            assert len(live["size"]) == 2 and min(live["size"]) > 0 and len(live["pos"]) == 2, live
            assert str(wn["id"]) in visible, f"{path.name}: node {wn['id']} ({wn['type']}) was not drawn"

        # Run just the DWPose node; the preview appears on it and animates.
        assert page.js("document.querySelectorAll('.stableanimator-pose-preview, .stableanimator-node-text').length") \
            == 0, "a preview or text panel of the previous graph survived loading a new one"
        dwpose = next(n["id"] for n in workflow["nodes"] if n["type"] == DWPOSE)
        # A message without the preview key (or an empty one) is ignored quietly.
        assert page.js(f"""(() => {{ const n = app.graph.getNodeById({dwpose});
            n.onExecuted({{}}); n.onExecuted({{ stableanimator_pose_preview: [] }});
            n.onExecuted({{ stableanimator_pose_preview: [{{ frames: [] }}] }});
            return document.querySelectorAll('.stableanimator-pose-preview').length; }})()""") == 0
        queued = page.js(f"({JS_RUN_DWPOSE})({dwpose}, {json.dumps(next(variants))})")
        assert str(dwpose) in queued["nodes"] and len(queued["nodes"]) < len(nodes), queued
        anim = _wait_for_animation(page, queued["prompt_id"], timeout=300)
        state = anim["later"]
        assert state["frames"] >= 2 and state["overlay"] is True and state["counter"].startswith("frame "), state
        assert state["rect"]["width"] > 50 and state["rect"]["height"] > 50 and state["count"] == 1, state
        # The first-pose check is shown on the node as text (the extension's text panel).
        panel = page.wait_for("""(() => { const p = [...document.querySelectorAll('.stableanimator-node-text')];
            return p.length && p.every(e => e.clientHeight > 0) ? p.map(e => ({ text: e.textContent, level: e.dataset.level,
                                             height: e.getBoundingClientRect().height,
                                             clipped: e.scrollHeight > e.clientHeight + 1 })) : null; })()""",
                              30, "the first-pose check on the DWPose node")
        assert len(panel) == 1 and "first-pose check:" in panel[0]["text"], panel
        assert panel[0]["level"] in ("info", "warning") and panel[0]["height"] > 10 and not panel[0]["clipped"], panel
        # The preview is not part of the workflow: widgets_values and the API prompt are as before it appeared.
        saved = page.js(f"""(async () => {{ const n = app.graph.getNodeById({dwpose});
            const {{ output }} = await app.graphToPrompt();
            return {{ values: n.serialize().widgets_values, inputs: Object.keys(output['{dwpose}'].inputs) }}; }})()""")
        original = next(n for n in workflow["nodes"] if n["id"] == dwpose)
        assert saved["values"] == original["widgets_values"], saved
        assert not any("preview" in k for k in saved["inputs"]), saved
        if path == WORKFLOWS[0]:
            # Running it again replaces the preview in place (same element, new frames), it does not add one.
            again = page.js(f"({JS_RUN_DWPOSE})({dwpose}, {json.dumps(next(variants))})")
            rerun = _wait_for_animation(page, again["prompt_id"], timeout=300, after_run=state["run"])["later"]
            assert rerun["count"] == 1 and rerun["run"] == state["run"] + 1, rerun

        # Screenshot at 100 % zoom on the DWPose node, plus crops of the preview itself, with and without overlay.
        page.js(f"""(() => {{ const n = app.graph.getNodeById({dwpose}); app.canvas.ds.scale = 1;
                  app.canvas.centerOnNode(n); app.canvas.draw(true, true); return true; }})()""")
        time.sleep(1.0)  # DOM widgets follow the canvas on its next frames
        state = page.js(JS_PREVIEW_STATE)
        full = page.screenshot(artifacts / f"{path.stem}.png")
        r = state["rect"]
        clip = {"x": r["x"], "y": r["y"], "width": r["width"], "height": r["height"]}
        crop = page.screenshot(artifacts / f"{path.stem}_preview.png", clip=clip)
        shots += [full, crop]

        # The toggle: skeleton-only is the black-background skeleton, darker than the overlay on the reference.
        page.js("document.querySelector('.stableanimator-pose-preview input.stableanimator-pose-overlay').click()")
        skeleton_only = page.js(JS_PREVIEW_STATE)
        shots.append(page.screenshot(artifacts / f"{path.stem}_preview_skeleton_only.png", clip=clip))
        page.js("document.querySelector('.stableanimator-pose-preview input.stableanimator-pose-overlay').click()")
        assert skeleton_only["overlay"] is False and skeleton_only["mean"] < state["mean"] - 5, \
            (skeleton_only["mean"], state["mean"])
        print(f"{path.name}: {len(pack_nodes)} pack nodes, DWPose run + preview in {time.monotonic() - t0:.1f} s; "
              f"screenshots {full} {crop}")

    # The help page of a node: select it, press the selection toolbox's info button, read the rendered markdown.
    page.js(f"""(() => {{ const n = app.graph.nodes.find(n => n.type === {json.dumps(DWPOSE)});
              app.canvas.deselectAll?.(); app.canvas.selectNode(n); app.canvas.setDirty(true, true); return true; }})()""")
    page.wait_for("!!document.querySelector('[data-testid=\"info-button\"]')", 20, "the selection toolbox")
    page.js("document.querySelector('[data-testid=\"info-button\"]').click(), true")
    help_js = ("document.querySelector('.markdown-content h2') ? document.querySelector('.markdown-content').innerText"
               " : ''")
    added = {e.split("=", 1)[0] for e in os.environ.get("STABLEANIMATOR_E2E_FRONTENDS", "").split(",") if e}
    if page.version not in added:  # the front end this ComfyUI ships
        help_text = page.wait_for(help_js, 30, "the node help page")
    else:
        # newer front ends on this older backend: the info button does not open the help page (README,
        # Compatibility); the page is checked on the front end this ComfyUI ships
        try:
            help_text = page.wait_for(help_js, 30, "the node help page")
        except BrowserError:
            help_text = None
            print(f"front end {page.version}: the info button opened no node help page on this backend")
    if help_text is not None:
        assert "Inputs" in help_text and "Outputs" in help_text and "missing_person" in help_text, help_text[:500]
        assert "Misaligned skeletons are the main cause of identity loss" in help_text
        shots.append(page.screenshot(artifacts / "help_page.png"))
        print(f"help page rendered; screenshot {shots[-1]}")

    # Removing the node ends the animation (its timer) and takes the preview out of the page.
    stopped = page.js("""(async () => {
        const root = document.querySelector('.stableanimator-pose-preview');
        app.graph.remove(app.graph.nodes.find(n => n.type === 'StableAnimatorDWPose'));
        const before = root.dataset.drawn;
        await new Promise(r => setTimeout(r, 600));
        return { before, after: root.dataset.drawn, attached: root.isConnected }; })()""")
    assert stopped["before"] == stopped["after"] and not stopped["attached"], stopped

    errors = [ev for ev in page.events if ev["method"] == "Runtime.exceptionThrown"
              and "stableanimator" in json.dumps(ev).lower()]
    assert not errors, page.console()
    print(f"browser test: {len(WORKFLOWS)} workflows in {time.monotonic() - t_start:.1f} s")


# ------------------------------------------------------------------------------------------------ layout

JS_LAYOUT = (Path(__file__).with_name("layout_check.js")).read_text()

# Sets widget values (small sizes) and queues every node that can run here: its type is known to the server and so
# is every node upstream of it (another pack's node that is not installed drops what depends on it).
JS_RUN_RUNNABLE = """(async ([values, available]) => {
    window.__saEvents = [];
    if (!window.__saListening) {
        window.__saListening = true;
        for (const type of ['executed', 'execution_error', 'execution_success'])
            window.comfyAPI.api.api.addEventListener(type, e => window.__saEvents.push({ type, detail: e.detail }));
    }
    for (const [id, inputs] of Object.entries(values)) {
        const node = app.graph.getNodeById(Number(id));
        for (const [name, value] of Object.entries(inputs)) {
            const w = node?.widgets?.find(w => w.name === name);
            if (!w) throw new Error(`node ${id} has no widget ${name}`);
            w.value = value;
        }
    }
    const { output, workflow } = await app.graphToPrompt();
    const ok = new Map(), known = new Set(available);
    const runnable = (id) => {
        if (ok.has(id)) return ok.get(id);
        ok.set(id, false);  // cycles cannot be runnable
        const node = output[id];
        const result = !!node && known.has(node.class_type) && Object.values(node.inputs).every(v =>
            !(Array.isArray(v) && v.length === 2 && typeof v[0] === 'string') || runnable(v[0]));
        ok.set(id, result);
        return result;
    };
    const prompt = Object.fromEntries(Object.keys(output).filter(runnable).map(id => [id, output[id]]));
    const res = await window.comfyAPI.api.api.queuePrompt(0, { output: prompt, workflow });
    return { prompt_id: res.prompt_id, nodes: Object.keys(prompt).sort() }; })"""

# What can still change the layout: node boxes, DOM widget rectangles, and videos still loading.
JS_LAYOUT_SIGNATURE = """(() => JSON.stringify([
    app.graph.nodes.map(n => [n.id, Array.from(n.pos), Array.from(n.size)]),
    Array.from(document.querySelectorAll('video')).map(v => v.readyState >= 1 || !!v.error),
    Array.from(document.querySelectorAll('.dom-widget, .comfy-dom-widget, .stableanimator-pose-preview'))
        .map(e => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height].map(Math.round); })]))()"""


def _settle(page: Chromium, timeout: float = 20.0) -> None:
    """Redraw until the layout stops changing (videos loaded, previews grown) for a second."""
    deadline, last, stable = time.monotonic() + timeout, None, 0
    while time.monotonic() < deadline and stable < 3:
        page.js(JS_VISIBLE_AFTER_FIT)
        time.sleep(0.4)
        now = page.js(JS_LAYOUT_SIGNATURE)
        stable = stable + 1 if now == last else 0
        last = now
    assert stable >= 3 or '"false"' not in (last or ""), f"the layout kept changing for {timeout:.0f} s"


def _check_layout(page: Chromium, shot: Path) -> dict[str, Any]:
    _settle(page)
    report = page.js(JS_LAYOUT)
    page.screenshot(shot)
    print(f"screenshot {shot}")
    return report


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_layout_has_no_overlaps_at_load_and_after_a_run(page, server, artifacts, path):
    """From the graph's own geometry: no two nodes overlap and no socket or widget (DOM widgets such as the video
    players and the pose preview included) is covered, right after loading and again after running the workflow
    (what can run here: the tiny models at small sizes), when the outputs have grown their nodes."""
    workflow = json.loads(path.read_text())
    page.js(f"app.loadGraphData({json.dumps(workflow)}).then(() => new Promise(r => setTimeout(r, 500)))")
    if page.js(JS_MISSING_DIALOG) is not None:
        page.js(JS_CLOSE_DIALOGS)
    loaded = _check_layout(page, artifacts / f"{path.stem}_layout_loaded.png")
    assert not loaded["problems"], f"{path.name} at load ({page.version}):\n" + "\n".join(loaded["problems"])

    values = {str(k): v for k, v in small_overrides(workflow).items()}
    queued = page.js(f"({JS_RUN_RUNNABLE})({json.dumps([values, sorted(server.object_info())])})")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        kinds = {e["type"]: e for e in _events(page, queued["prompt_id"])}
        if "execution_error" in kinds:
            d = kinds["execution_error"]["detail"]
            raise BrowserError(f"{path.name}: node {d.get('node_id')} ({d.get('node_type')}) raised "
                               f"{d.get('exception_type')}: {d.get('exception_message')}")
        if "execution_success" in kinds:
            break
        time.sleep(0.5)
    else:
        raise BrowserError(f"{path.name}: the run did not finish within 600 s")
    executed = {str(e["detail"].get("node")) for e in _events(page, queued["prompt_id"]) if e["type"] == "executed"}
    assert executed, f"{path.name}: no node reported an output"
    after = _check_layout(page, artifacts / f"{path.stem}_layout_after_run.png")
    assert not after["problems"], f"{path.name} after a run ({page.version}):\n" + "\n".join(after["problems"])
