// A path the GUI does not know: say so and offer the way back.
import { Stack, Text } from "@mantine/core";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";

export default function NotFoundPage() {
  return (
    <Stack>
      <PageTitle title="Page not found" />
      <Text>There is no page at this address. <AppLink to="/">Back to the dashboard</AppLink></Text>
    </Stack>
  );
}
