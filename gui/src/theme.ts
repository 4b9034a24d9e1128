// The component kit's theme: one accent colour, the focus ring always drawn for keyboard users.
import { createTheme, type CSSVariablesResolver } from "@mantine/core";

export const theme = createTheme({
  primaryColor: "indigo",
  // Shade 8 in the light theme: links and filled buttons keep 4.5:1 contrast on white and on striped rows.
  primaryShade: { light: 8, dark: 5 },
  focusRing: "auto",
  // Users who ask their system for less motion get dialogs and menus without transitions (the browser tests
  // ask for it too, so the accessibility check never reads a dialog half faded in).
  respectReducedMotion: true,
  defaultRadius: "sm",
  fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
  fontFamilyMonospace: "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace",
});

/** Text with WCAG AA contrast (4.5:1): secondary ("dimmed") text (the kit's grey is below that on white), links
 * in the dark theme (its default shade is below that on a hovered table row), and in the light theme the "light"
 * variants (tinted buttons, badges, alerts): the palest tint behind the darkest shade of text. */
export const cssVariablesResolver: CSSVariablesResolver = (t) => {
  const tints: Record<string, string> = {};
  for (const [name, shades] of Object.entries(t.colors)) {
    tints[`--mantine-color-${name}-light`] = shades[0];
    tints[`--mantine-color-${name}-light-hover`] = shades[1];
    tints[`--mantine-color-${name}-light-color`] = shades[9];
  }
  return {
    variables: {},
    light: { "--mantine-color-dimmed": t.colors.gray[7], ...tints },
    dark: { "--mantine-color-dimmed": t.colors.dark[1], "--mantine-color-anchor": t.colors.indigo[3] },
  };
};
