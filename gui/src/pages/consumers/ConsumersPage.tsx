import { PageTitle } from "../../components/PageTitle";

export default function ConsumersPage() {
  return <PageTitle title="ConsumersPage" />;
}
