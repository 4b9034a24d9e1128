// The payload catalog: every payload type, searchable (name and description) and filtered by kind and domain,
// paged by the API; producers and consumers link to their components.
import { Group, Stack, Text } from "@mantine/core";
import { useDashboard, usePayloads, ALL } from "../../api/hooks";
import type { PayloadItem } from "../../api/types";
import { KindBadge } from "../../components/Badges";
import { DataTable, Pager, type Column } from "../../components/DataTable";
import { FilterBar, SearchFilter, SelectFilter } from "../../components/Filters";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { paths } from "../../components/paths";
import { QueryView } from "../../components/states";
import { useUrlState } from "../../components/urlState";

function ComponentLinks({ names }: { names: string[] }) {
  if (names.length === 0) return <Text size="sm" c="dimmed">—</Text>;
  return (
    <Group gap={8}>
      {names.map((name) => <AppLink key={name} to={paths.component(name)}>{name}</AppLink>)}
    </Group>
  );
}

const columns: Column<PayloadItem>[] = [
  {
    key: "name",
    header: "Name",
    cell: (p) => (
      <Stack gap={0}>
        <AppLink to={paths.payload(p.name)}>{p.name}</AppLink>
        {p.description && <Text size="xs" c="dimmed" lineClamp={1}>{p.description}</Text>}
      </Stack>
    ),
  },
  { key: "kind", header: "Kind", cell: (p) => <KindBadge kind={p.kind} /> },
  { key: "domain", header: "Domain", cell: (p) => p.domain ?? "—" },
  { key: "producers", header: "Produced by", cell: (p) => <ComponentLinks names={p.producers} /> },
  { key: "consumers", header: "Handled by", cell: (p) => <ComponentLinks names={p.consumers} /> },
];

export default function PayloadsPage() {
  const state = useUrlState();
  const kinds = Object.keys(useDashboard().data?.payloads.byKind ?? {}).sort();
  const all = usePayloads({ size: ALL });
  const domains = [...new Set((all.data?.items ?? []).map((p) => p.domain).filter((d): d is string => !!d))].sort();
  const query = usePayloads({
    q: state.get("q"),
    kind: state.get("kind"),
    domain: state.get("domain"),
    page: state.page,
    size: state.size,
  });
  return (
    <Stack gap={0}>
      <PageTitle title="Payloads" kicker="Catalog" description="Commands, events, queries and views the bundles declare" />
      <FilterBar>
        <SearchFilter state={state} label="Search payloads" placeholder="Name or description" />
        <SelectFilter state={state} param="kind" label="Kind" options={kinds} />
        <SelectFilter state={state} param="domain" label="Domain" options={domains} />
      </FilterBar>
      <QueryView query={query} loading="Loading payloads…">
        {(page) => (
          <>
            <DataTable
              caption="Payloads"
              columns={columns}
              rows={page.items}
              rowKey={(p) => p.name}
              empty="No payload matches these filters"
              testId="payloads-table"
            />
            <Pager page={page.page} size={page.size} total={page.total} label="payloads"
              onChange={(p, s) => { state.set({ page: p, size: s }); }} />
          </>
        )}
      </QueryView>
    </Stack>
  );
}
