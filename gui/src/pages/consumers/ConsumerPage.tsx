// One consumer, live: its status from the instance holding its lock (checkpoint, head, lag, errors), its dead
// event queue with payload and error viewers, and for an admin the actions: enable/disable, retry flags, delete,
// consume the dead queue, and a replay from a sequence number with its progress.
import {
  Alert,
  Badge,
  Button,
  Group,
  Modal,
  NumberInput,
  Progress,
  SimpleGrid,
  Stack,
  Switch,
  Text,
} from "@mantine/core";
import { IconPlayerPause, IconPlayerPlay, IconRefresh } from "@tabler/icons-react";
import { useState } from "react";
import { useParams } from "react-router";
import { errorDetail } from "../../api/client";
import { useConsumerActions, useConsumerStatus, useDeadEvents } from "../../api/hooks";
import type { ConsumerStatus, DeadEvent, ResetAccepted } from "../../api/types";
import { useAuth } from "../../api/useAuth";
import { KindBadge, OnlineBadge } from "../../components/Badges";
import { ConfirmButton } from "../../components/Confirm";
import { DataTable, Pager, type Column } from "../../components/DataTable";
import { JsonView } from "../../components/JsonView";
import { AppLink } from "../../components/links";
import { PageTitle } from "../../components/PageTitle";
import { paths } from "../../components/paths";
import { Facts, Section } from "../../components/Section";
import { QueryView } from "../../components/states";
import { Time } from "../../components/Time";
import { useUrlState } from "../../components/urlState";

type Viewing = { event: DeadEvent; what: "payload" | "error" } | null;

function StatusFacts({ s }: { s: ConsumerStatus }) {
  return (
    <SimpleGrid cols={{ base: 1, md: 2 }}>
      <Facts items={[
        ["Component", <AppLink key="c" to={paths.component(s.component, s.bundleId)}>{s.component}</AppLink>],
        ["Kind", <KindBadge key="k" kind={s.componentKind} />],
        ["Bundle", <AppLink key="b" to={paths.bundle(s.bundleId)}>{s.bundleId}</AppLink>],
        ["Context", s.context],
        ["Answered by", `${s.instanceId} on ${s.serverId}${s.holdsLock ? " (holds the lock)" : ""}`],
        ["State", <OnlineBadge key="e" online={s.enabled} onLabel="enabled" offLabel="disabled" />],
      ]} />
      <Facts items={[
        ["Checkpoint", <span key="cp" data-testid="checkpoint">{s.checkpoint ?? "none yet"}</span>],
        ["Head", s.head],
        ["Lag", <span key="lag" data-testid="lag">{s.lag}{s.headReached ? "" : " (catching up)"}</span>],
        ["In flight", s.inFlight],
        ["Dead events", <span key="d" data-testid="dead-count">{s.deadEvents}</span>],
        ["Errors", s.errorCount === 0 ? "none" : (
          <Stack key="err" gap={2}>
            <Text size="sm" c="red">{s.errorCount} since <Time value={s.errorSince} /></Text>
            {s.errorMessage && <Text size="sm" ff="monospace">{s.errorMessage}</Text>}
            <Text size="xs" c="dimmed">last <Time value={s.lastErrorAt} /></Text>
          </Stack>
        )],
      ]} />
    </SimpleGrid>
  );
}

/** The progress of a replay: how far the checkpoint moved from where it started towards the head then. */
function ResetProgress({ reset, status }: { reset: ResetAccepted; status: ConsumerStatus | undefined }) {
  const span = Math.max(1, reset.head - reset.fromSequenceNumber);
  const done = status ? Math.max(0, (status.checkpoint ?? 0) - reset.fromSequenceNumber) : 0;
  const percent = Math.min(100, Math.round((done / span) * 100));
  const finished = !!status && (status.checkpoint ?? 0) >= reset.head && status.headReached;
  return (
    <Stack gap={4} data-testid="reset-progress">
      <Text size="sm">
        {finished ? "Replay finished" : "Replaying"} from {reset.fromSequenceNumber} to {reset.head}: checkpoint{" "}
        {status?.checkpoint ?? "—"}
      </Text>
      <Progress value={finished ? 100 : percent} animated={!finished} aria-label="Replay progress" />
    </Stack>
  );
}

