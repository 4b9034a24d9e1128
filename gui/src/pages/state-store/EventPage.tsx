import { PageTitle } from "../../components/PageTitle";

export default function EventPage() {
  return <PageTitle title="EventPage" />;
}
