import { PageTitle } from "../../components/PageTitle";

export default function ComponentsPage() {
  return <PageTitle title="ComponentsPage" />;
}
