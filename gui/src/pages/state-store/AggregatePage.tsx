import { PageTitle } from "../../components/PageTitle";

export default function AggregatePage() {
  return <PageTitle title="AggregatePage" />;
}
