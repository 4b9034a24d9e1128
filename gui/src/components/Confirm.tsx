// A button for an action that changes something: it asks first (a small dialog that names the action), shows
// the action running, and the API's words when it fails.
import { Alert, Button, Group, Modal, Stack, Text, type ButtonProps } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { useState, type ReactNode } from "react";
import { errorDetail } from "../api/client";

export function ConfirmButton({ label, title, message, confirmLabel, onConfirm, color = "red", ...button }: {
  label: ReactNode;
  title: string;
  message: ReactNode;
  confirmLabel: string;
  onConfirm: () => Promise<unknown>;
  color?: string;
} & Omit<ButtonProps, "children" | "onClick">) {
  const [opened, { open, close }] = useDisclosure(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      close();
    } catch (failure) {
      setError(errorDetail(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <Button color={color} variant="light" onClick={() => { setError(null); open(); }} {...button}>{label}</Button>
      <Modal opened={opened} onClose={close} title={title} centered closeButtonProps={{ "aria-label": "Close" }}>
        <Stack>
          <Text size="sm">{message}</Text>
          {error && <Alert color="red" variant="light" role="alert">{error}</Alert>}
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>Cancel</Button>
            {/* Filled red.8 under white text is 4.49:1, just short of WCAG AA: the dialog's button takes red.9. The
                light trigger keeps the plain colour, whose shade the theme picks per scheme (red.9 is too dark on
                the dark theme). */}
            <Button color={color === "red" ? "red.9" : color} loading={busy} onClick={() => void confirm()}>
              {confirmLabel}
            </Button>
          </Group>
        </Stack>
      </Modal>
    </>
  );
}
