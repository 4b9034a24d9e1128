// The application graph (reference §5 "Application Graph"): the whole system drawn from its own catalog —
// bundles ⊃ components ⊃ handlers as nested circles, the message paths between handlers as edges.
import { Stack } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { api } from "../../api/client";
import { ALL } from "../../api/hooks";
import type { HandlerItem, Page } from "../../api/types";
import { PageTitle } from "../../components/PageTitle";
import { Empty, QueryView } from "../../components/states";
import ApplicationGraph from "./ApplicationGraph";

/** Every handler of the catalog, read page after page (the API serves at most 500 a page). */
async function allHandlers(signal: AbortSignal): Promise<HandlerItem[]> {
  const first = await api<Page<HandlerItem>>("/handler/", { query: { page: 0, size: ALL }, signal });
  const pages = Math.ceil(first.total / ALL);
  const rest = await Promise.all(
    Array.from({ length: Math.max(0, pages - 1) }, (_, i) =>
      api<Page<HandlerItem>>("/handler/", { query: { page: i + 1, size: ALL }, signal })),
  );
  return [first, ...rest].flatMap((page) => page.items);
}

export default function GraphPage() {
  const query = useQuery({
    queryKey: ["catalog", "handlers", "every"],
    queryFn: ({ signal }) => allHandlers(signal),
    staleTime: 30_000,
  });
  return (
    <Stack gap={0}>
      <PageTitle
        title="Application graph"
        kicker="Performance"
        description="Bundles, their components and handlers as nested circles; the message paths between handlers as edges"
      />
      <QueryView query={query} loading="Loading the handlers…">
        {(handlers) => handlers.length === 0
          ? <Empty>No bundle has registered a handler yet.</Empty>
          : <ApplicationGraph handlers={handlers} />}
      </QueryView>
    </Stack>
  );
}
