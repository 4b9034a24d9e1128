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
      // Shade 9 (white on the kit's red 8, the dialog's filled button, is just below 4.5:1), outlined here (the
      // light variant of a single shade has no tint of its own).
      color="red.9"
      variant="outline"
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
