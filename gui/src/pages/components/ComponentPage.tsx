import { PageTitle } from "../../components/PageTitle";

export default function ComponentPage() {
  return <PageTitle title="ComponentPage" />;
}
