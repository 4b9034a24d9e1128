import { PageTitle } from "../../components/PageTitle";

export default function PayloadsPage() {
  return <PageTitle title="PayloadsPage" />;
}
