// Kill one instance of a bundle the server runs (admins only; the caller decides whether to show it): it asks
// first, since the instance finishes its work and leaves, and at the bundle's minimum a replacement starts.
import { IconPlayerStop } from "@tabler/icons-react";
import { useDeploymentActions } from "../../api/deployment";
import { ConfirmButton } from "../../components/Confirm";

export function KillInstanceButton({ bundleId, instanceId }: { bundleId: string; instanceId: string }) {
  const { kill } = useDeploymentActions(bundleId);
  return (
    <ConfirmButton
      label="Kill"
      // Filled in shade 9, here and in the dialog: white on it keeps 4.5:1 in both themes (on the kit's red 8 it
      // is just below, and an outline of a dark red is unreadable on the dark theme).
      color="red.9"
      variant="filled"
      size="compact-sm"
      leftSection={<IconPlayerStop size={14} aria-hidden />}
      aria-label={`Kill instance ${instanceId}`}
      title={`Kill instance ${instanceId}?`}
      message={
        "The instance stops taking work, finishes what it holds, releases its consumer locks and leaves (killed "
        + "after the grace period). One fewer instance is wanted; at the bundle's minimum a replacement starts."
      }
      confirmLabel="Kill the instance"
      onConfirm={() => kill.mutateAsync(instanceId)}
    />
  );
}
