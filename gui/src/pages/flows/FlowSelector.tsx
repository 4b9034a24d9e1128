// The side list of the flows page: every handler, payload, component and bundle of the catalog, searchable;
// each entry is a link to its flows (`/flows?payload=X`), so a selection is a URL like any other.
import { Badge, NavLink, ScrollArea, Select, Stack, Text, TextInput } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { IconSearch } from "@tabler/icons-react";
import { useMemo, useState } from "react";
import { Link } from "react-router";
import { ALL, useBundles, useComponents, useHandlers, usePayloads } from "../../api/hooks";
import { Loading } from "../../components/states";
import { flowsUrl, SELECTION_KINDS, type Selection } from "./api";

type ListKind = (typeof SELECTION_KINDS)[number];

interface Entry {
  value: string;
  label: string;
  description: string;
}

function isListKind(value: string | null): value is ListKind {
  return SELECTION_KINDS.some((k) => k === value);
}

/** How many entries the list draws at once: a search narrows a catalog of thousands. */
const SHOWN = 150;

const TAB_LABELS: Record<ListKind, string> = {
  handler: "Handlers",
  payload: "Payloads",
  component: "Components",
  bundle: "Bundles",
};

function useEntries(kind: ListKind): { entries: Entry[]; loading: boolean } {
  const handlers = useHandlers({ size: ALL });
  const payloads = usePayloads({ size: ALL });
  const components = useComponents({ size: ALL });
  const bundles = useBundles();
  return useMemo(() => {
    switch (kind) {
      case "handler":
        return {
          loading: handlers.isPending,
          entries: (handlers.data?.items ?? []).map((h) => ({
            value: h.handlerId,
            label: h.payload,
            description: `${h.component} · ${h.bundleId}`,
          })),
        };
      case "payload":
        return {
          loading: payloads.isPending,
          entries: (payloads.data?.items ?? []).map((p) => ({ value: p.name, label: p.name, description: p.kind })),
        };
      case "component":
        return {
          loading: components.isPending,
          entries: (components.data?.items ?? []).map((c) => ({
            value: c.name,
            label: c.name,
            description: `${c.kind} · ${c.bundleId}`,
          })),
        };
      case "bundle":
        return {
          loading: bundles.isPending,
          entries: (bundles.data?.items ?? []).map((b) => ({
            value: b.bundleId,
            label: b.bundleId,
            description: b.description ?? `version ${b.version}`,
          })),
        };
    }
  }, [kind, handlers.data, handlers.isPending, payloads.data, payloads.isPending, components.data,
    components.isPending, bundles.data, bundles.isPending]);
}

export function FlowSelector({ selection, evaluation }: { selection: Selection; evaluation: boolean }) {
  const [kind, setKind] = useState<ListKind>(selection.kind === "all" ? "payload" : selection.kind);
  const [search, setSearch] = useState("");
  const [query] = useDebouncedValue(search.trim().toLowerCase(), 150);
  const { entries, loading } = useEntries(kind);
  const matching = useMemo(
    () => entries.filter((e) => !query || `${e.label} ${e.description}`.toLowerCase().includes(query)),
    [entries, query],
  );
  return (
    <Stack gap="xs" h="100%" data-testid="flow-selector">
      <NavLink
        component={Link}
        to={flowsUrl({ kind: "all", value: "" }, evaluation)}
        label="All flows"
        description="Every entry point of the system"
        active={selection.kind === "all"}
      />
      <Select
        size="xs"
        label="List flows by"
        value={kind}
        allowDeselect={false}
        onChange={(value) => { if (isListKind(value)) setKind(value); }}
        data={SELECTION_KINDS.map((k) => ({ value: k, label: TAB_LABELS[k] }))}
      />
      <TextInput
        size="xs"
        aria-label={`Search ${TAB_LABELS[kind].toLowerCase()}`}
        placeholder={`Search ${TAB_LABELS[kind].toLowerCase()}…`}
        leftSection={<IconSearch size={14} aria-hidden />}
        value={search}
        onChange={(event) => { setSearch(event.currentTarget.value); }}
      />
      {loading ? (
        <Loading label={`Loading ${TAB_LABELS[kind].toLowerCase()}…`} />
      ) : (
        <ScrollArea.Autosize mah="calc(100vh - 350px)" type="auto" scrollbars="y">
          <nav aria-label={`Flows by ${kind}`}>
            {matching.slice(0, SHOWN).map((entry) => (
              <NavLink
                key={entry.value}
                component={Link}
                to={flowsUrl({ kind, value: entry.value }, evaluation)}
                label={<Text size="sm" truncate>{entry.label}</Text>}
                description={<Text size="xs" c="dimmed" truncate>{entry.description}</Text>}
                active={selection.kind === kind && selection.value === entry.value}
                title={`${entry.label} — ${entry.description}`}
              />
            ))}
          </nav>
          {matching.length === 0 && <Text size="sm" c="dimmed" p="xs">Nothing matches “{search}”.</Text>}
          {matching.length > SHOWN && (
            <Text size="xs" c="dimmed" p="xs">
              <Badge size="xs" variant="light">{matching.length - SHOWN}</Badge> more: refine the search.
            </Text>
          )}
        </ScrollArea.Autosize>
      )}
    </Stack>
  );
}
