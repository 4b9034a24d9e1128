// The flows of the performance model (reference §5 "Flows"): pick everything, or a handler, payload, component or
// bundle from the side list (or arrive with `?payload=X` from a catalog page), see its flows drawn, and with the
// performance evaluation on, their figures and a what-if editor re-evaluated by the server.
import { Alert, Badge, Box, Grid, Group, Paper, Stack, Switch, Text } from "@mantine/core";
import { IconFlame } from "@tabler/icons-react";
import { useState, type ReactNode } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { errorDetail } from "../../api/client";
import { PageTitle } from "../../components/PageTitle";
import { Empty, ErrorState, Loading } from "../../components/states";
import { flowsUrl, SELECTION_KINDS, useEvaluate, useFlows, type FlowModel, type Selection } from "./api";
import { FlowFigures } from "./FlowFigures";
import FlowGraph, { type FocusRequest } from "./FlowGraph";
import { FlowSelector } from "./FlowSelector";
import { handlerLabel } from "./model";
import { StationDetails } from "./StationDetails";
import { WhatIfPanel } from "./WhatIfPanel";
import { changes, evaluateRequest, NO_WHAT_IF, type WhatIf } from "./whatIf";

function selectionFrom(params: URLSearchParams): Selection {
  for (const kind of SELECTION_KINDS) {
    const value = params.get(kind);
    if (value) return { kind, value };
  }
  return { kind: "all", value: "" };
}

function describe(selection: Selection): string {
  switch (selection.kind) {
    case "all":
      return "Every entry point of the system: invokers, and payloads that enter from outside";
    case "handler":
      return `From the handler ${handlerLabel(selection.value)} (${selection.value.split(":")[0] ?? ""})`;
    default:
      return `From the ${selection.kind} ${selection.value}`;
  }
}

function Swatch({ color, children }: { color: string; children: ReactNode }) {
  return (
    <Group gap={4} wrap="nowrap">
      <Box w={12} h={12} style={{ borderRadius: 3, border: `2px solid var(--mantine-color-${color}-filled)` }} aria-hidden />
      <Text size="xs">{children}</Text>
    </Group>
  );
}

function Legend({ evaluation }: { evaluation: boolean }) {
  return (
    <Group gap="md" data-testid="flow-legend">
      <Group gap={6}>
        <svg width="32" height="8" aria-hidden><line x1="0" y1="4" x2="32" y2="4" stroke="currentColor" strokeDasharray="6 4" strokeWidth="2" /></svg>
        <Text size="xs">asynchronous (from the event store)</Text>
      </Group>
      {evaluation && (
        <>
          <Swatch color="green">X ÷ λ ≥ 0.99</Swatch>
          <Swatch color="yellow">&lt; 0.99</Swatch>
          <Swatch color="red">&lt; 0.8 or bottleneck</Swatch>
          <Badge size="xs" color="red" variant="filled" leftSection={<IconFlame size={10} aria-hidden />}>main bottleneck</Badge>
        </>
      )}
    </Group>
  );
}

interface Evaluated {
  model: FlowModel;
  whatIf: WhatIf;
}

function FlowsView({ selection, evaluation }: { selection: Selection; evaluation: boolean }) {
  const query = useFlows(selection);
  const evaluate = useEvaluate();
  const [whatIf, setWhatIf] = useState<WhatIf>(NO_WHAT_IF);
  const [evaluated, setEvaluated] = useState<Evaluated | null>(null);
  const [picked, setPicked] = useState<number | null>(null);
  const [focus, setFocus] = useState<FocusRequest | null>(null);

  if (query.isPending) return <Loading label="Loading the flows…" />;
  if (query.isError) return <ErrorState error={query.error} title="Could not load the flows" onRetry={() => void query.refetch()} />;

  const model = evaluation && evaluated ? evaluated.model : query.data;
  const pickedStation = picked === null ? undefined : model.stations.find((s) => s.id === picked);
  const run = () => {
    const values = whatIf;
    evaluate.mutate(evaluateRequest(selection, values), {
      onSuccess: (result) => { setEvaluated({ model: result, whatIf: values }); },
    });
  };
  const viewKey = `${selection.kind}:${selection.value}:${evaluation ? "evaluation" : "plain"}`;

  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Text size="sm" c="dimmed" data-testid="flow-counts">
          {model.flows.length} {model.flows.length === 1 ? "flow" : "flows"} · {model.stations.length} stations
          {evaluation && evaluated && changes(evaluated.whatIf) > 0 && " · what-if"}
        </Text>
        <Legend evaluation={evaluation} />
      </Group>
      {model.truncated && (
        <Alert color="yellow" variant="light">These flows reach the model&apos;s station limit: the drawing stops there.</Alert>
      )}
      <Paper withBorder h="min(600px, calc(100vh - 250px))" mih={380} pos="relative" data-testid="flow-graph">
        {model.stations.length === 0 && model.sources.length === 0 ? (
          <Empty>No flow starts here: nothing handles it, or it is a view.</Empty>
        ) : (
          <FlowGraph model={model} evaluation={evaluation} selected={picked} onSelect={setPicked} viewKey={viewKey} focus={focus} />
        )}
      </Paper>
      {picked !== null && (
        <StationDetails model={model} id={picked} evaluation={evaluation} onClose={() => { setPicked(null); }} />
      )}
      {evaluation && (
        <>
          {evaluate.isError && (
            <Alert color="red" variant="light" title="The evaluation failed" role="alert" data-testid="evaluate-error">
              {errorDetail(evaluate.error)}
            </Alert>
          )}
          <Paper withBorder p="sm">
            <WhatIfPanel
              model={model}
              whatIf={whatIf}
              onChange={setWhatIf}
              onEvaluate={run}
              onReset={() => {
                setWhatIf(NO_WHAT_IF);
                setEvaluated(null);
                evaluate.reset();
              }}
              evaluating={evaluate.isPending}
              stale={evaluated !== null && evaluated.whatIf !== whatIf}
              focusHandler={pickedStation?.handlerId ?? null}
            />
          </Paper>
          <Paper withBorder p="sm">
            <FlowFigures
              model={model}
              onSelect={(id) => {
                setPicked(id);
                setFocus({ id });
              }}
            />
          </Paper>
        </>
      )}
    </Stack>
  );
}

export default function FlowsPage() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const selection = selectionFrom(params);
  const evaluation = params.get("evaluate") === "1";
  return (
    <Stack gap={0}>
      <PageTitle title="Flows" kicker="Performance" description={describe(selection)}>
        <Switch
          label="Performance evaluation"
          checked={evaluation}
          onChange={(event) => { void navigate(flowsUrl(selection, event.currentTarget.checked), { replace: true }); }}
          data-testid="evaluation-toggle"
        />
      </PageTitle>
      <Grid gap="md">
        <Grid.Col span={{ base: 12, md: 3 }}>
          <Paper withBorder p="xs">
            <FlowSelector selection={selection} evaluation={evaluation} />
          </Paper>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 9 }}>
          <FlowsView key={`${selection.kind}:${selection.value}`} selection={selection} evaluation={evaluation} />
        </Grid.Col>
      </Grid>
    </Stack>
  );
}
