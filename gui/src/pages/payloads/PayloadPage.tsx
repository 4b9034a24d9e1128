// One payload type: kind, domain, docstring, its fields (the JSON Schema as a table), who produces and who
// handles it, its source, and its flow.
import { Button, Group, SimpleGrid, Stack, Text } from "@mantine/core";
import { IconGitBranch } from "@tabler/icons-react";
import { Link, useParams } from "react-router";
import { usePayload } from "../../api/hooks";
import type { HandlerItem } from "../../api/types";
import { KindBadge } from "../../components/Badges";
import { DataTable, type Column } from "../../components/DataTable";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { paths } from "../../components/paths";
import { SchemaTable } from "../../components/SchemaTable";
import { SourceLink } from "../../components/SourceLink";
import { Facts, Section } from "../../components/Section";
import { Empty, QueryView } from "../../components/states";

const handlerColumns: Column<HandlerItem>[] = [
  { key: "component", header: "Component", cell: (h) => <AppLink to={paths.component(h.component, h.bundleId)}>{h.component}</AppLink> },
  { key: "kind", header: "Kind", cell: (h) => <KindBadge kind={h.componentKind} /> },
  { key: "handler", header: "Handler", cell: (h) => <Text size="sm" ff="monospace">{h.handlerName}</Text> },
  { key: "returns", header: "Returns", cell: (h) => h.returnType ? <AppLink to={paths.payload(h.returnType)}>{h.returnType}{h.returnIsMultiple ? "[]" : ""}</AppLink> : "—" },
  { key: "bundle", header: "Bundle", cell: (h) => <AppLink to={paths.bundle(h.bundleId)}>{h.bundleId}</AppLink> },
];

export default function PayloadPage() {
  const name = useParams().name ?? "";
  const query = usePayload(name);
  return (
    <Stack>
      <PageTitle title={name} kicker="Payload">
        <Button component={Link} to={paths.flowsOfPayload(name)} variant="light" leftSection={<IconGitBranch size={16} aria-hidden />}>
          Flow
        </Button>
      </PageTitle>
      <QueryView query={query} loading="Loading the payload…">
        {(p) => (
          <Stack>
            <SimpleGrid cols={{ base: 1, md: 2 }}>
              <Section title="About">
                <Stack gap="sm">
                  {p.description && <Text>{p.description}</Text>}
                  {p.detail && <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>{p.detail}</Text>}
                  <Facts items={[
                    ["Kind", <KindBadge key="k" kind={p.kind} />],
                    ["Domain", p.domain ?? "—"],
                    ["Bundles", <Group key="b" gap={8}>{p.bundleIds.map((b) => <AppLink key={b} to={paths.bundle(b)}>{b}</AppLink>)}</Group>],
                    ["Source", <SourceLink key="s" file={p.sourceFile} line={p.line} bundleIds={p.bundleIds} />],
                  ]} />
                </Stack>
              </Section>
              <Section title="Producers and consumers">
                <Facts items={[
                  ["Produced by", p.producers.length ? <Group key="p" gap={8}>{p.producers.map((c) => <AppLink key={c} to={paths.component(c)}>{c}</AppLink>)}</Group> : "—"],
                  ["Handled by", p.consumers.length ? <Group key="c" gap={8}>{p.consumers.map((c) => <AppLink key={c} to={paths.component(c)}>{c}</AppLink>)}</Group> : "—"],
                ]} />
              </Section>
            </SimpleGrid>
            <Section title="Fields">
              <SchemaTable schema={p.jsonSchema} />
            </Section>
            <Section title="Handlers">
              {p.handlers.length === 0 ? <Empty>No handler handles it</Empty> : (
                <DataTable caption="Handlers of this payload" columns={handlerColumns} rows={p.handlers} rowKey={(h) => h.handlerId} />
              )}
            </Section>
          </Stack>
        )}
      </QueryView>
    </Stack>
  );
}
