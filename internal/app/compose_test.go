package app_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The tests below keep docker-compose.yml (repo root) in step with the CLI:
// every fraudwatch service runs a real subcommand with flags it accepts, the
// processors can be scaled, and the file is valid for `docker compose`.

// composeFile is the part of a compose file these tests read.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image         string    `yaml:"image"`
	Build         yaml.Node `yaml:"build"`
	Entrypoint    yaml.Node `yaml:"entrypoint"`
	Command       yaml.Node `yaml:"command"`
	ContainerName string    `yaml:"container_name"`
	Ports         []any     `yaml:"ports"`
	Volumes       []any     `yaml:"volumes"`
	DependsOn     yaml.Node `yaml:"depends_on"`
	Environment   yaml.Node `yaml:"environment"`
	Profiles      []string  `yaml:"profiles"`
}

func (s composeService) built() bool { return !s.Build.IsZero() }

// repoRoot is the module root: the tests run in internal/app.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return root
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(f.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return f
}

// sortedServices returns the service names in a stable order.
func sortedServices(f composeFile) []string {
	names := make([]string, 0, len(f.Services))
	for n := range f.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// words returns a compose command or entrypoint: a list, or a string split on
// white space as compose does for a string without quotes.
func words(t *testing.T, n yaml.Node) []string {
	t.Helper()
	switch n.Kind {
	case 0:
		return nil
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil
		}
		if strings.ContainsAny(n.Value, `"'\`) {
			t.Fatalf("line %d: write a command with quotes as a YAML list", n.Line)
		}
		return strings.Fields(n.Value)
	case yaml.SequenceNode:
		var out []string
		if err := n.Decode(&out); err != nil {
			t.Fatalf("line %d: %v", n.Line, err)
		}
		return out
	}
	t.Fatalf("line %d: a command must be a string or a list", n.Line)
	return nil
}

// environment returns a service's environment, given as a map or as a list of
// KEY=VALUE (or KEY) entries.
func environment(t *testing.T, n yaml.Node) map[string]string {
	t.Helper()
	env := map[string]string{}
	switch n.Kind {
	case 0:
	case yaml.MappingNode:
		var m map[string]any
		if err := n.Decode(&m); err != nil {
			t.Fatalf("line %d: %v", n.Line, err)
		}
		for k, v := range m {
			env[k] = fmt.Sprint(v)
		}
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			t.Fatalf("line %d: %v", n.Line, err)
		}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	default:
		t.Fatalf("line %d: environment must be a map or a list", n.Line)
	}
	return env
}

// dependencies returns the services a service depends on (list or map form).
func dependencies(t *testing.T, n yaml.Node) map[string]string {
	t.Helper()
	deps := map[string]string{}
	switch n.Kind {
	case 0:
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			t.Fatalf("line %d: %v", n.Line, err)
		}
		for _, d := range l {
			deps[d] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := n.Decode(&m); err != nil {
			t.Fatalf("line %d: %v", n.Line, err)
		}
		for d, c := range m {
			if c.Condition == "" {
				c.Condition = "service_started"
			}
			deps[d] = c.Condition
		}
	default:
		t.Fatalf("line %d: depends_on must be a list or a map", n.Line)
	}
	return deps
}

// cli is the fraudwatch binary and what its help says.
type cli struct {
	bin         string
	subcommands [][]string // e.g. {"process"}, {"topics", "create"}
}

// buildCLI builds ./cmd/fraudwatch into a temporary directory and reads the
// subcommands from its top-level usage.
func buildCLI(t *testing.T) cli {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fraudwatch")
	build := exec.Command("go", "build", "-o", bin, "./cmd/fraudwatch")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fraudwatch: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("fraudwatch --help: %v\n%s", err, out)
	}
	c := cli{bin: bin, subcommands: parseSubcommands(string(out))}
	if len(c.subcommands) == 0 {
		t.Fatalf("no subcommands in fraudwatch --help:\n%s", out)
	}
	return c
}

// parseSubcommands reads lines like "  fraudwatch topics create --brokers B"
// and returns the words before the first flag or bracket.
func parseSubcommands(usage string) [][]string {
	var subs [][]string
	for _, line := range strings.Split(usage, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "fraudwatch" || !strings.HasPrefix(line, "  ") {
			continue
		}
		var sub []string
		for _, w := range f[1:] {
			if strings.ContainsAny(w[:1], "-[(<") {
				break
			}
			sub = append(sub, w)
		}
		if len(sub) > 0 {
			subs = append(subs, sub)
		}
	}
	return subs
}

// match returns the subcommand that args start with (the longest one).
func (c cli) match(args []string) []string {
	var best []string
	for _, sub := range c.subcommands {
		if len(sub) <= len(args) && slices.Equal(sub, args[:len(sub)]) && len(sub) > len(best) {
			best = sub
		}
	}
	return best
}

var usageFlag = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9_.-]*)(?: (\S+))?`)

// flags runs "fraudwatch SUB --help" and returns its flags; the value is
// whether the flag is boolean (takes no separate value).
func (c cli) flags(t *testing.T, sub []string) map[string]bool {
	t.Helper()
	cmd := exec.Command(c.bin, append(slices.Clone(sub), "--help")...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "FRAUDWATCH_") })
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fraudwatch %s --help: %v\n%s", strings.Join(sub, " "), err, out)
	}
	if want := "Usage of fraudwatch " + strings.Join(sub, " ") + ":"; !strings.Contains(string(out), want) {
		t.Fatalf("fraudwatch %s --help: no %q in\n%s", strings.Join(sub, " "), want, out)
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if m := usageFlag.FindStringSubmatch(line); m != nil {
			flags[m[1]] = m[2] == ""
		}
	}
	if len(flags) == 0 {
		t.Fatalf("fraudwatch %s --help lists no flags:\n%s", strings.Join(sub, " "), out)
	}
	return flags
}

