import { PageTitle } from "../../components/PageTitle";

export default function ClusterPage() {
  return <PageTitle title="ClusterPage" />;
}
