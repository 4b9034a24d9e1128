// One stored event: where it is in the log, its aggregate (with a link to the aggregate's whole timeline), its
// payload and its metadata; the events before and after it one click away.
import { Button, Group, SimpleGrid, Stack } from "@mantine/core";
import { IconChevronLeft, IconChevronRight } from "@tabler/icons-react";
import { Link, useParams } from "react-router";
import { useEvent } from "../../api/hooks";
import { JsonView } from "../../components/JsonView";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { paths } from "../../components/paths";
import { Facts, Section } from "../../components/Section";
import { QueryView } from "../../components/states";
import { Time } from "../../components/Time";

export default function EventPage() {
  const seq = Number.parseInt(useParams().seq ?? "", 10);
  const query = useEvent(Number.isNaN(seq) ? -1 : seq);
  return (
    <Stack>
      <PageTitle title={query.data ? query.data.eventName : `Event ${seq}`} kicker={`Event #${seq}`}>
        {seq > 1 && (
          <Button component={Link} to={paths.event(seq - 1)} variant="default"
            leftSection={<IconChevronLeft size={16} aria-hidden />}>Previous</Button>
        )}
        <Button component={Link} to={paths.event(seq + 1)} variant="default"
          rightSection={<IconChevronRight size={16} aria-hidden />}>Next</Button>
      </PageTitle>
      <QueryView query={query} loading="Loading the event…">
        {(e) => (
          <Stack>
            <Section title="Event">
              <Facts items={[
                ["Sequence number", e.sequenceNumber],
                ["Event", <AppLink key="n" to={paths.payload(e.eventName)}>{e.eventName}</AppLink>],
                ["Aggregate", e.aggregateId ? (
                  <Group key="a" gap="sm">
                    <AppLink to={paths.aggregate(e.aggregateId)}>{e.aggregateId}</AppLink>
                    {e.aggregateVersion !== null && <span>version {e.aggregateVersion}</span>}
                  </Group>
                ) : "—"],
                ["Context", e.context],
                ["Time", <Time key="t" value={e.timestamp} />],
                ["Message id", e.messageId],
              ]} />
            </Section>
            <SimpleGrid cols={{ base: 1, lg: 2 }}>
              <Section title="Payload"><JsonView value={e.payload} label="Payload" /></Section>
              <Section title="Metadata"><JsonView value={e.metadata} label="Metadata" /></Section>
            </SimpleGrid>
          </Stack>
        )}
      </QueryView>
    </Stack>
  );
}
