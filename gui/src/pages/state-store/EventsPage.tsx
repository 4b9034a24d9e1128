import { PageTitle } from "../../components/PageTitle";

export default function EventsPage() {
  return <PageTitle title="EventsPage" />;
}
