// Where something's source is: a link into the repository when a bundle declaring it names one, else the file
// and line as text.
import { Anchor, Text } from "@mantine/core";
import { useBundles } from "../api/hooks";
import { sourceUrl } from "./paths";

/** Where a payload's or component's source is: a link when a bundle declaring it names its repository, else the file and line. */
export function SourceLink({ file, line, bundleIds }: { file: string | null; line: number | null; bundleIds: string[] }) {
  const bundles = useBundles();
  if (!file) return <>—</>;
  const bundle = bundles.data?.items.find((b) => bundleIds.includes(b.bundleId) && b.repositoryUrl);
  const url = bundle ? sourceUrl(bundle.repositoryUrl, bundle.linePrefix, file, line) : null;
  const text = `${file}${line ? `:${line}` : ""}`;
  return url ? <Anchor href={url} target="_blank" rel="noreferrer">{text}</Anchor> : <Text size="sm" ff="monospace">{text}</Text>;
}

