// A JSON value shown indented, monospace, scrollable and copyable: payloads, metadata, snapshots, errors.
import { Box, Code, CopyButton, Button, ScrollArea } from "@mantine/core";

export function JsonView({ value, label, maxHeight = 420 }: { value: unknown; label: string; maxHeight?: number }) {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  return (
    <Box pos="relative">
      <ScrollArea.Autosize mah={maxHeight} type="auto">
        <Code block aria-label={label} tabIndex={0} style={{ whiteSpace: "pre-wrap", wordBreak: "break-word" }}>
          {text}
        </Code>
      </ScrollArea.Autosize>
      <CopyButton value={text}>
        {({ copied, copy }) => (
          <Button size="compact-xs" variant="default" pos="absolute" top={6} right={6} onClick={copy}>
            {copied ? "Copied" : "Copy"}
          </Button>
        )}
      </CopyButton>
    </Box>
  );
}