// checkArgs parses args as Go's flag package would for a flag set with these
// flags, and reports unknown flags, missing values and positional arguments
// (which fraudwatch rejects).
func checkArgs(args []string, flags map[string]bool) []error {
	var errs []error
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if rest := args[i+1:]; len(rest) > 0 {
				errs = append(errs, fmt.Errorf("unexpected arguments %q", rest))
			}
			break
		}
		if len(a) < 2 || a[0] != '-' {
			errs = append(errs, fmt.Errorf("unexpected argument %q (not a flag)", a))
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, value, hasValue := strings.Cut(name, "=")
		isBool, ok := flags[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("unknown flag %q", a))
		case isBool && hasValue:
			if _, err := strconv.ParseBool(value); err != nil {
				errs = append(errs, fmt.Errorf("flag %q: %q is not a boolean", a, value))
			}
		case !isBool && !hasValue:
			if i+1 >= len(args) {
				errs = append(errs, fmt.Errorf("flag %q needs a value", a))
			}
			i++
		}
	}
	return errs
}

// TestComposeCommands: every service built from the Dockerfile runs a real
// fraudwatch subcommand with flags (and FRAUDWATCH_* variables) it accepts.
func TestComposeCommands(t *testing.T) {
	f := loadCompose(t)
	// The commands below are arguments of the image's entrypoint.
	dockerfile, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	entrypoint := ""
	for _, line := range strings.Split(string(dockerfile), "\n") {
		if w := strings.Fields(line); len(w) > 0 && strings.EqualFold(w[0], "ENTRYPOINT") {
			entrypoint = strings.Join(w[1:], " ")
		}
	}
	if entrypoint != `["/fraudwatch"]` {
		t.Fatalf(`Dockerfile: last ENTRYPOINT is %q, want ["/fraudwatch"]`, entrypoint)
	}
	c := buildCLI(t)
	t.Logf("subcommands in fraudwatch --help: %q", c.subcommands)
	checked := 0
	for _, name := range sortedServices(f) {
		svc := f.Services[name]
		if !svc.built() {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if ep := words(t, svc.Entrypoint); len(ep) > 0 {
				t.Fatalf("entrypoint %q: the image's ENTRYPOINT is /fraudwatch; put the subcommand in command", ep)
			}
			args := words(t, svc.Command)
			if len(args) == 0 {
				t.Fatal("no command: the image would only print its usage")
			}
			sub := c.match(args)
			if sub == nil {
				t.Fatalf("command %q: %q is not a fraudwatch subcommand (have %q)", args, args[0], c.subcommands)
			}
			flags := c.flags(t, sub)
			for _, err := range checkArgs(args[len(sub):], flags) {
				t.Errorf("command %q: fraudwatch %s: %v", args, strings.Join(sub, " "), err)
			}
			for k := range environment(t, svc.Environment) {
				flag, ok := strings.CutPrefix(k, "FRAUDWATCH_")
				if !ok {
					continue
				}
				flag = strings.ReplaceAll(strings.ToLower(flag), "_", "-")
				if _, ok := flags[flag]; !ok {
					t.Errorf("environment %s: fraudwatch %s has no flag --%s", k, strings.Join(sub, " "), flag)
				}
			}
			t.Logf("fraudwatch %s: ok", strings.Join(args, " "))
		})
		checked++
	}
	if checked == 0 {
		t.Fatal("no service is built from the Dockerfile")
	}
}

