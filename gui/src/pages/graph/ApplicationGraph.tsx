// The application graph drawn on a canvas (lean with thousands of handlers): nested circles bundle ⊃ component ⊃
// handler, message paths as edges, a handler's size by its betweenness centrality. d3-zoom pans and zooms;
// labels show only once their circle is big enough on screen; hovering a handler highlights what it reaches
// (downstream, orange) and what reaches it (upstream, teal); the search flies to a handler and pins it; a click
// opens its component.
import {
  ActionIcon,
  Badge,
  Box,
  Button,
  Group,
  Paper,
  Select,
  Stack,
  Text,
  Tooltip,
  useComputedColorScheme,
  useMantineTheme,
  type MantineTheme,
} from "@mantine/core";
import { useElementSize } from "@mantine/hooks";
import { IconFocusCentered, IconPinnedOff, IconSearch, IconZoomIn, IconZoomOut } from "@tabler/icons-react";
import { select } from "d3-selection";
import "d3-transition";
import { zoom as d3zoom, zoomIdentity, type ZoomBehavior, type ZoomTransform } from "d3-zoom";
import { memo, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useNavigate } from "react-router";
import type { HandlerItem } from "../../api/types";
import { AppLink } from "../../components/links";
import { paths } from "../../components/paths";
import { buildModel, handlerAt, LAYOUT_SIZE, reachable, type Circle, type GraphModel } from "./graphModel";

/** A component kind's colour, as the catalog's badges show it. */
const KIND_COLOR: Record<string, string> = {
  Aggregate: "indigo",
  Service: "cyan",
  Projector: "teal",
  Projection: "green",
  Saga: "orange",
  Observer: "grape",
  Invoker: "pink",
};
const DOWNSTREAM = "orange";
const UPSTREAM = "teal";

/** On-screen radius (px) from which a circle's label is drawn. */
const LABEL_RADIUS = { bundle: 28, component: 36, handler: 16 } as const;

interface Palette {
  background: string;
  text: string;
  dimText: string;
  bundleFill: string;
  bundleStroke: string;
  componentStroke: string;
  edge: string;
  kind: (kind: string, shade?: number) => string;
  accent: (color: string) => string;
}

function palette(theme: MantineTheme, dark: boolean): Palette {
  const color = (name: string, shade: number) => theme.colors[name]?.[shade] ?? "#888";
  return {
    background: dark ? theme.colors.dark[7] : theme.white,
    text: dark ? theme.colors.dark[0] : theme.black,
    dimText: dark ? theme.colors.dark[2] : theme.colors.gray[7],
    bundleFill: dark ? "rgba(255,255,255,0.03)" : "rgba(0,0,0,0.025)",
    bundleStroke: dark ? theme.colors.dark[3] : theme.colors.gray[4],
    componentStroke: dark ? theme.colors.dark[4] : theme.colors.gray[3],
    edge: dark ? "rgba(200,200,220,0.25)" : "rgba(60,60,90,0.18)",
    kind: (kind, shade = dark ? 5 : 6) => color(KIND_COLOR[kind] ?? "gray", shade),
    accent: (name) => color(name, dark ? 5 : 7),
  };
}

interface Focus {
  id: string;
  downstream: Set<string>;
  upstream: Set<string>;
}

function fitTransform(width: number, height: number): ZoomTransform {
  // A margin for the bundles' names above their circles.
  const k = Math.min(width, height) / (LAYOUT_SIZE * 1.06);
  return zoomIdentity.translate((width - LAYOUT_SIZE * k) / 2, (height - LAYOUT_SIZE * k) / 2).scale(k);
}

/** `text` cut to `width` px with an ellipsis (labels inside circles). */
function fit(ctx: CanvasRenderingContext2D, text: string, width: number): string | null {
  if (ctx.measureText(text).width <= width) return text;
  let end = text.length;
  while (end > 3 && ctx.measureText(`${text.slice(0, end)}…`).width > width) end = Math.floor(end * 0.8);
  return end > 3 ? `${text.slice(0, end)}…` : null;
}

