// The component kit's theme: one accent colour, the focus ring always drawn for keyboard users.
import { createTheme } from "@mantine/core";

export const theme = createTheme({
  primaryColor: "indigo",
  focusRing: "auto",
  defaultRadius: "sm",
  fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
  fontFamilyMonospace: "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace",
});
