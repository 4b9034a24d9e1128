// The application graph: bundles, components and handlers as nested circles, message paths as edges (GUI-B's
// page, drawn from the catalog: /api/handler/).
import { Alert, Stack } from "@mantine/core";
import { PageTitle } from "../../components/PageTitle";

export default function GraphPage() {
  return (
    <Stack>
      <PageTitle title="Application graph" kicker="Performance" />
      <Alert variant="light" color="gray">The application graph is being built.</Alert>
    </Stack>
  );
}
