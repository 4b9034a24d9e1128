// The flows of the performance model and their evaluation (GUI-B's page: /api/flows/…, POST /api/flows/evaluate).
// Selections arrive as ?handler=, ?payload=, ?component= or ?bundle= from the catalog pages' links.
import { Alert, Stack } from "@mantine/core";
import { useSearchParams } from "react-router";
import { PageTitle } from "../../components/PageTitle";

export default function FlowsPage() {
  const [params] = useSearchParams();
  const selection = ["handler", "payload", "component", "bundle"].find((key) => params.has(key));
  return (
    <Stack>
      <PageTitle
        title="Flows"
        kicker="Performance"
        description={selection ? `Selected ${selection}: ${params.get(selection) ?? ""}` : "All flows"}
      />
      <Alert variant="light" color="gray">The flow drawing and its performance evaluation are being built.</Alert>
    </Stack>
  );
}
