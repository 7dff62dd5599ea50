// Layout problems of the graph on the canvas, from the front end's own geometry (litegraph node bounds, widget
// rows, socket positions, and the on-screen rectangles of DOM widgets such as video players and previews):
//   * two nodes whose bounds (title included) intersect;
//   * a widget row, or a DOM widget's element, outside its own node (a node that grew less than its content);
//   * a widget, DOM element or socket inside another node's bounds (covered).
// Returns { problems: [text], nodes: [{ id, type, title, box }] } with boxes in graph coordinates.
(() => {
  const TITLE = LiteGraph.NODE_TITLE_HEIGHT;
  const EPS = 1; // sub-pixel rounding of sizes
  const canvasRect = app.canvas.canvas.getBoundingClientRect();
  const ds = app.canvas.ds;
  const toGraph = (r) => [(r.left - canvasRect.left) / ds.scale - ds.offset[0],
    (r.top - canvasRect.top) / ds.scale - ds.offset[1], r.width / ds.scale, r.height / ds.scale];
  const box = (n) => (n.getBounding ? Array.from(n.getBounding())
    : [n.pos[0], n.pos[1] - TITLE, n.size[0], n.size[1] + TITLE]);
  const intersects = (a, b) => a[0] + EPS < b[0] + b[2] && b[0] + EPS < a[0] + a[2]
    && a[1] + EPS < b[1] + b[3] && b[1] + EPS < a[1] + a[3];
  const within = (a, b) => a[0] >= b[0] - EPS && a[1] >= b[1] - EPS
    && a[0] + a[2] <= b[0] + b[2] + EPS && a[1] + a[3] <= b[1] + b[3] + EPS;
  const pointIn = (p, b) => p[0] > b[0] && p[0] < b[0] + b[2] && p[1] > b[1] && p[1] < b[1] + b[3];
  const name = (n) => `${n.id} ${n.type}` + (n.title && n.title !== n.type ? ` "${n.title}"` : "");

  const nodes = app.graph.nodes.filter((n) => !n.flags?.collapsed);
  const boxes = new Map(nodes.map((n) => [n, box(n)]));
  const problems = [];
  const coveredBy = (n, rect, what) => {
    for (const m of nodes) {
      if (m !== n && intersects(rect, boxes.get(m))) problems.push(`${what} of node ${name(n)} is covered by node ${name(m)}`);
    }
  };

  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) {
      if (intersects(boxes.get(nodes[i]), boxes.get(nodes[j]))) {
        problems.push(`nodes ${name(nodes[i])} and ${name(nodes[j])} overlap`);
      }
    }
  }
  for (const n of nodes) {
    const own = boxes.get(n);
    for (const w of n.widgets ?? []) {
      if (w.hidden || String(w.type).startsWith("converted") || w.options?.hidden) continue;
      const y = w.y ?? w.last_y;
      const h = w.computedHeight ?? (w.computeSize ? w.computeSize(n.size[0])[1] : LiteGraph.NODE_WIDGET_HEIGHT);
      if (y === undefined || !(h > 0)) continue;
      const row = [n.pos[0], n.pos[1] + y, n.size[0], h];
      if (!within(row, own)) problems.push(`widget '${w.name}' of node ${name(n)} extends outside the node`);
      coveredBy(n, row, `widget '${w.name}'`);
      const el = w.element;
      if (el && el.isConnected && getComputedStyle(el).display !== "none") {
        const r = el.getBoundingClientRect();
        if (r.width > 0 && r.height > 0) {
          const rect = toGraph(r);
          if (!within(rect, own)) problems.push(`element of widget '${w.name}' of node ${name(n)} is drawn outside the node`);
          coveredBy(n, rect, `element of widget '${w.name}'`);
        }
      }
    }
    for (const [isInput, slots] of [[true, n.inputs ?? []], [false, n.outputs ?? []]]) {
      slots.forEach((slot, i) => {
        const p = n.getConnectionPos(isInput, i);
        for (const m of nodes) {
          if (m !== n && pointIn(p, boxes.get(m))) {
            problems.push(`${isInput ? "input" : "output"} '${slot.name}' of node ${name(n)} is covered by node ${name(m)}`);
          }
        }
      });
    }
  }
  return { problems, nodes: nodes.map((n) => ({ id: n.id, type: n.type, title: n.title, box: boxes.get(n) })) };
})()