function draw(
  ctx: CanvasRenderingContext2D,
  model: GraphModel,
  t: ZoomTransform,
  size: { width: number; height: number },
  colors: Palette,
  focus: Focus | null,
  pinned: string | null,
) {
  const { width, height } = size;
  ctx.save();
  ctx.fillStyle = colors.background;
  ctx.fillRect(0, 0, width, height);
  const sx = (x: number) => t.applyX(x);
  const sy = (y: number) => t.applyY(y);
  const visible = (c: Circle) => {
    const r = c.r * t.k;
    const x = sx(c.x);
    const y = sy(c.y);
    return x + r >= 0 && x - r <= width && y + r >= 0 && y - r <= height;
  };
  const related = (id: string) => !focus || id === focus.id || focus.downstream.has(id) || focus.upstream.has(id);

  // Bundles and components: outlines only, so the handlers and paths read on top.
  for (const bundle of model.root.children ?? []) {
    if (!visible(bundle)) continue;
    ctx.beginPath();
    ctx.arc(sx(bundle.x), sy(bundle.y), bundle.r * t.k, 0, 2 * Math.PI);
    ctx.fillStyle = colors.bundleFill;
    ctx.fill();
    ctx.strokeStyle = colors.bundleStroke;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    for (const component of bundle.children ?? []) {
      if (!visible(component)) continue;
      const kind = component.children?.[0]?.data.handler?.componentKind ?? "";
      ctx.beginPath();
      ctx.arc(sx(component.x), sy(component.y), component.r * t.k, 0, 2 * Math.PI);
      ctx.globalAlpha = focus ? 0.04 : 0.08;
      ctx.fillStyle = colors.kind(kind);
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.strokeStyle = colors.componentStroke;
      ctx.lineWidth = 1;
      ctx.stroke();
    }
  }

  // Message paths: faint, unless they lead from or to the focused handler.
  const centre = (id: string) => model.handlers.get(id)?.circle;
  ctx.lineWidth = 1;
  ctx.strokeStyle = colors.edge;
  ctx.globalAlpha = focus ? 0.25 : 1;
  ctx.beginPath();
  for (const p of model.paths) {
    const a = centre(p.source);
    const b = centre(p.target);
    if (!a || !b) continue;
    ctx.moveTo(sx(a.x), sy(a.y));
    ctx.lineTo(sx(b.x), sy(b.y));
  }
  ctx.stroke();
  ctx.globalAlpha = 1;
  if (focus) {
    for (const [set, color] of [[focus.downstream, DOWNSTREAM], [focus.upstream, UPSTREAM]] as const) {
      ctx.strokeStyle = colors.accent(color);
      ctx.fillStyle = colors.accent(color);
      ctx.lineWidth = 2;
      for (const p of model.paths) {
        const onPath = color === DOWNSTREAM
          ? (p.source === focus.id || set.has(p.source)) && set.has(p.target)
          : (p.target === focus.id || set.has(p.target)) && set.has(p.source);
        if (!onPath) continue;
        const a = centre(p.source);
        const b = centre(p.target);
        if (!a || !b) continue;
        arrow(ctx, sx(a.x), sy(a.y), sx(b.x), sy(b.y), b.r * t.k);
      }
    }
  }

  // Handlers, then their labels once big enough on screen.
  for (const placed of model.handlers.values()) {
    const c = placed.circle;
    if (!visible(c)) continue;
    const id = placed.id;
    ctx.beginPath();
    ctx.arc(sx(c.x), sy(c.y), Math.max(1, c.r * t.k), 0, 2 * Math.PI);
    ctx.globalAlpha = related(id) ? 1 : 0.2;
    ctx.fillStyle = colors.kind(placed.handler.componentKind);
    ctx.fill();
    ctx.globalAlpha = 1;
    if (focus && id !== focus.id && (focus.downstream.has(id) || focus.upstream.has(id))) {
      ctx.strokeStyle = colors.accent(focus.downstream.has(id) ? DOWNSTREAM : UPSTREAM);
      ctx.lineWidth = 3;
      ctx.stroke();
    }
    if (id === focus?.id || id === pinned) {
      ctx.strokeStyle = colors.text;
      ctx.lineWidth = 3;
      ctx.stroke();
    }
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (const bundle of model.root.children ?? []) {
    if (!visible(bundle)) continue;
    const r = bundle.r * t.k;
    // A bundle's name above its circle: inside, it would sit on its first component's.
    if (r >= LABEL_RADIUS.bundle) label(ctx, bundle.data.name, sx(bundle.x), sy(bundle.y) - r - 8, r * 2, colors.text, "600 12px");
    for (const component of bundle.children ?? []) {
      if (!visible(component)) continue;
      const cr = component.r * t.k;
      if (cr >= LABEL_RADIUS.component) {
        label(ctx, component.data.name, sx(component.x), sy(component.y) - cr + 9, cr * 1.5, colors.dimText, "11px");
      }
      for (const leaf of component.children ?? []) {
        const hr = leaf.r * t.k;
        if (hr < LABEL_RADIUS.handler || !visible(leaf)) continue;
        const id = leaf.data.handler?.handlerId ?? "";
        // White on the kind's mid shade reads in both themes.
        if (related(id)) label(ctx, leaf.data.name, sx(leaf.x), sy(leaf.y), hr * 1.8, "#fff", `${Math.min(14, 9 + hr / 12)}px`);
      }
    }
  }
  ctx.restore();
}

function label(ctx: CanvasRenderingContext2D, text: string, x: number, y: number, width: number, color: string, font: string) {
  ctx.font = `${font} system-ui, sans-serif`;
  const shown = fit(ctx, text, width);
  if (!shown) return;
  ctx.fillStyle = color;
  ctx.fillText(shown, x, y);
}

function arrow(ctx: CanvasRenderingContext2D, x1: number, y1: number, x2: number, y2: number, targetRadius: number) {
  const angle = Math.atan2(y2 - y1, x2 - x1);
  const ex = x2 - Math.cos(angle) * targetRadius;
  const ey = y2 - Math.sin(angle) * targetRadius;
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(ex, ey);
  ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(ex, ey);
  ctx.lineTo(ex - 8 * Math.cos(angle - 0.4), ey - 8 * Math.sin(angle - 0.4));
  ctx.lineTo(ex - 8 * Math.cos(angle + 0.4), ey - 8 * Math.sin(angle + 0.4));
  ctx.closePath();
  ctx.fill();
}

/** The search box: kept apart (and memoised) so hovering, which re-renders the graph, leaves its 1,000 options
 * alone. */
const GraphSearch = memo(function GraphSearch({ options, value, onPick }: {
  options: { value: string; label: string }[];
  value: string | null;
  onPick: (id: string | null) => void;
}) {
  return (
    <Select
      label="Find a handler"
      placeholder="payload — component · bundle"
      data={options}
      value={value}
      searchable
      clearable
      limit={50}
      w={{ base: "100%", sm: 460 }}
      leftSection={<IconSearch size={16} aria-hidden />}
      nothingFoundMessage="No handler matches"
      onChange={onPick}
      data-testid="graph-search"
    />
  );
});

/** A coloured dot before a word (the word keeps the text's colour, readable in both themes). */
function Dot({ color }: { color: string }) {
  return (
    <Box component="span" display="inline-block" w={8} h={8} mr={4} bg={`${color}.6`} style={{ borderRadius: "50%" }} aria-hidden />
  );
}

function focusOf(model: GraphModel, id: string | null): Focus | null {
  if (!id || !model.handlers.has(id)) return null;
  return { id, downstream: reachable(model.graph, id, "downstream"), upstream: reachable(model.graph, id, "upstream") };
}

export interface ApplicationGraphProps {
  handlers: HandlerItem[];
  /** CSS height of the drawing. */
  height?: string;
}

export default function ApplicationGraph({ handlers, height = "min(680px, calc(100vh - 240px))" }: ApplicationGraphProps) {
  const model = useMemo(() => buildModel(handlers), [handlers]);
  const theme = useMantineTheme();
  const dark = useComputedColorScheme("light") === "dark";
  const colors = useMemo(() => palette(theme, dark), [theme, dark]);
  const navigate = useNavigate();
  const { ref: box, width, height: boxHeight } = useElementSize();
  const canvas = useRef<HTMLCanvasElement | null>(null);
  const transform = useRef<ZoomTransform>(zoomIdentity);
  const zoomer = useRef<ZoomBehavior<HTMLCanvasElement, unknown> | null>(null);
  const frame = useRef(0);
  const redraw = useRef<() => void>(() => undefined);
  const [hovered, setHovered] = useState<{ id: string; x: number; y: number } | null>(null);
  const [pinned, setPinned] = useState<string | null>(null);

  const focus = useMemo(() => focusOf(model, hovered?.id ?? pinned), [model, hovered?.id, pinned]);
  const pinnedFocus = useMemo(() => focusOf(model, pinned), [model, pinned]);

  const render = useCallback(() => {
    cancelAnimationFrame(frame.current);
    frame.current = requestAnimationFrame(() => {
      const element = canvas.current;
      const ctx = element?.getContext("2d");
      if (!element || !ctx || width === 0 || boxHeight === 0) return;
      const ratio = window.devicePixelRatio || 1;
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      draw(ctx, model, transform.current, { width, height: boxHeight }, colors, focus, pinned);
    });
  }, [model, width, boxHeight, colors, focus, pinned]);

  // The canvas's pixels follow its size on screen (sharp on high-density screens).
  useEffect(() => {
    const element = canvas.current;
    if (!element || width === 0 || boxHeight === 0) return;
    const ratio = window.devicePixelRatio || 1;
    element.width = Math.round(width * ratio);
    element.height = Math.round(boxHeight * ratio);
  }, [width, boxHeight]);

  // Pan and zoom (d3-zoom), fitted to the panel at first.
  useEffect(() => {
    const element = canvas.current;
    if (!element || width === 0 || boxHeight === 0) return;
    const behaviour = d3zoom<HTMLCanvasElement, unknown>()
      .scaleExtent([0.3, 80])
      .on("zoom", (event: { transform: ZoomTransform }) => {
        transform.current = event.transform;
        redraw.current();
      });
    zoomer.current = behaviour;
    const selection = select(element);
    selection.call(behaviour);
    if (transform.current === zoomIdentity) behaviour.transform(selection, fitTransform(width, boxHeight));
    else behaviour.transform(selection, transform.current);
    return () => { selection.on(".zoom", null); };
    // Only a new size sets the zoom up again: doing so on a hover or a pin would interrupt a flight under way.
  }, [width, boxHeight]);

  useEffect(() => {
    redraw.current = render;
    render();
  }, [render]);
  useEffect(() => () => { cancelAnimationFrame(frame.current); }, []);

  const at = (event: React.MouseEvent<HTMLCanvasElement>) => {
    const rect = event.currentTarget.getBoundingClientRect();
    const x = event.clientX - rect.left;
    const y = event.clientY - rect.top;
    const [gx, gy] = transform.current.invert([x, y]);
    return { id: handlerAt(model.root, gx, gy), x, y };
  };

  const zoomBy = (factor: number) => {
    if (!canvas.current || !zoomer.current) return;
    const behaviour = zoomer.current;
    select(canvas.current).transition().duration(250).call((t) => { behaviour.scaleBy(t, factor); });
  };

  const flyTo = (id: string) => {
    const placed = model.handlers.get(id);
    if (!placed || !canvas.current || !zoomer.current) return;
    const { x, y, r } = placed.circle;
    // Close enough that the handler and its neighbours in the component read, its label drawn.
    const k = Math.max(transform.current.k, Math.min(60, Math.min(width, boxHeight) / (r * 16)));
    const target = zoomIdentity.translate(width / 2 - x * k, boxHeight / 2 - y * k).scale(k);
    const behaviour = zoomer.current;
    select(canvas.current).transition().duration(600).call((t) => { behaviour.transform(t, target); });
  };

  const pick = useCallback((id: string | null) => {
    setPinned(id);
    if (id) flyTo(id);
    // flyTo reads the zoom from refs: the model and the size are what it depends on.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [model, width, boxHeight]);

  const options = useMemo(
    () => [...model.handlers.values()].map((h) => ({ value: h.id, label: h.label })).sort((a, b) => a.label.localeCompare(b.label)),
    [model],
  );
  const hover = hovered ? model.handlers.get(hovered.id) : undefined;
  const pin = pinned ? model.handlers.get(pinned) : undefined;

  return (
    <Stack gap="xs">
      <Group justify="space-between" align="flex-end" wrap="wrap" gap="xs">
        <GraphSearch options={options} value={pinned} onPick={pick} />
        <Group gap={6}>
          <Tooltip label="Zoom in"><ActionIcon variant="default" size="lg" aria-label="Zoom in" onClick={() => { zoomBy(1.6); }}><IconZoomIn size={18} aria-hidden /></ActionIcon></Tooltip>
          <Tooltip label="Zoom out"><ActionIcon variant="default" size="lg" aria-label="Zoom out" onClick={() => { zoomBy(1 / 1.6); }}><IconZoomOut size={18} aria-hidden /></ActionIcon></Tooltip>
          <Tooltip label="Fit the whole graph">
            <ActionIcon variant="default" size="lg" aria-label="Fit the whole graph" onClick={() => {
              if (canvas.current && zoomer.current) {
                const behaviour = zoomer.current;
                select(canvas.current).transition().duration(400).call((t) => { behaviour.transform(t, fitTransform(width, boxHeight)); });
              }
            }}>
              <IconFocusCentered size={18} aria-hidden />
            </ActionIcon>
          </Tooltip>
        </Group>
      </Group>
      {pin && pinnedFocus && (
        <Paper withBorder p="xs" data-testid="graph-pinned" data-handler-id={pin.id}>
          <Group justify="space-between" wrap="nowrap">
            <Stack gap={0} style={{ minWidth: 0 }}>
              <Text size="xs" c="dimmed">Pinned · {pin.handler.componentKind} {pin.handler.handlerKind}</Text>
              <Text fw={600} truncate>{pin.label}</Text>
              <Text size="xs">
                betweenness {pin.centrality.toFixed(2)} · <Dot color={DOWNSTREAM} />{pinnedFocus.downstream.size} downstream ·{" "}
                <Dot color={UPSTREAM} />{pinnedFocus.upstream.size} upstream
              </Text>
            </Stack>
            <Group gap="xs" wrap="nowrap">
              <AppLink to={paths.component(pin.handler.component, pin.handler.bundleId)}>Component</AppLink>
              <AppLink to={paths.flowsOfHandler(pin.id)}>Flows</AppLink>
              <Button size="xs" variant="default" leftSection={<IconPinnedOff size={14} aria-hidden />} onClick={() => { setPinned(null); }}>
                Unpin
              </Button>
            </Group>
          </Group>
        </Paper>
      )}
      <Box ref={box} pos="relative" h={height} mih={360} style={{ borderRadius: 8, overflow: "hidden", border: "1px solid var(--mantine-color-default-border)" }}>
        <canvas
          ref={canvas}
          role="img"
          aria-label={`Application graph: ${model.bundleCount} bundles, ${model.componentCount} components, ${model.handlers.size} handlers, ${model.paths.length} message paths`}
          data-testid="graph-canvas"
          data-handlers={model.handlers.size}
          data-pinned={pinned ?? ""}
          style={{ width: "100%", height: "100%", display: "block", cursor: hovered ? "pointer" : "grab", touchAction: "none" }}
          onMouseMove={(event) => {
            const found = at(event);
            setHovered((current) => {
              if (!found.id) return null;
              if (current?.id === found.id && Math.abs(current.x - found.x) < 24 && Math.abs(current.y - found.y) < 24) return current;
              return { id: found.id, x: found.x, y: found.y };
            });
          }}
          onMouseLeave={() => { setHovered(null); }}
          onClick={(event) => {
            const found = at(event);
            const placed = found.id ? model.handlers.get(found.id) : undefined;
            if (placed) void navigate(paths.component(placed.handler.component, placed.handler.bundleId));
          }}
        />
        {hover && hovered && focus && (
          <Paper
            withBorder
            shadow="sm"
            p={6}
            data-testid="graph-hover"
            data-handler-id={hover.id}
            style={{
              position: "absolute",
              left: Math.min(hovered.x + 14, width - 300),
              top: Math.min(hovered.y + 14, boxHeight - 90),
              width: 290,
              pointerEvents: "none",
            }}
          >
            <Text size="sm" fw={600} truncate>{hover.handler.payload}</Text>
            <Text size="xs" truncate>{hover.handler.component} · {hover.handler.bundleId}</Text>
            <Group gap={4} mt={2}>
              <Badge size="xs" variant="light" color={KIND_COLOR[hover.handler.componentKind] ?? "gray"}>{hover.handler.componentKind}</Badge>
              <Text size="xs"><Dot color={DOWNSTREAM} />{focus.downstream.size} downstream</Text>
              <Text size="xs"><Dot color={UPSTREAM} />{focus.upstream.size} upstream</Text>
            </Group>
          </Paper>
        )}
      </Box>
      <Group gap="md" data-testid="graph-legend">
        {Object.entries(KIND_COLOR).map(([kind, color]) => (
          <Group key={kind} gap={4}>
            <Box w={10} h={10} bg={`${color}.6`} style={{ borderRadius: "50%" }} aria-hidden />
            <Text size="xs">{kind}</Text>
          </Group>
        ))}
        <Text size="xs" c="dimmed">
          Size: betweenness centrality · hover: <Dot color={DOWNSTREAM} />downstream, <Dot color={UPSTREAM} />upstream · click: open the component
        </Text>
      </Group>
    </Stack>
  );
}
