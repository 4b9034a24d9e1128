// What the flow drawing shows of the model, as pure functions of it: each node's title and status, the edges'
// labels, and the layered layout (dagre) that places them. Kept apart from React so the page only wires them.
import dagre, { type EdgeLabel, type GraphLabel, type NodeLabel } from "@dagrejs/dagre";
import type { FlowEdge, FlowModel, Source, Station } from "./api";

/** The traffic-light status of a station or flow: how much of what it is offered it completes. */
export type Status = "success" | "warning" | "danger";

/** success ≥ 0.99, warning < 0.99, danger < 0.8 of throughput ÷ workload (reference §5); nothing offered is fine. */
export function status(throughput: number, workload: number): Status {
  if (workload <= 0) return "success";
  const ratio = throughput / workload;
  if (ratio < 0.8) return "danger";
  if (ratio < 0.99) return "warning";
  return "success";
}

export const STATUS_COLOR: Record<Status, string> = { success: "green", warning: "yellow", danger: "red" };

const significant = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 3 });
const fixed = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

/** A rate or a time, readable at a glance: three significant digits below 1000, whole numbers above. */
export function figure(value: number | null | undefined): string {
  if (value === null || value === undefined) return "—";
  if (!Number.isFinite(value)) return "∞";
  return Math.abs(value) >= 1000 ? fixed.format(value) : significant.format(value);
}

/** The short name of a handler id `bundle:component:payload` (its component and payload). */
export function handlerLabel(handlerId: string): string {
  const parts = handlerId.split(":");
  if (parts.length < 3) return handlerId;
  return `${parts[1] ?? ""} · ${parts.slice(2).join(":")}`;
}

/** What a station is, in words: the line above its title. */
export function stationKindLabel(station: Station): string {
  switch (station.kind) {
    case "Gateway":
      return station.payloadKind?.endsWith("Query") || station.payloadKind === "Query" ? "Query gateway" : "Gateway";
    case "GatewayResponse":
      return "Response";
    case "EventStore":
      return "Event store";
    case "Consumer":
      return `${station.componentKind ?? "Consumer"} (async)`;
    case "Handler":
      return station.componentKind ?? "Handler";
  }
}

/** The station's title: the component for a handler, the payload for the server's own stations. */
export function stationTitle(station: Station): string {
  if (station.component) return station.component;
  return station.payload || "Void";
}

/** The line under the title: the payload handled, or the bundle. */
export function stationSubtitle(station: Station): string | null {
  if (station.component) return station.payload;
  return null;
}

/** "Customers: 0.4/1" for a one-consumer station (its share of its one server), "Customers: 0.4" otherwise. */
export function customersLabel(station: Station): string {
  const servers = station.oneActiveConsumer && station.servers !== null ? `/${figure(station.servers)}` : "";
  return `Customers: ${figure(station.customers)}${servers}`;
}

/** The label of an edge: the rate it carries and, for an invocation, how many the sender sends per handling. */
export function edgeLabel(edge: FlowEdge, evaluation: boolean): string {
  const probability = edge.sender ? `p ${figure(edge.probability)}` : "";
  if (!evaluation) return probability;
  const rate = `λ ${figure(edge.ratePerS)} r/s`;
  return probability ? `${rate} · ${probability}` : rate;
}

/** The station ids that are the main bottleneck of some flow. */
export function mainBottlenecks(model: FlowModel): Set<number> {
  return new Set(model.flows.map((f) => f.mainBottleneck).filter((id): id is number => id !== null));
}

export function sourceTitle(source: Source): string {
  return source.component ?? source.payload;
}

export const NODE_WIDTH = 230;
export const NODE_HEIGHT = { plain: 78, evaluation: 122 } as const;

/** Where each node (source or station, by id) goes: dagre's layered layout, left to right along the flow. */
export function layout(model: FlowModel, evaluation: boolean): Map<number, { x: number; y: number }> {
  const height = evaluation ? NODE_HEIGHT.evaluation : NODE_HEIGHT.plain;
  const graph = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>();
  graph.setGraph({ rankdir: "LR", nodesep: 28, ranksep: evaluation ? 110 : 80, marginx: 16, marginy: 16 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const source of model.sources) graph.setNode(String(source.id), { width: NODE_WIDTH, height });
  for (const station of model.stations) graph.setNode(String(station.id), { width: NODE_WIDTH, height });
  for (const edge of model.edges) graph.setEdge(String(edge.origin), String(edge.target));
  dagre.layout(graph);
  const positions = new Map<number, { x: number; y: number }>();
  for (const id of graph.nodes()) {
    const { x = 0, y = 0 } = graph.node(id);
    // dagre gives centres; React Flow places nodes by their top-left corner.
    positions.set(Number(id), { x: x - NODE_WIDTH / 2, y: y - height / 2 });
  }
  return positions;
}

/** The handlers of the stations (each once), with the service time the model used for the first copy. */
export function handlersOf(model: FlowModel): { handlerId: string; station: Station }[] {
  const seen = new Map<string, Station>();
  for (const station of model.stations) {
    if (station.handlerId && !seen.has(station.handlerId)) seen.set(station.handlerId, station);
  }
  return [...seen].map(([handlerId, station]) => ({ handlerId, station }));
}

/** The invocations of the flows (sender → sent, each once), with the probability the model used. */
export function invocationsOf(model: FlowModel): { sender: string; sent: string; edge: FlowEdge }[] {
  const seen = new Map<string, { sender: string; sent: string; edge: FlowEdge }>();
  for (const edge of model.edges) {
    if (!edge.sender || !edge.sent) continue;
    const key = `${edge.sender}\u0000${edge.sent}`;
    if (!seen.has(key)) seen.set(key, { sender: edge.sender, sent: edge.sent, edge });
  }
  return [...seen.values()];
}
