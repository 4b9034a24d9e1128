// The application graph's model, built from the handler catalog: every handler a node, every message path an
// edge (a handler sending a command or query → the handlers of that payload; an aggregate or service command
// handler returning an event → the consumers of that event), each handler's betweenness centrality (graphology),
// and the nested circles bundle ⊃ component ⊃ handler laid out by d3-hierarchy's pack, a handler's area growing
// with its centrality.
import { hierarchy, pack, type HierarchyCircularNode } from "d3-hierarchy";
import { DirectedGraph } from "graphology";
import betweennessCentrality from "graphology-metrics/centrality/betweenness";
import { bfsFromNode } from "graphology-traversal";
import type { HandlerItem } from "../../api/types";

/** The side of the square the circles are packed in (graph units; the view scales it to the screen). */
export const LAYOUT_SIZE = 1000;

/** Handlers answering what others send: commands and queries. */
const REQUEST_HANDLERS = new Set(["AggregateCommandHandler", "CommandHandler", "QueryHandler"]);
/** Handlers whose returned event the server stores and hands to its consumers. */
const EVENT_PRODUCERS = new Set(["AggregateCommandHandler", "CommandHandler"]);
/** Consumers of stored events (an aggregate's event-sourcing handlers rebuild its state: no message path). */
const EVENT_CONSUMERS = new Set(["EventHandler", "SagaEventHandler"]);

export type PathKind = "command" | "query" | "event";

export interface MessagePath {
  source: string;
  target: string;
  kind: PathKind;
  payload: string;
}

interface Datum {
  key: string;
  name: string;
  handler?: HandlerItem;
  weight?: number;
  children?: Datum[];
}

export type Circle = HierarchyCircularNode<Datum>;

export interface PlacedHandler {
  id: string;
  handler: HandlerItem;
  /** `payload — component · bundle`: how search and labels name it. */
  label: string;
  /** Normalised betweenness centrality, 0 to 1. */
  centrality: number;
  circle: Circle;
}

export interface GraphModel {
  graph: DirectedGraph;
  root: Circle;
  handlers: Map<string, PlacedHandler>;
  paths: MessagePath[];
  bundleCount: number;
  componentCount: number;
}

export function handlerLabel(h: HandlerItem): string {
  return `${h.payload} — ${h.component} · ${h.bundleId}`;
}

/** The message paths between the handlers (each pair once). */
export function messagePaths(handlers: HandlerItem[]): MessagePath[] {
  const byPayload = new Map<string, HandlerItem[]>();
  for (const h of handlers) {
    const list = byPayload.get(h.payload);
    if (list) list.push(h);
    else byPayload.set(h.payload, [h]);
  }
  const paths: MessagePath[] = [];
  const seen = new Set<string>();
  const add = (source: HandlerItem, target: HandlerItem, kind: PathKind, payload: string) => {
    const key = `${source.handlerId}\u0000${target.handlerId}`;
    if (seen.has(key) || source.handlerId === target.handlerId) return;
    seen.add(key);
    paths.push({ source: source.handlerId, target: target.handlerId, kind, payload });
  };
  for (const h of handlers) {
    for (const [sent, kind] of [
      ...h.invokedCommands.map((i) => [i.payload, "command"] as const),
      ...h.invokedQueries.map((i) => [i.payload, "query"] as const),
    ]) {
      for (const target of byPayload.get(sent) ?? []) {
        if (REQUEST_HANDLERS.has(target.handlerKind)) add(h, target, kind, sent);
      }
    }
    if (EVENT_PRODUCERS.has(h.handlerKind) && h.returnType) {
      for (const target of byPayload.get(h.returnType) ?? []) {
        if (EVENT_CONSUMERS.has(target.handlerKind)) add(h, target, "event", h.returnType);
      }
    }
  }
  return paths;
}

/** Build the graph, its centralities and its circles from the handler catalog. */
export function buildModel(handlers: HandlerItem[]): GraphModel {
  const graph = new DirectedGraph();
  for (const h of handlers) graph.mergeNode(h.handlerId);
  const paths = messagePaths(handlers);
  for (const p of paths) graph.mergeEdge(p.source, p.target);
  const centrality = graph.order > 2 ? betweennessCentrality(graph, { normalized: true }) : {};
  const top = Math.max(1e-12, ...Object.values(centrality));

  const bundles = new Map<string, Map<string, HandlerItem[]>>();
  for (const h of handlers) {
    let components = bundles.get(h.bundleId);
    if (!components) bundles.set(h.bundleId, (components = new Map<string, HandlerItem[]>()));
    const list = components.get(h.component);
    if (list) list.push(h);
    else components.set(h.component, [h]);
  }
  const data: Datum = {
    key: "",
    name: "system",
    children: [...bundles].map(([bundleId, components]) => ({
      key: bundleId,
      name: bundleId,
      children: [...components].map(([component, list]) => ({
        key: `${bundleId}\u0000${component}`,
        name: component,
        children: list.map((h) => ({
          key: h.handlerId,
          name: h.payload,
          handler: h,
          // Area grows with centrality: the busiest crossings of message paths stand out, none vanishes.
          weight: 1 + 12 * ((centrality[h.handlerId] ?? 0) / top),
        })),
      })),
    })),
  };
  const root = pack<Datum>()
    .size([LAYOUT_SIZE, LAYOUT_SIZE])
    .padding((node) => (node.depth === 0 ? 10 : node.depth === 1 ? 5 : 2))(
    hierarchy(data)
      .sum((d) => d.weight ?? 0)
      .sort((a, b) => (b.value ?? 0) - (a.value ?? 0)),
  );

  const placed = new Map<string, PlacedHandler>();
  for (const leaf of root.leaves()) {
    const h = leaf.data.handler;
    if (!h) continue;
    placed.set(h.handlerId, {
      id: h.handlerId,
      handler: h,
      label: handlerLabel(h),
      centrality: (centrality[h.handlerId] ?? 0) / top,
      circle: leaf,
    });
  }
  return {
    graph,
    root,
    handlers: placed,
    paths,
    bundleCount: bundles.size,
    componentCount: [...bundles.values()].reduce((n, c) => n + c.size, 0),
  };
}

/** The handlers reachable from `id` along message paths (downstream), or reaching it (upstream). */
export function reachable(graph: DirectedGraph, id: string, direction: "downstream" | "upstream"): Set<string> {
  const found = new Set<string>();
  if (!graph.hasNode(id)) return found;
  bfsFromNode(graph, id, (node) => { if (node !== id) found.add(node); }, {
    mode: direction === "downstream" ? "outbound" : "inbound",
  });
  return found;
}

const inside = (node: Circle, x: number, y: number) => (node.x - x) ** 2 + (node.y - y) ** 2 <= node.r ** 2;

/** The handler whose circle holds the point (graph units): down the nesting, one level at a time. */
export function handlerAt(root: Circle, x: number, y: number): string | null {
  let level: Circle | undefined = root;
  while (level?.children) {
    level = level.children.find((child) => inside(child, x, y));
  }
  return level?.data.handler?.handlerId ?? null;
}
