// The consumers (projectors, sagas, observers × context) of the cluster's bundles: searchable, filtered by kind
// and bundle; each row asks its live lag of the instance holding the consumer's lock.
import { Badge, Stack, Text } from "@mantine/core";
import { useConsumers, useConsumerStatus } from "../../api/hooks";
import type { ConsumerItem } from "../../api/types";
import { KindBadge } from "../../components/Badges";
import { DataTable, Pager, type Column } from "../../components/DataTable";
import { FilterBar, SearchFilter, SelectFilter } from "../../components/Filters";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { pageOf } from "../../components/paging";
import { paths } from "../../components/paths";
import { QueryView } from "../../components/states";
import { useUrlState } from "../../components/urlState";

function LiveStatus({ consumer }: { consumer: ConsumerItem }) {
  const status = useConsumerStatus(consumer.consumerId, 5000);
  if (consumer.instances.length === 0) return <Text size="sm" c="dimmed">no instance online</Text>;
  if (status.isPending) return <Text size="sm" c="dimmed">…</Text>;
  if (status.isError) return <Badge color="red" variant="light">unreachable</Badge>;
  const s = status.data;
  return (
    <Stack gap={2}>
      <Text size="sm">lag {s.lag}{s.enabled ? "" : " · disabled"}</Text>
      {(s.deadEvents > 0 || s.errorMessage) && (
        <Badge color="red" variant="light" size="sm">
          {s.deadEvents > 0 ? `${s.deadEvents} dead` : "failing"}
        </Badge>
      )}
    </Stack>
  );
}

const columns: Column<ConsumerItem>[] = [
  { key: "id", header: "Consumer", cell: (c) => <AppLink to={paths.consumer(c.consumerId)}>{c.consumerId}</AppLink> },
  { key: "component", header: "Component", cell: (c) => <AppLink to={paths.component(c.component, c.bundleId)}>{c.component}</AppLink> },
  { key: "kind", header: "Kind", cell: (c) => <KindBadge kind={c.componentKind} /> },
  { key: "bundle", header: "Bundle", cell: (c) => <AppLink to={paths.bundle(c.bundleId)}>{c.bundleId}</AppLink> },
  { key: "context", header: "Context", cell: (c) => <Text size="sm" ff="monospace">{c.context}</Text> },
  { key: "instances", header: "Instances", cell: (c) => c.instances.length },
  { key: "status", header: "Status", cell: (c) => <LiveStatus consumer={c} /> },
];

export default function ConsumersPage() {
  const state = useUrlState();
  const query = useConsumers();
  const q = state.get("q").toLowerCase();
  const kind = state.get("kind");
  const bundle = state.get("bundleId");
  const items = query.data?.items ?? [];
  const kinds = [...new Set(items.map((c) => c.componentKind))].sort();
  const bundles = [...new Set(items.map((c) => c.bundleId))].sort();
  return (
    <Stack gap={0}>
      <PageTitle title="Consumers" kicker="Operations" description="Projectors, sagas and observers consuming the event store" />
      <FilterBar>
        <SearchFilter state={state} label="Search consumers" placeholder="Consumer, component or bundle" />
        <SelectFilter state={state} param="kind" label="Kind" options={kinds} />
        <SelectFilter state={state} param="bundleId" label="Bundle" options={bundles} />
      </FilterBar>
      <QueryView query={query} loading="Loading consumers…">
        {(page) => {
          const rows = page.items.filter((c) =>
            (!q || [c.consumerId, c.component, c.bundleId].some((t) => t.toLowerCase().includes(q))) &&
            (!kind || c.componentKind === kind) && (!bundle || c.bundleId === bundle));
          return (
            <>
              <DataTable caption="Consumers" columns={columns} rows={pageOf(rows, state.page, state.size)}
                rowKey={(c) => c.consumerId} empty="No consumer matches these filters" testId="consumers-table" />
              <Pager page={state.page} size={state.size} total={rows.length} label="consumers"
                onChange={(p, s) => { state.set({ page: p, size: s }); }} />
            </>
          );
        }}
      </QueryView>
    </Stack>
  );
}
