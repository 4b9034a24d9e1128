// The frame of every page once logged in: a header (the server's name, light/dark switch, the user and logout)
// and a side navigation to every area; the pages load lazily inside it.
import {
  ActionIcon,
  AppShell,
  Badge,
  Burger,
  Button,
  Group,
  NavLink,
  ScrollArea,
  Text,
  Tooltip,
  useComputedColorScheme,
  useMantineColorScheme,
} from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import {
  IconBox,
  IconBrandAsana,
  IconDatabase,
  IconGauge,
  IconGitBranch,
  IconHierarchy3,
  IconListDetails,
  IconLogout,
  IconMoon,
  IconPackages,
  IconPuzzle,
  IconServer2,
  IconSun,
  IconCamera,
} from "@tabler/icons-react";
import { Suspense, type ComponentType } from "react";
import { NavLink as RouterNavLink, Outlet, useLocation } from "react-router";
import { useAuth } from "../api/useAuth";
import { Loading } from "../components/states";

interface NavItem {
  to: string;
  label: string;
  icon: ComponentType<{ size?: number; "aria-hidden"?: boolean }>;
  end?: boolean;
}

const NAV: { section: string; items: NavItem[] }[] = [
  {
    section: "Overview",
    items: [
      { to: "/", label: "Dashboard", icon: IconGauge, end: true },
      { to: "/cluster", label: "Cluster", icon: IconServer2 },
    ],
  },
  {
    section: "Catalog",
    items: [
      { to: "/payloads", label: "Payloads", icon: IconBox },
      { to: "/components", label: "Components", icon: IconPuzzle },
      { to: "/bundles", label: "Bundles", icon: IconPackages },
    ],
  },
  {
    section: "Performance",
    items: [
      { to: "/flows", label: "Flows", icon: IconGitBranch },
      { to: "/graph", label: "Application graph", icon: IconHierarchy3 },
    ],
  },
  {
    section: "Operations",
    items: [
      { to: "/consumers", label: "Consumers", icon: IconBrandAsana },
      { to: "/state-store/events", label: "Events", icon: IconListDetails },
      { to: "/state-store/snapshots", label: "Snapshots", icon: IconCamera },
    ],
  },
];

function ColorSchemeToggle() {
  const { setColorScheme } = useMantineColorScheme();
  const computed = useComputedColorScheme("light", { getInitialValueInEffect: false });
  const next = computed === "dark" ? "light" : "dark";
  return (
    <Tooltip label={`Switch to ${next} theme`}>
      <ActionIcon variant="default" size="lg" aria-label={`Switch to ${next} theme`} onClick={() => { setColorScheme(next); }}>
        {computed === "dark" ? <IconSun size={18} aria-hidden /> : <IconMoon size={18} aria-hidden />}
      </ActionIcon>
    </Tooltip>
  );
}

export function AppLayout() {
  const [opened, { toggle, close }] = useDisclosure();
  const { session, isAdmin, logout } = useAuth();
  const location = useLocation();
  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: "sm", collapsed: { mobile: !opened } }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <IconDatabase size={22} aria-hidden />
            <Text fw={700} size="lg">Evento</Text>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <ColorSchemeToggle />
            <Text size="sm" data-testid="current-user">{session?.username}</Text>
            <Badge variant="light" color={isAdmin ? "grape" : "gray"} data-testid="current-role">
              {isAdmin ? "admin" : "viewer"}
            </Badge>
            <Button variant="default" size="xs" leftSection={<IconLogout size={14} aria-hidden />} onClick={logout}>
              Log out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Main">
        <ScrollArea>
          {NAV.map((group) => (
            <div key={group.section}>
              <Text size="xs" fw={700} tt="uppercase" c="dimmed" px="sm" pt="sm" pb={4}>{group.section}</Text>
              {group.items.map((item) => {
                const active = item.end ? location.pathname === item.to : location.pathname.startsWith(item.to);
                return (
                  <NavLink
                    key={item.to}
                    component={RouterNavLink}
                    to={item.to}
                    end={item.end}
                    label={item.label}
                    active={active}
                    leftSection={<item.icon size={18} aria-hidden />}
                    onClick={close}
                  />
                );
              })}
            </div>
          ))}
        </ScrollArea>
      </AppShell.Navbar>
      <AppShell.Main>
        <Suspense fallback={<Loading />}>
          <Outlet />
        </Suspense>
      </AppShell.Main>
    </AppShell>
  );
}
