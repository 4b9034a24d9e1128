// Every page has a URL; each page's code is loaded when first visited (React.lazy), so the first page loads only
// the shell, the API client and itself. A route under the layout needs a session: without one the login page
// opens, and returns to the asked URL after logging in.
import { lazy } from "react";
import { createBrowserRouter, Navigate } from "react-router";
import { AppLayout } from "./layout/AppLayout";
import { RequireSession } from "./layout/RequireSession";

const LoginPage = lazy(() => import("./pages/login/LoginPage"));
const DashboardPage = lazy(() => import("./pages/dashboard/DashboardPage"));
const PayloadsPage = lazy(() => import("./pages/payloads/PayloadsPage"));
const PayloadPage = lazy(() => import("./pages/payloads/PayloadPage"));
const ComponentsPage = lazy(() => import("./pages/components/ComponentsPage"));
const ComponentPage = lazy(() => import("./pages/components/ComponentPage"));
const BundlesPage = lazy(() => import("./pages/bundles/BundlesPage"));
const BundlePage = lazy(() => import("./pages/bundles/BundlePage"));
const ClusterPage = lazy(() => import("./pages/cluster/ClusterPage"));
const ConsumersPage = lazy(() => import("./pages/consumers/ConsumersPage"));
const ConsumerPage = lazy(() => import("./pages/consumers/ConsumerPage"));
const EventsPage = lazy(() => import("./pages/state-store/EventsPage"));
const EventPage = lazy(() => import("./pages/state-store/EventPage"));
const AggregatePage = lazy(() => import("./pages/state-store/AggregatePage"));
const SnapshotsPage = lazy(() => import("./pages/state-store/SnapshotsPage"));
const FlowsPage = lazy(() => import("./pages/flows/FlowsPage"));
const GraphPage = lazy(() => import("./pages/graph/GraphPage"));
const NotFoundPage = lazy(() => import("./pages/not-found/NotFoundPage"));

export const router = createBrowserRouter([
  { path: "/login", element: <LoginPage /> },
  {
    element: <RequireSession><AppLayout /></RequireSession>,
    children: [
      { index: true, element: <DashboardPage /> },
      { path: "payloads", element: <PayloadsPage /> },
      { path: "payloads/:name", element: <PayloadPage /> },
      { path: "components", element: <ComponentsPage /> },
      { path: "components/:name", element: <ComponentPage /> },
      { path: "bundles", element: <BundlesPage /> },
      { path: "bundles/:bundleId", element: <BundlePage /> },
      { path: "cluster", element: <ClusterPage /> },
      { path: "consumers", element: <ConsumersPage /> },
      { path: "consumers/:consumerId", element: <ConsumerPage /> },
      { path: "state-store", element: <Navigate to="/state-store/events" replace /> },
      { path: "state-store/events", element: <EventsPage /> },
      { path: "state-store/events/:seq", element: <EventPage /> },
      { path: "state-store/aggregates/:aggregateId", element: <AggregatePage /> },
      { path: "state-store/snapshots", element: <SnapshotsPage /> },
      { path: "flows", element: <FlowsPage /> },
      { path: "graph", element: <GraphPage /> },
      { path: "*", element: <NotFoundPage /> },
    ],
  },
]);
