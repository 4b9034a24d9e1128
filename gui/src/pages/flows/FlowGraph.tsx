// The flow drawing: sources and stations as React Flow nodes placed by dagre's layered layout, source →
// gateway → handler → response → event store → asynchronous consumers, left to right. Asynchronous edges are
// dashed; with the performance evaluation on, edges carry λ and the invocation probability, stations are
// coloured by throughput ÷ workload, bottlenecks are red and each flow's main bottleneck is marked.
import "@xyflow/react/dist/style.css";
import { Badge, Group, Text, useComputedColorScheme } from "@mantine/core";
import { IconFlame } from "@tabler/icons-react";
import {
  Background,
  Controls,
  Handle,
  MarkerType,
  Position,
  ReactFlow,
  type Edge,
  type Node,
  type NodeProps,
  useReactFlow,
} from "@xyflow/react";
import { memo, useEffect, useMemo } from "react";
import type { FlowModel, Source, Station } from "./api";
import {
  customersLabel,
  edgeLabel,
  figure,
  layout,
  mainBottlenecks,
  NODE_HEIGHT,
  NODE_WIDTH,
  sourceTitle,
  STATUS_COLOR,
  stationKindLabel,
  stationSubtitle,
  stationTitle,
  status,
} from "./model";

interface StationData extends Record<string, unknown> {
  station: Station;
  evaluation: boolean;
  main: boolean;
  selected: boolean;
}

interface SourceData extends Record<string, unknown> {
  source: Source;
  evaluation: boolean;
  selected: boolean;
}

type StationNode = Node<StationData, "station">;
type SourceNode = Node<SourceData, "source">;

const hidden = { opacity: 0, pointerEvents: "none" as const };

function frame(color: string, strong: boolean, selected: boolean, height: number) {
  return {
    width: NODE_WIDTH,
    height,
    boxSizing: "border-box" as const,
    padding: "6px 10px",
    borderRadius: 8,
    border: `${strong ? 3 : 1.5}px solid var(--mantine-color-${color}-${strong ? "filled" : "outline"})`,
    background: strong ? "var(--mantine-color-red-light)" : "var(--mantine-color-body)",
    boxShadow: selected ? "0 0 0 3px var(--mantine-primary-color-light-hover)" : "var(--mantine-shadow-xs)",
    overflow: "hidden",
  };
}

const StationBox = memo(function StationBox({ data }: NodeProps<StationNode>) {
  const { station, evaluation, main, selected } = data;
  const state = status(station.throughputPerS, station.workloadPerS);
  const color = evaluation ? (station.bottleneck ? "red" : STATUS_COLOR[state]) : "gray";
  const height = evaluation ? NODE_HEIGHT.evaluation : NODE_HEIGHT.plain;
  const subtitle = stationSubtitle(station);
  return (
    <div
      style={frame(color, evaluation && station.bottleneck, selected, height)}
      data-testid="flow-station"
      data-station-id={station.id}
      data-handler-id={station.handlerId ?? ""}
      data-kind={station.kind}
      data-status={evaluation ? (station.bottleneck ? "bottleneck" : state) : "plain"}
      data-bottleneck={station.bottleneck}
      data-main-bottleneck={main}
    >
      <Handle type="target" position={Position.Left} style={hidden} isConnectable={false} />
      <Group justify="space-between" gap={4} wrap="nowrap">
        <Text size="xs" c="dimmed" truncate>{stationKindLabel(station)}</Text>
        {evaluation && main && (
          <Badge size="xs" color="red" variant="filled" leftSection={<IconFlame size={10} aria-hidden />}>
            main bottleneck
          </Badge>
        )}
        {evaluation && station.bottleneck && !main && <Badge size="xs" color="red" variant="light">bottleneck</Badge>}
      </Group>
      <Text size="sm" fw={600} truncate title={stationTitle(station)}>{stationTitle(station)}</Text>
      {subtitle && <Text size="xs" truncate title={subtitle}>{subtitle}</Text>}
      {!subtitle && station.bundleId === null && <Text size="xs" c="dimmed">server</Text>}
      {evaluation && (
        <>
          <Text size="xs" truncate>
            S {figure(station.serviceTimeMs)} ms · λ {figure(station.workloadPerS)} → X {figure(station.throughputPerS)} r/s
          </Text>
          <Text size="xs" truncate data-testid="station-customers">
            {customersLabel(station)}
            {station.capacityPerS !== null && ` · μ ${figure(station.capacityPerS)} r/s`}
          </Text>
          {station.queueGrowthPerS > 0 && (
            <Text size="xs" c="red" fw={600} truncate>queue +{figure(station.queueGrowthPerS)} r/s</Text>
          )}
        </>
      )}
      <Handle type="source" position={Position.Right} style={hidden} isConnectable={false} />
    </div>
  );
});

const SourceBox = memo(function SourceBox({ data }: NodeProps<SourceNode>) {
  const { source, evaluation, selected } = data;
  const height = evaluation ? NODE_HEIGHT.evaluation : NODE_HEIGHT.plain;
  return (
    <div style={frame("indigo", false, selected, height)} data-testid="flow-source" data-source-key={source.key}>
      <Text size="xs" c="dimmed">Source{source.handlerId ? "" : " (from outside)"}</Text>
      <Text size="sm" fw={600} truncate title={sourceTitle(source)}>{sourceTitle(source)}</Text>
      <Text size="xs" truncate title={source.payload}>{source.payload}</Text>
      {evaluation && (
        <Text size="xs" truncate>
          every {figure(source.interArrivalMs)} ms · λ {figure(source.ratePerS)} r/s
        </Text>
      )}
      <Handle type="source" position={Position.Right} style={hidden} isConnectable={false} />
    </div>
  );
});

