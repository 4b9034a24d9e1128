// The component catalog: every component of the cluster's bundles, searchable and filtered by kind, bundle and
// domain, paged by the API.
import { Stack, Text } from "@mantine/core";
import { ALL, useBundles, useComponents, useDashboard } from "../../api/hooks";
import type { ComponentItem } from "../../api/types";
import { KindBadge } from "../../components/Badges";
import { DataTable, Pager, type Column } from "../../components/DataTable";
import { FilterBar, SearchFilter, SelectFilter } from "../../components/Filters";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { paths } from "../../components/paths";
import { QueryView } from "../../components/states";
import { useUrlState } from "../../components/urlState";

const columns: Column<ComponentItem>[] = [
  {
    key: "name",
    header: "Name",
    cell: (c) => (
      <Stack gap={0}>
        <AppLink to={paths.component(c.name, c.bundleId)}>{c.name}</AppLink>
        {c.description && <Text size="xs" c="dimmed" lineClamp={1}>{c.description}</Text>}
      </Stack>
    ),
  },
  { key: "kind", header: "Kind", cell: (c) => <KindBadge kind={c.kind} /> },
  { key: "bundle", header: "Bundle", cell: (c) => <AppLink to={paths.bundle(c.bundleId)}>{c.bundleId}</AppLink> },
  { key: "domain", header: "Domain", cell: (c) => c.domain ?? "—" },
];

export default function ComponentsPage() {
  const state = useUrlState();
  const kinds = Object.keys(useDashboard().data?.components.byKind ?? {}).sort();
  const bundles = (useBundles().data?.items ?? []).map((b) => b.bundleId);
  const all = useComponents({ size: ALL });
  const domains = [...new Set((all.data?.items ?? []).map((c) => c.domain).filter((d): d is string => !!d))].sort();
  const query = useComponents({
    q: state.get("q"),
    kind: state.get("kind"),
    bundleId: state.get("bundleId"),
    domain: state.get("domain"),
    page: state.page,
    size: state.size,
  });
  return (
    <Stack gap={0}>
      <PageTitle title="Components" kicker="Catalog" description="Aggregates, services, projectors, projections, sagas, observers and invokers" />
      <FilterBar>
        <SearchFilter state={state} label="Search components" placeholder="Name or description" />
        <SelectFilter state={state} param="kind" label="Kind" options={kinds} />
        <SelectFilter state={state} param="bundleId" label="Bundle" options={bundles} />
        <SelectFilter state={state} param="domain" label="Domain" options={domains} />
      </FilterBar>
      <QueryView query={query} loading="Loading components…">
        {(page) => (
          <>
            <DataTable
              caption="Components"
              columns={columns}
              rows={page.items}
              rowKey={(c) => `${c.bundleId}/${c.name}`}
              empty="No component matches these filters"
              testId="components-table"
            />
            <Pager page={page.page} size={page.size} total={page.total} label="components"
              onChange={(p, s) => { state.set({ page: p, size: s }); }} />
          </>
        )}
      </QueryView>
    </Stack>
  );
}
