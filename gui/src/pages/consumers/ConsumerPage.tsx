import { PageTitle } from "../../components/PageTitle";

export default function ConsumerPage() {
  return <PageTitle title="ConsumerPage" />;
}
