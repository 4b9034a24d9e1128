// The bundle's component graph: the application graph (nested circles component ⊃ handler, message paths as
// edges, hover highlights, search) drawn over this bundle's handlers only. The graph page's module is loaded
// lazily, with its d3 and graphology, only when a bundle page shows it.
import { lazy, Suspense } from "react";
import type { BundleDetail } from "../../api/types";
import { Empty, Loading } from "../../components/states";

const ApplicationGraph = lazy(() => import("../graph/ApplicationGraph"));

export default function BundleGraph({ bundle }: { bundle: BundleDetail }) {
  if (bundle.handlers.length === 0) return <Empty>This bundle has no handler to draw</Empty>;
  return (
    <div data-testid="bundle-graph">
      <Suspense fallback={<Loading label="Drawing the graph…" />}>
        <ApplicationGraph handlers={bundle.handlers} height="420px" />
      </Suspense>
    </div>
  );
}
