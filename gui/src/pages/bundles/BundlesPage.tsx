// The bundle catalog: every bundle the cluster has seen, online or not, searchable and filtered by state; the
// API lists them whole (they are few), this page filters and pages them.
import { Anchor, Stack, Text } from "@mantine/core";
import { useBundles } from "../../api/hooks";
import type { BundleItem } from "../../api/types";
import { OnlineBadge } from "../../components/Badges";
import { DataTable, Pager, type Column } from "../../components/DataTable";
import { FilterBar, SearchFilter, SelectFilter } from "../../components/Filters";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { pageOf } from "../../components/paging";
import { paths } from "../../components/paths";
import { QueryView } from "../../components/states";
import { Time } from "../../components/Time";
import { useUrlState } from "../../components/urlState";

const columns: Column<BundleItem>[] = [
  { key: "id", header: "Bundle", cell: (b) => <AppLink to={paths.bundle(b.bundleId)}>{b.bundleId}</AppLink> },
  { key: "version", header: "Version", cell: (b) => b.version },
  { key: "state", header: "State", cell: (b) => <OnlineBadge online={b.online} onLabel={`${b.instances.length} online`} /> },
  { key: "description", header: "Description", cell: (b) => <Text size="sm" lineClamp={2}>{b.description ?? ""}</Text> },
  { key: "seen", header: "Last seen", cell: (b) => <Time value={b.lastSeenAt} /> },
  {
    key: "repo",
    header: "Repository",
    cell: (b) => b.repositoryUrl ? <Anchor href={b.repositoryUrl} target="_blank" rel="noreferrer" size="sm">source</Anchor> : "—",
  },
];

export default function BundlesPage() {
  const state = useUrlState();
  const query = useBundles();
  const q = state.get("q").toLowerCase();
  const online = state.get("state");
  return (
    <Stack gap={0}>
      <PageTitle title="Bundles" kicker="Catalog" description="Deployable units of components, with their online instances" />
      <FilterBar>
        <SearchFilter state={state} label="Search bundles" placeholder="Id or description" />
        <SelectFilter state={state} param="state" label="State" options={["online", "offline"]} width={160} />
      </FilterBar>
      <QueryView query={query} loading="Loading bundles…">
        {(page) => {
          const rows = page.items.filter((b) =>
            (!q || b.bundleId.toLowerCase().includes(q) || (b.description ?? "").toLowerCase().includes(q)) &&
            (!online || (online === "online") === b.online));
          return (
            <>
              <DataTable caption="Bundles" columns={columns} rows={pageOf(rows, state.page, state.size)}
                rowKey={(b) => b.bundleId} empty="No bundle matches these filters" testId="bundles-table" />
              <Pager page={state.page} size={state.size} total={rows.length} label="bundles"
                onChange={(p, s) => { state.set({ page: p, size: s }); }} />
            </>
          );
        }}
      </QueryView>
    </Stack>
  );
}
