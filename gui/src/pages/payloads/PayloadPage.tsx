import { PageTitle } from "../../components/PageTitle";

export default function PayloadPage() {
  return <PageTitle title="PayloadPage" />;
}
