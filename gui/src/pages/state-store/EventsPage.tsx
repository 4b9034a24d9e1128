// The event browser: the stored events with every filter of the API (aggregate, event name, context, sequence
// and time ranges, text in the payload), newest or oldest first, paged; each event and each aggregate is a link.
import { ActionIcon, Group, Select, Stack, Text, TextInput, Tooltip } from "@mantine/core";
import { IconFilter } from "@tabler/icons-react";
import { useEvents } from "../../api/hooks";
import type { StoredEvent } from "../../api/types";
import { DataTable, Pager, type Column } from "../../components/DataTable";
import { FilterBar, SearchFilter } from "../../components/Filters";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { paths } from "../../components/paths";
import { QueryView } from "../../components/states";
import { Time } from "../../components/Time";
import { useUrlState, type UrlState } from "../../components/urlState";

/** A `datetime-local` value (the browser's zone) as the ISO instant the API compares. */
function instant(local: string): string | undefined {
  if (!local) return undefined;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function TimeFilter({ state, param, label }: { state: UrlState; param: string; label: string }) {
  return (
    <TextInput type="datetime-local" step={1} label={label} w={220} value={state.get(param)}
      onChange={(event) => { state.set({ [param]: event.currentTarget.value }); }} />
  );
}

function preview(payload: unknown): string {
  const text = typeof payload === "string" ? payload : JSON.stringify(payload);
  return text.length > 90 ? `${text.slice(0, 90)}…` : text;
}

export default function EventsPage() {
  const state = useUrlState(25);
  const filters = {
    aggregateId: state.get("aggregateId"),
    eventName: state.get("eventName"),
    context: state.get("context"),
    fromSeq: state.get("fromSeq"),
    toSeq: state.get("toSeq"),
    from: instant(state.get("from")),
    to: instant(state.get("to")),
    q: state.get("q"),
    sort: state.get("sort") || "desc",
  };
  const query = useEvents({ ...filters, page: state.page, size: state.size });
  const columns: Column<StoredEvent>[] = [
    { key: "seq", header: "Seq", cell: (e) => <AppLink to={paths.event(e.sequenceNumber)}>{e.sequenceNumber}</AppLink> },
    { key: "name", header: "Event", cell: (e) => <AppLink to={paths.payload(e.eventName)}>{e.eventName}</AppLink> },
    {
      key: "aggregate",
      header: "Aggregate",
      cell: (e) => e.aggregateId ? (
        <Group gap={4} wrap="nowrap">
          <AppLink to={paths.aggregate(e.aggregateId)}>{e.aggregateId}</AppLink>
          <Tooltip label="Only this aggregate's events">
            <ActionIcon variant="subtle" size="sm" aria-label={`Filter by aggregate ${e.aggregateId}`}
              onClick={() => { state.set({ aggregateId: e.aggregateId }); }}>
              <IconFilter size={14} aria-hidden />
            </ActionIcon>
          </Tooltip>
        </Group>
      ) : <Text size="sm" c="dimmed">—</Text>,
    },
    { key: "version", header: "Version", cell: (e) => e.aggregateVersion ?? "—" },
    { key: "context", header: "Context", cell: (e) => e.context },
    { key: "time", header: "Time", cell: (e) => <Time value={e.timestamp} /> },
    { key: "payload", header: "Payload", cell: (e) => <Text size="xs" ff="monospace" truncate="end" maw={260}>{preview(e.payload)}</Text> },
  ];
  return (
    <Stack gap={0}>
      <PageTitle title="Events" kicker="System state store" description="Every event stored, with its payload and metadata" />
      <FilterBar>
        <SearchFilter state={state} param="aggregateId" label="Aggregate" placeholder="Aggregate id" width={220} />
        <SearchFilter state={state} param="eventName" label="Event name" placeholder="TodoListCreatedEvent" width={220} />
        <SearchFilter state={state} param="context" label="Context" placeholder="default" width={140} />
        <SearchFilter state={state} param="q" label="Text in payload" placeholder="Any case" width={200} />
      </FilterBar>
      <FilterBar label="Ranges and order">
        <SearchFilter state={state} param="fromSeq" label="From seq" placeholder="0" width={120} />
        <SearchFilter state={state} param="toSeq" label="To seq" placeholder="head" width={120} />
        <TimeFilter state={state} param="from" label="From time" />
        <TimeFilter state={state} param="to" label="To time" />
        <Select label="Order" w={150} data={[{ value: "desc", label: "Newest first" }, { value: "asc", label: "Oldest first" }]}
          value={filters.sort} allowDeselect={false} onChange={(v) => { state.set({ sort: v === "desc" ? "" : v }); }} />
      </FilterBar>
      <QueryView query={query} loading="Loading events…">
        {(page) => (
          <>
            <DataTable caption="Events" columns={columns} rows={page.items} rowKey={(e) => String(e.sequenceNumber)}
              empty="No event matches these filters" testId="events-table" />
            <Pager page={page.page} size={page.size} total={page.total} label="events"
              onChange={(p, s) => { state.set({ page: p, size: s }); }} />
          </>
        )}
      </QueryView>
    </Stack>
  );
}
