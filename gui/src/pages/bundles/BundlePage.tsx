import { PageTitle } from "../../components/PageTitle";

export default function BundlePage() {
  return <PageTitle title="BundlePage" />;
}
