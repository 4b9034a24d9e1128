import { PageTitle } from "../../components/PageTitle";

export default function BundlesPage() {
  return <PageTitle title="BundlesPage" />;
}
