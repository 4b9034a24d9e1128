// An aggregate's timeline: all its events in order (beyond the original GUI), each with its payload, and its
// latest snapshot when it has one.
import { Accordion, Group, Stack, Text, Timeline } from "@mantine/core";
import { useParams } from "react-router";
import { useEvents } from "../../api/hooks";
import { Pager } from "../../components/DataTable";
import { JsonView } from "../../components/JsonView";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { paths } from "../../components/paths";
import { Section } from "../../components/Section";
import { Empty, QueryView } from "../../components/states";
import { Time } from "../../components/Time";
import { useUrlState } from "../../components/urlState";
import { SnapshotView } from "./SnapshotView";

export default function AggregatePage() {
  const aggregateId = useParams().aggregateId ?? "";
  const state = useUrlState(50);
  const events = useEvents({ aggregateId, sort: "asc", page: state.page, size: state.size });
  return (
    <Stack>
      <PageTitle title={aggregateId} kicker="Aggregate timeline"
        description={<AppLink to={`/state-store/events?aggregateId=${encodeURIComponent(aggregateId)}`}>In the event browser</AppLink>} />
      <Section title="Events in order" testId="timeline">
        <QueryView query={events} loading="Loading the aggregate's events…">
          {(page) => page.items.length === 0 ? <Empty>No event of this aggregate</Empty> : (
            <>
              <Timeline bulletSize={18} lineWidth={2} active={page.items.length}>
                {page.items.map((e) => (
                  <Timeline.Item
                    key={e.sequenceNumber}
                    title={
                      <Group gap="xs">
                        <AppLink to={paths.event(e.sequenceNumber)}>{e.eventName}</AppLink>
                        <Text size="xs" c="dimmed">#{e.sequenceNumber} · version {e.aggregateVersion ?? "—"}</Text>
                      </Group>
                    }
                  >
                    <Text size="xs" c="dimmed"><Time value={e.timestamp} /> · {e.metadata.user ?? e.context}</Text>
                    <Accordion variant="default" chevronPosition="left">
                      <Accordion.Item value="payload">
                        <Accordion.Control aria-label={`Payload of event ${e.sequenceNumber}`}>
                          <Text size="sm">Payload</Text>
                        </Accordion.Control>
                        <Accordion.Panel><JsonView value={e.payload} label={`Payload of event ${e.sequenceNumber}`} maxHeight={240} /></Accordion.Panel>
                      </Accordion.Item>
                    </Accordion>
                  </Timeline.Item>
                ))}
              </Timeline>
              <Pager page={page.page} size={page.size} total={page.total} label="events"
                onChange={(p, s) => { state.set({ page: p, size: s }); }} />
            </>
          )}
        </QueryView>
      </Section>
      <Section title="Latest snapshot">
        <SnapshotView aggregateId={aggregateId} />
      </Section>
    </Stack>
  );
}
