// The login page: a user name and password traded for a token (POST /api/auth/login); a wrong password says so
// in the API's words, and a successful login returns to the page that asked for it.
import { Alert, Button, Center, Paper, PasswordInput, Stack, Text, TextInput, Title } from "@mantine/core";
import { useDocumentTitle } from "@mantine/hooks";
import { IconDatabase } from "@tabler/icons-react";
import { useState } from "react";
import { Navigate, useSearchParams } from "react-router";
import { useAuth } from "../../api/useAuth";
import { errorDetail } from "../../api/client";

/** Only a path of this app is a place to return to (never another site). */
function safeNext(next: string | null): string {
  return next?.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export default function LoginPage() {
  useDocumentTitle("Log in · Evento");
  const { session, login } = useAuth();
  const [params] = useSearchParams();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (session) return <Navigate to={safeNext(params.get("next"))} replace />;

  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      await login(username, password);
    } catch (failure) {
      setError(errorDetail(failure));
      setBusy(false);
    }
  };

  return (
    <Center mih="100vh" p="md" component="main">
      <Paper withBorder shadow="sm" p="xl" w={380} radius="md">
        <form onSubmit={(event) => { event.preventDefault(); void submit(); }} aria-labelledby="login-title">
          <Stack>
            <Stack gap={4} align="center">
              <IconDatabase size={32} aria-hidden />
              <Title order={1} size="h3" id="login-title">Evento</Title>
              <Text size="sm" c="dimmed">Log in to the server</Text>
            </Stack>
            {error && (
              <Alert color="red" variant="light" role="alert" data-testid="login-error">{error}</Alert>
            )}
            <TextInput
              label="User name"
              name="username"
              autoComplete="username"
              required
              autoFocus
              value={username}
              onChange={(event) => { setUsername(event.currentTarget.value); }}
            />
            <PasswordInput
              label="Password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(event) => { setPassword(event.currentTarget.value); }}
            />
            <Button type="submit" loading={busy} fullWidth>Log in</Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
