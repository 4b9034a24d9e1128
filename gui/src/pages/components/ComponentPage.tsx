// One component: its kind, bundle, docstring and source, every handler with what it handles, returns and sends
// (the code's analysis, and what telemetry learned at run time), its association property; then its telemetry.
import { Badge, Button, Group, Stack, Text, Tooltip } from "@mantine/core";
import { IconGitBranch } from "@tabler/icons-react";
import { lazy, Suspense } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { useComponent } from "../../api/hooks";
import type { HandlerItem, Invocation } from "../../api/types";
import { KindBadge } from "../../components/Badges";
import { DataTable, type Column } from "../../components/DataTable";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { paths } from "../../components/paths";
import { Facts, Section } from "../../components/Section";
import { SourceLink } from "../../components/SourceLink";
import { Loading, QueryView } from "../../components/states";

const ComponentTelemetry = lazy(() => import("./ComponentTelemetry"));

function Sends({ invocations }: { invocations: Invocation[] }) {
  return (
    <>
      {invocations.map((i) => (
        <Group key={i.payload} gap={4} wrap="nowrap">
          <AppLink to={paths.payload(i.payload)}>{i.payload}</AppLink>
          {i.learned ? (
            <Tooltip label="Seen sent at run time (telemetry), not found in the code">
              <Badge size="xs" variant="outline" color="grape">learned</Badge>
            </Tooltip>
          ) : i.line ? <Text size="xs" c="dimmed">line {i.line}</Text> : null}
        </Group>
      ))}
    </>
  );
}

const columns: Column<HandlerItem>[] = [
  {
    key: "payload",
    header: "Handles",
    cell: (h) => (
      <Stack gap={2}>
        <AppLink to={paths.payload(h.payload)}>{h.payload}</AppLink>
        <Group gap={4}>
          <Text size="xs" c="dimmed" ff="monospace">{h.handlerName}</Text>
          {h.init && <Badge size="xs" variant="outline">creates</Badge>}
        </Group>
      </Stack>
    ),
  },
  { key: "kind", header: "Handler kind", cell: (h) => <Text size="sm">{h.handlerKind}</Text> },
  {
    key: "returns",
    header: "Returns",
    cell: (h) => h.returnType
      ? <AppLink to={paths.payload(h.returnType)}>{h.returnType}{h.returnIsMultiple ? "[]" : ""}</AppLink>
      : <Text size="sm" c="dimmed">—</Text>,
  },
  {
    key: "sends",
    header: "Sends",
    cell: (h) => h.invokedCommands.length + h.invokedQueries.length === 0
      ? <Text size="sm" c="dimmed">—</Text>
      : <Stack gap={2}><Sends invocations={h.invokedCommands} /><Sends invocations={h.invokedQueries} /></Stack>,
  },
  { key: "association", header: "Association", cell: (h) => h.associationProperty ? <Text size="sm" ff="monospace">{h.associationProperty}</Text> : <Text size="sm" c="dimmed">—</Text> },
  { key: "flow", header: "Flow", cell: (h) => <AppLink to={paths.flowsOfHandler(h.handlerId)}>flow</AppLink> },
];

export default function ComponentPage() {
  const name = useParams().name ?? "";
  const [params] = useSearchParams();
  const query = useComponent(name, params.get("bundleId"));
  return (
    <Stack>
      <PageTitle title={name} kicker="Component">
        <Button component={Link} to={paths.flowsOfComponent(name)} variant="light" leftSection={<IconGitBranch size={16} aria-hidden />}>
          Flows
        </Button>
      </PageTitle>
      <QueryView query={query} loading="Loading the component…">
        {(c) => (
          <Stack>
            <Section title="About">
              <Stack gap="sm">
                {c.description && <Text>{c.description}</Text>}
                {c.detail && <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>{c.detail}</Text>}
                <Facts items={[
                  ["Kind", <KindBadge key="k" kind={c.kind} />],
                  ["Bundle", <AppLink key="b" to={paths.bundle(c.bundleId)}>{c.bundleId}</AppLink>],
                  ["Domain", c.domain ?? "—"],
                  ["Source", <SourceLink key="s" file={c.sourceFile} line={c.line} bundleIds={[c.bundleId]} />],
                ]} />
              </Stack>
            </Section>
            <Section title={`Handlers (${c.handlers.length})`} testId="handlers">
              <DataTable caption="Handlers of this component" columns={columns} rows={c.handlers}
                rowKey={(h) => h.handlerId} empty="This component has no handler" />
            </Section>
            <Section title="Telemetry">
              <Suspense fallback={<Loading />}>
                <ComponentTelemetry bundleId={c.bundleId} component={c.name} componentKind={c.kind} handlers={c.handlers} />
              </Suspense>
            </Section>
          </Stack>
        )}
      </QueryView>
    </Stack>
  );
}
