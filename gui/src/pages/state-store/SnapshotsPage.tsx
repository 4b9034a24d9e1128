import { PageTitle } from "../../components/PageTitle";

export default function SnapshotsPage() {
  return <PageTitle title="SnapshotsPage" />;
}