// TestComposeScaling: the processors can be started as several replicas
// (`docker compose up --scale process=N`): no container_name, no fixed host
// port, and a /data volume of their own.
func TestComposeScaling(t *testing.T) {
	f := loadCompose(t)
	processors := 0
	for _, name := range sortedServices(f) {
		svc := f.Services[name]
		args := words(t, svc.Command)
		if !svc.built() || len(args) == 0 || args[0] != "process" {
			continue
		}
		processors++
		if svc.ContainerName != "" {
			t.Errorf("%s: container_name %q prevents scaling", name, svc.ContainerName)
		}
		for _, p := range svc.Ports {
			if host := publishedPort(p); host != "" && !strings.Contains(host, "-") {
				t.Errorf("%s: port %v publishes fixed host port %s, which prevents scaling", name, p, host)
			}
		}
		for _, v := range svc.Volumes {
			if src, target := volumeSpec(v); target == "/data" && src != "" {
				t.Errorf("%s: /data is %q, which every replica would share; use an anonymous volume", name, src)
			}
		}
	}
	if processors == 0 {
		t.Fatal("no service runs `fraudwatch process`")
	}
}

// publishedPort returns the host port of a compose port entry ("" if none).
func publishedPort(p any) string {
	switch p := p.(type) {
	case int:
		return ""
	case string:
		spec, _, _ := strings.Cut(p, "/") // protocol
		parts := strings.Split(spec, ":")
		switch len(parts) {
		case 1:
			return "" // container port only
		case 2:
			return parts[0]
		default:
			// HOST_IP:HOST:CONTAINER, where HOST_IP may be IPv6 in brackets
			return parts[len(parts)-2]
		}
	case map[string]any:
		if v, ok := p["published"]; ok && v != nil {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// volumeSpec returns the source ("" for an anonymous volume) and target of a
// compose volume entry.
func volumeSpec(v any) (source, target string) {
	switch v := v.(type) {
	case string:
		parts := strings.Split(v, ":")
		if len(parts) == 1 {
			return "", parts[0]
		}
		return parts[0], parts[1]
	case map[string]any:
		s, _ := v["source"].(string)
		tg, _ := v["target"].(string)
		return s, tg
	}
	return "", ""
}

// TestComposeKafka: the broker is the official Apache Kafka image, 4.x.
func TestComposeKafka(t *testing.T) {
	f := loadCompose(t)
	kafka, ok := f.Services["kafka"]
	if !ok {
		t.Fatal("no kafka service")
	}
	if !regexp.MustCompile(`^apache/kafka:4\.\d+(\.\d+)?$`).MatchString(kafka.Image) {
		t.Errorf("kafka image %q: want the official apache/kafka with a 4.x tag", kafka.Image)
	}
	env := environment(t, kafka.Environment)
	if v := env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]; v != "false" {
		t.Errorf("KAFKA_AUTO_CREATE_TOPICS_ENABLE = %q, want false (topics come from `fraudwatch topics create`)", v)
	}
	if !strings.Contains(env["KAFKA_ADVERTISED_LISTENERS"], "//kafka:9092") {
		t.Errorf("KAFKA_ADVERTISED_LISTENERS = %q: the services use kafka:9092", env["KAFKA_ADVERTISED_LISTENERS"])
	}
}

// TestComposeDependsOn: every depends_on names a service of the file.
func TestComposeDependsOn(t *testing.T) {
	f := loadCompose(t)
	conditions := []string{"service_started", "service_healthy", "service_completed_successfully"}
	for _, name := range sortedServices(f) {
		for dep, cond := range dependencies(t, f.Services[name].DependsOn) {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("%s depends on %q, which is not a service", name, dep)
			}
			if !slices.Contains(conditions, cond) {
				t.Errorf("%s depends on %s with unknown condition %q", name, dep, cond)
			}
			if p := f.Services[dep].Profiles; len(p) > 0 && len(f.Services[name].Profiles) == 0 {
				t.Errorf("%s depends on %s, which only runs with profiles %q", name, dep, p)
			}
		}
	}
}

// TestComposeConfig: `docker compose config` accepts the file (it needs the
// compose plugin, not a running engine).
func TestComposeConfig(t *testing.T) {
	root := repoRoot(t)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Log("docker is not on PATH: `docker compose config` not run")
		return
	}
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		t.Logf("no docker compose plugin (%v: %s): `docker compose config` not run", err, bytes.TrimSpace(out))
		return
	}
	for _, args := range [][]string{
		{"compose", "-f", "docker-compose.yml", "config", "-q"},
		{"compose", "-f", "docker-compose.yml", "--profile", "demo", "config", "-q"},
	} {
		cmd := exec.Command("docker", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
		}
		if err != nil {
			t.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("docker %s: ok", strings.Join(args, " "))
	}
}