const nodeTypes = { station: StationBox, source: SourceBox };

/** The extent (px at zoom 1) that still reads when fitted in the panel. */
const READABLE_WIDTH = 1100;
const READABLE_HEIGHT = 800;

/** Centres the view on a station when asked (the figures' "main bottleneck" link): inside React Flow, where its
 * viewport hook works. */
function FocusOn({ request }: { request: FocusRequest | null }) {
  const flow = useReactFlow();
  useEffect(() => {
    if (request) void flow.fitView({ nodes: [{ id: String(request.id) }], maxZoom: 1, duration: 400 });
  }, [flow, request]);
  return null;
}

/** A request to show one station (a new object each time, so asking twice for the same station works). */
export interface FocusRequest {
  id: number;
}

export interface FlowGraphProps {
  model: FlowModel;
  evaluation: boolean;
  selected: number | null;
  onSelect: (id: number | null) => void;
  /** Changes when the drawing should fit the view again (a new selection or mode). */
  viewKey: string;
  focus: FocusRequest | null;
}

export default function FlowGraph({ model, evaluation, selected, onSelect, viewKey, focus }: FlowGraphProps) {
  const scheme = useComputedColorScheme("light");
  const positions = useMemo(() => layout(model, evaluation), [model, evaluation]);
  const main = useMemo(() => mainBottlenecks(model), [model]);

  const nodes = useMemo<(StationNode | SourceNode)[]>(() => {
    const at = (id: number) => positions.get(id) ?? { x: 0, y: 0 };
    const sources: SourceNode[] = model.sources.map((source) => ({
      id: String(source.id),
      type: "source",
      position: at(source.id),
      data: { source, evaluation, selected: selected === source.id },
      ariaLabel: `Source ${sourceTitle(source)} ${source.payload}`,
      draggable: false,
      connectable: false,
    }));
    const stations: StationNode[] = model.stations.map((station) => ({
      id: String(station.id),
      type: "station",
      position: at(station.id),
      data: { station, evaluation, main: main.has(station.id), selected: selected === station.id },
      ariaLabel: `${stationKindLabel(station)} ${stationTitle(station)} ${stationSubtitle(station) ?? ""}${
        evaluation && station.bottleneck ? " (bottleneck)" : ""
      }`,
      draggable: false,
      connectable: false,
    }));
    return [...sources, ...stations];
  }, [model, evaluation, positions, main, selected]);

  const edges = useMemo<Edge[]>(() => {
    const byId = new Map(model.stations.map((s) => [s.id, s]));
    const top = Math.max(1e-9, ...model.edges.map((e) => e.ratePerS));
    return model.edges.map((edge) => {
      const target = byId.get(edge.target);
      const state = target ? status(target.throughputPerS, target.workloadPerS) : "success";
      const color = evaluation
        ? `var(--mantine-color-${target?.bottleneck ? "red" : STATUS_COLOR[state]}-filled)`
        : "var(--mantine-color-dimmed)";
      const label = edgeLabel(edge, evaluation);
      return {
        id: `${edge.origin}-${edge.target}`,
        source: String(edge.origin),
        target: String(edge.target),
        type: "default",
        label: label || undefined,
        labelStyle: { fontSize: 11, fill: "var(--mantine-color-text)" },
        labelBgStyle: { fill: "var(--mantine-color-body)", fillOpacity: 0.9 },
        labelBgPadding: [4, 2] as [number, number],
        style: {
          stroke: color,
          strokeWidth: evaluation ? 1 + 3 * Math.sqrt(edge.ratePerS / top) : 1.5,
          strokeDasharray: edge.isAsync ? "6 4" : undefined,
        },
        markerEnd: { type: MarkerType.ArrowClosed, color, width: 9, height: 9 },
        data: { isAsync: edge.isAsync },
        className: edge.isAsync ? "flow-edge-async" : "flow-edge-sync",
        selectable: false,
        focusable: false,
      };
    });
  }, [model, evaluation]);

  // Flows fitted whole would be too small to read when long or many: then the view opens on the start of the
  // first ones (their sources and first stations), readable, and the rest is a pan or a zoom away.
  const fitNodes = useMemo(() => {
    const xs = [...positions.values()].map((p) => p.x);
    const ys = [...positions.values()].map((p) => p.y);
    if (xs.length === 0) return undefined;
    const left = Math.min(...xs);
    const top = Math.min(...ys);
    const width = Math.max(...xs) - left + NODE_WIDTH;
    const height = Math.max(...ys) - top + NODE_HEIGHT.evaluation;
    if (width <= READABLE_WIDTH && height <= READABLE_HEIGHT) return undefined;
    // The top-left corner: where the first flows start.
    return [...positions]
      .filter(([, p]) => p.x < left + READABLE_WIDTH - NODE_WIDTH && p.y < top + READABLE_HEIGHT - NODE_HEIGHT.evaluation)
      .map(([id]) => ({ id: String(id) }));
  }, [positions]);

  return (
    <ReactFlow
      key={viewKey}
      nodes={nodes}
      edges={edges}
      nodeTypes={nodeTypes}
      colorMode={scheme}
      fitView
      fitViewOptions={{ maxZoom: 1, padding: 0.08, nodes: fitNodes }}
      minZoom={0.05}
      maxZoom={2}
      nodesDraggable={false}
      nodesConnectable={false}
      elementsSelectable
      onlyRenderVisibleElements={model.stations.length > 300}
      onNodeClick={(_, node) => { onSelect(Number(node.id)); }}
      onPaneClick={() => { onSelect(null); }}
      aria-label="Flow diagram"
    >
      <Background gap={24} />
      <Controls showInteractive={false} />
      <FocusOn request={focus} />
    </ReactFlow>
  );
}