export default function ConsumerPage() {
  const consumerId = useParams().consumerId ?? "";
  const { isAdmin } = useAuth();
  const url = useUrlState(25);
  const [reset, setReset] = useState<{ accepted: ResetAccepted; at: number } | null>(null);
  const replaying = reset !== null;
  const status = useConsumerStatus(consumerId, replaying ? 500 : 2000);
  const dead = useDeadEvents(consumerId, url.page, url.size);
  const actions = useConsumerActions(consumerId);
  const [from, setFrom] = useState<number | string>(0);
  const [viewing, setViewing] = useState<Viewing>(null);
  const [notice, setNotice] = useState<{ ok: boolean; text: string } | null>(null);

  /** Run an admin action; its outcome (the words it returns, or the API's error) shows above the page. */
  const run = async (action: () => Promise<string>) => {
    setNotice(null);
    try {
      setNotice({ ok: true, text: await action() });
    } catch (failure) {
      setNotice({ ok: false, text: errorDetail(failure) });
    }
  };

  const columns: Column<DeadEvent>[] = [
    { key: "seq", header: "Seq", cell: (e) => <AppLink to={paths.event(e.sequenceNumber)}>{e.sequenceNumber}</AppLink> },
    { key: "name", header: "Event", cell: (e) => <AppLink to={paths.payload(e.eventName)}>{e.eventName}</AppLink> },
    { key: "aggregate", header: "Aggregate", cell: (e) => e.aggregateId ? <AppLink to={paths.aggregate(e.aggregateId)} maxWidth={200}>{e.aggregateId}</AppLink> : "—" },
    { key: "dead", header: "Dead since", cell: (e) => <Time value={e.deadAt} /> },
    {
      key: "error",
      header: "Error",
      cell: (e) => (
        <Button variant="subtle" size="compact-sm" color="red" onClick={() => { setViewing({ event: e, what: "error" }); }}
          styles={{ label: { maxWidth: 260, overflow: "hidden", textOverflow: "ellipsis" } }}
          aria-label={`Error of event ${e.sequenceNumber}: ${e.error}`}>
          {e.error}
        </Button>
      ),
    },
    {
      key: "payload",
      header: "Payload",
      cell: (e) => (
        <Button variant="default" size="compact-sm" onClick={() => { setViewing({ event: e, what: "payload" }); }}
          aria-label={`View payload of event ${e.sequenceNumber}`}>
          View
        </Button>
      ),
    },
    {
      key: "retry",
      header: "Retry",
      cell: (e) => isAdmin ? (
        <Switch
          checked={e.retry}
          aria-label={`Retry event ${e.sequenceNumber}`}
          disabled={actions.setRetry.isPending}
          onChange={(event) => {
            const retry = event.currentTarget.checked;
            void run(async () => {
              await actions.setRetry.mutateAsync({ sequenceNumber: e.sequenceNumber, retry });
              return `Event ${e.sequenceNumber} ${retry ? "flagged for" : "no longer flagged for"} retry`;
            });
          }}
        />
      ) : <Badge variant="light" color={e.retry ? "indigo" : "gray"}>{e.retry ? "flagged" : "no"}</Badge>,
    },
    ...(isAdmin ? [{
      key: "delete",
      header: <span className="sr-only">Actions</span>,
      cell: (e: DeadEvent) => (
        <ConfirmButton
          label="Delete"
          size="compact-sm"
          aria-label={`Delete event ${e.sequenceNumber}`}
          title={`Delete dead event ${e.sequenceNumber}?`}
          message="The consumer will never handle this event. This cannot be undone."
          confirmLabel="Delete"
          onConfirm={() => actions.deleteDead.mutateAsync(e.sequenceNumber)}
        />
      ),
    }] : []),
  ];

  const s = status.data;
  return (
    <Stack>
      <PageTitle title={s ? s.component : consumerId} kicker={`Consumer · ${consumerId}`}>
        {isAdmin && s && (
          <Button
            variant="default"
            leftSection={s.enabled ? <IconPlayerPause size={16} aria-hidden /> : <IconPlayerPlay size={16} aria-hidden />}
            loading={actions.setEnabled.isPending}
            onClick={() => void run(async () => {
              const after = await actions.setEnabled.mutateAsync(!s.enabled);
              return after.enabled ? "The consumer is enabled" : "The consumer is disabled";
            })}
          >
            {s.enabled ? "Disable" : "Enable"}
          </Button>
        )}
      </PageTitle>
      {notice && (
        <Alert color={notice.ok ? "green" : "red"} variant="light" withCloseButton closeButtonLabel="Dismiss"
          onClose={() => { setNotice(null); }}
          role={notice.ok ? "status" : "alert"} data-testid="action-notice">
          {notice.text}
        </Alert>
      )}
      <Section title="Status" testId="status">
        <QueryView query={status} loading="Asking the consumer's instance…">
          {(current) => <StatusFacts s={current} />}
        </QueryView>
      </Section>
      {isAdmin && (
        <Section title="Replay" testId="replay">
          <Stack>
            <Text size="sm" c="dimmed">
              Move the checkpoint back: the consumer handles again every event after this sequence number (0: from the
              start, to rebuild a read model).
            </Text>
            <Group align="flex-end">
              <NumberInput label="From sequence number" min={0} value={from} onChange={setFrom} w={220} allowDecimal={false} />
              <ConfirmButton
                label="Replay"
                variant="default"
                color="indigo"
                leftSection={<IconRefresh size={16} aria-hidden />}
                title="Replay the events?"
                message={`${consumerId} will handle again every event after sequence number ${String(from)}.`}
                confirmLabel="Replay"
                onConfirm={async () => {
                  const accepted = await actions.reset.mutateAsync(Number(from) || 0);
                  setReset({ accepted, at: Date.now() });
                }}
              />
            </Group>
            {reset && (
              // Only a status read after the reset was accepted tells its progress (an older one shows the
              // checkpoint from before the replay).
              <ResetProgress reset={reset.accepted} status={status.dataUpdatedAt > reset.at ? s : undefined} />
            )}
          </Stack>
        </Section>
      )}
      <Section
        title="Dead event queue"
        testId="dead-events"
        actions={isAdmin && (
          <Button
            variant="light"
            loading={actions.consumeDeadQueue.isPending}
            onClick={() => void run(async () => {
              const { processed } = await actions.consumeDeadQueue.mutateAsync();
              return `${processed} flagged dead event${processed === 1 ? "" : "s"} handled successfully`;
            })}
          >
            Consume dead queue
          </Button>
        )}
      >
        <QueryView query={dead} loading="Reading the dead event queue…">
          {(page) => (
            <>
              <DataTable caption="Dead events" columns={columns} rows={page.items} rowKey={(e) => String(e.sequenceNumber)}
                empty="No dead event" testId="dead-table" />
              <Pager page={page.page} size={page.size} total={page.total} label="dead events"
                onChange={(p, sz) => { url.set({ page: p, size: sz }); }} />
            </>
          )}
        </QueryView>
      </Section>
      <Modal
        opened={viewing !== null}
        onClose={() => { setViewing(null); }}
        title={viewing ? `${viewing.what === "payload" ? "Payload" : "Error"} of event ${viewing.event.sequenceNumber}` : ""}
        size="lg"
        closeButtonProps={{ "aria-label": "Close" }}
      >
        {viewing && (viewing.what === "payload" ? (
          <Stack>
            <JsonView value={viewing.event.payload} label="Payload" />
            <Text size="sm" fw={600}>Metadata</Text>
            <JsonView value={viewing.event.metadata} label="Metadata" maxHeight={200} />
          </Stack>
        ) : <JsonView value={viewing.event.error} label="Error" />)}
      </Modal>
    </Stack>
  );
}
