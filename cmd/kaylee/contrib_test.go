package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// The install files of contrib/, checked with the tools that read them:
// promtool and a real Prometheus scraping a running agent, systemd's
// systemd-analyze, and the agent's own /metrics for the names the
// dashboard and the rules use.

const (
	contribRules     = "../../contrib/prometheus/kaylee-rules.yml"
	contribRulesTest = "../../contrib/prometheus/kaylee-rules.test.yml"
	contribDashboard = "../../contrib/grafana/kaylee-dashboard.json"
	contribSystemd   = "../../contrib/systemd/kaylee-agent.service"
	contribFleet     = "../../contrib/fleet/kaylee-agent.service"
)

// unitFile is a systemd unit file: section → key → values, in order.
type unitFile map[string]map[string][]string

func readUnitFile(t *testing.T, path string) unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u, section := unitFile{}, ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		case section != "" && strings.Contains(line, "="):
			k, v, _ := strings.Cut(line, "=")
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		default:
			t.Fatalf("%s:%d: not a unit file line: %q", path, i+1, line)
		}
	}
	return u
}

func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// Both units run kaylee agent with flags it has, reading the config file
// and /etc/default/kaylee, with the git cache in systemd's cache directory;
// systemd 252's systemd-analyze verify finds nothing to say about them
// (ExecStart pointed at an existing program: the binary is not installed
// here), the systemd unit is hardened, and the fleet unit is global.
func TestContribUnits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, binary string
		check              func(t *testing.T, u unitFile)
	}{
		{"systemd", contribSystemd, "/usr/local/bin/kaylee", func(t *testing.T, u unitFile) {
			if u.get("Install", "WantedBy") != "multi-user.target" {
				t.Errorf("WantedBy=%q, want multi-user.target", u.get("Install", "WantedBy"))
			}
			if u.get("Service", "User") == "" && u.get("Service", "DynamicUser") != "yes" {
				t.Errorf("runs as root: no User= or DynamicUser=yes")
			}
		}},
		{"fleet", contribFleet, "/opt/bin/kaylee", func(t *testing.T, u unitFile) {
			if g := u["X-Fleet"]["Global"]; !slices.Equal(g, []string{"true"}) {
				t.Errorf("[X-Fleet] Global=%q, want true: one agent on every machine", g)
			}
			for k := range u["X-Fleet"] {
				if k != "Global" && k != "MachineMetadata" && k != "Conflicts" {
					t.Errorf("[X-Fleet] %s: fleet refuses it beside Global=true", k)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := readUnitFile(t, tt.path)
			tt.check(t, u)
			s := u["Service"]
			if u.get("Service", "Restart") != "always" || !slices.Contains(s["EnvironmentFile"], "-/etc/default/kaylee") {
				t.Errorf("Restart=%q EnvironmentFile=%q, want always and -/etc/default/kaylee", u.get("Service", "Restart"), s["EnvironmentFile"])
			}
			exec := strings.Fields(u.get("Service", "ExecStart"))
			if len(exec) < 2 || exec[0] != tt.binary || exec[1] != "agent" {
				t.Fatalf("ExecStart=%q, want %s agent …", exec, tt.binary)
			}
			args := exec[1:]
			if i := slices.Index(args, "--config"); i < 0 || i+1 >= len(args) || args[i+1] != "/etc/kaylee/kaylee.yaml" {
				t.Errorf("ExecStart does not read --config /etc/kaylee/kaylee.yaml: %q", args)
			}
			if i := slices.Index(args, "--cache-dir"); i < 0 || i+1 >= len(args) || args[i+1] != "/var/cache/"+u.get("Service", "CacheDirectory") {
				t.Errorf("--cache-dir is not systemd's CacheDirectory=%s: %q", u.get("Service", "CacheDirectory"), args)
			}
			// The flags are kaylee agent's: --help after them answers 0,
			// an unknown flag would not.
			if r := kaylee(t, nil, append(args, "--help")...); r.code != 0 || !strings.Contains(r.stdout, "kaylee agent") {
				t.Errorf("kaylee %s --help: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.err)
			}
			verifyUnit(t, tt.path, tt.binary)
		})
	}
}

// verifyUnit runs systemd-analyze verify on a copy of the unit whose
// ExecStart runs this test binary instead of kaylee (verify wants an
// executable): anything it says about the unit fails the test. The
// hardening is rated with systemd-analyze security.
func verifyUnit(t *testing.T, path, binary string) {
	t.Helper()
	analyze := gittest.NeedTool(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(path)
	unit := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), binary, self)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", unit).CombinedOutput()
	var about []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, name) {
			about = append(about, line)
		}
	}
	if err != nil || len(about) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
	} else if len(out) > 0 {
		t.Logf("systemd-analyze verify, about other units:\n%s", out)
	}
	out, err = exec.CommandContext(ctx, analyze, "security", "--offline=true", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Logf("systemd-analyze security --offline: %v (not rated)\n%s", err, out)
		return
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f of 10", level)
	if level > 3 {
		t.Errorf("systemd-analyze security: exposure %.1f, want at most 3 (OK):\n%s", level, out)
	}
}

// promtool's own checks: the rules load, and their unit tests (each alert
// firing and not firing) pass.
func TestContribPromtool(t *testing.T) {
	t.Parallel()
	promtool := gittest.NeedTool(t, "promtool")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"check rules", []string{"check", "rules", contribRules}, "SUCCESS: 9 rules found"},
		{"test rules", []string{"test", "rules", contribRulesTest}, "SUCCESS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(promtool, tt.args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tt.want) || strings.Contains(string(out), "FAILED") {
				t.Fatalf("promtool %s: %v, want %q:\n%s", strings.Join(tt.args, " "), err, tt.want, out)
			}
		})
	}
}

// The metric names found in a PromQL expression: identifiers that are
// neither functions, keywords, label names, numbers nor Grafana variables.
func TestPromQLMetricNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		want []string
	}{
		{`max by (job, source) (kaylee_sync_failing{job=~"$job", source=~"$source"}) == 1`, []string{"kaylee_sync_failing"}},
		{`histogram_quantile(0.95, sum by (source, le) (rate(kaylee_sync_duration_seconds_bucket{source=~"${source}"}[$__rate_interval])))`,
			[]string{"kaylee_sync_duration_seconds_bucket"}},
		{`sum(rate(a_sum[5m])) by (job) / on (instance) group_left () sum without (x) (rate(a_count[1h30m] offset 5m))`, []string{"a_count", "a_sum"}},
		{`count(x == 1) or vector(0)`, []string{"x"}},
		{`time() - max(y) > bool 1800 and z unless w`, []string{"w", "y", "z"}},
		{`absent(up{job="kaylee"} == 1e3)`, []string{"up"}},
		{`label_values(kaylee_sync_total{job=~"$job"}, source)`, []string{"kaylee_sync_total"}},
		{`label_values(job)`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	grafanaVar   = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	promBraces   = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	labelValues  = regexp.MustCompile(`^\s*label_values\((.*?)(?:,\s*\w+)?\)\s*$`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// metricNames returns the sorted metric names of a PromQL expression, or
// of a Grafana label_values(METRIC, LABEL) query.
func metricNames(expr string) []string {
	if m := labelValues.FindStringSubmatch(expr); m != nil {
		if strings.Contains(m[0], ",") {
			expr = m[1]
		} else {
			expr = "" // label_values(LABEL): no metric
		}
	}
	expr = grafanaVar.ReplaceAllString(expr, "1")
	expr = promString.ReplaceAllString(expr, `""`)
	expr = promBraces.ReplaceAllString(expr, " ")
	expr = promGrouping.ReplaceAllString(expr, " ")
	seen := map[string]bool{}
	for _, loc := range promIdent.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(expr[loc[0]-1:loc[0]], "0123456789.") {
			continue // a number or a duration: 5m, 1e3
		}
		if strings.HasPrefix(strings.TrimLeft(expr[loc[1]:], " \t\n"), "(") || promKeywords[strings.ToLower(name)] {
			continue // a function or a keyword
		}
		seen[name] = true
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// dashboard is what the test reads of the Grafana JSON.
type dashboard struct {
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource json.RawMessage `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		Datasource json.RawMessage `json:"datasource"`
		Expr       string          `json:"expr"`
		RefID      string          `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // of a collapsed row
}

// query is one PromQL expression of the dashboard or the rules, and where.
type query struct{ where, expr string }

// dashboardQueries reads the dashboard and returns its panel queries and
// its template variables' queries. It checks that every panel and query
// uses the datasource variable, so that the JSON imports anywhere.
func dashboardQueries(t *testing.T) (panels, variables []query) {
	t.Helper()
	b, err := os.ReadFile(contribDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", contribDashboard, err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a current Grafana's (36 or later)", d.SchemaVersion)
	}
	usesVar := func(where string, ds json.RawMessage) {
		if !strings.Contains(string(ds), `"${datasource}"`) {
			t.Errorf("%s: datasource %s, want the ${datasource} variable", where, ds)
		}
	}
	ids := map[int]bool{}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			usesVar("panel "+p.Title, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				where := fmt.Sprintf("panel %q query %s", p.Title, tg.RefID)
				usesVar(where, tg.Datasource)
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: no expr", where)
				}
				panels = append(panels, query{where, tg.Expr})
			}
		}
	}
	walk(d.Panels)
	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			hasDatasourceVar = v.Name == "datasource"
		case "query":
			usesVar("variable "+v.Name, v.Datasource)
			var q struct{ Query string }
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Fatalf("variable %s: query %s: %v", v.Name, v.Query, err)
			}
			variables = append(variables, query{"variable " + v.Name, q.Query})
		}
	}
	if !hasDatasourceVar {
		t.Errorf("no datasource variable named datasource")
	}
	return panels, variables
}

// ruleFile is what the test reads of a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func ruleQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(contribRules)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", contribRules, err)
	}
	var qs []query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{"alert " + r.Alert, r.Expr})
		}
	}
	return qs
}

// contribAgent is a kaylee agent on embedded etcd and a simulated fleet,
// syncing source "demo" from a git repository every second, with one unit
// rolled out, so that it exports every series it has.
type contribAgent struct {
	addr string
	repo *gittest.Repo
	proc *proc
}

func startContribAgent(t *testing.T) *contribAgent {
	t.Helper()
	e := etcdtest.New(t)
	startFleet(t, e, 1)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"web.yaml": unitWeb})
	repo.Commit("first")
	a := &contribAgent{addr: freePort(t), repo: repo}
	a.proc = startKaylee(t, map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}, "agent", "--repo", repo.FileURL(), "--source", "demo",
		"--cache-dir", t.TempDir(), "--interval", "1s", "--listen", a.addr, "--lease-ttl", "2s", "--min-ready", "500ms")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent's log:\n%s", a.proc.errb.String())
		}
	})
	// Every family appears once the unit runs: fleet calls were made and
	// the scheduler counted phases.
	waitFor(t, 60*time.Second, "the agent's metrics of a rolled-out unit", func() bool {
		_, m := get(a.addr, "/metrics")
		return strings.Contains(m, `kaylee_units_phase{phase="running"} 1`) && strings.Contains(m, `kaylee_sync_failing{source="demo"} 0`) &&
			strings.Contains(m, `kaylee_fleet_operations_total{op="create",result="ok"}`)
	})
	return a
}

// exported returns the sample names of a scrape of /metrics (histograms
// as their _bucket, _sum and _count) and the metric families.
func (a *contribAgent) exported(t *testing.T) (samples, families map[string]bool) {
	t.Helper()
	code, body := get(a.addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	samples, families = map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			families[strings.Fields(f)[0]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		samples[line[:strings.IndexAny(line, "{ ")]] = true
	}
	return samples, families
}

// The dashboard and the rules name only series a running agent exports
// (plus up, which Prometheus writes for every target), and the dashboard
// shows every kaylee_ family the agent has.
func TestContribMetricNames(t *testing.T) {
	t.Parallel()
	panels, variables := dashboardQueries(t)
	rules := ruleQueries(t)
	a := startContribAgent(t)
	samples, families := a.exported(t)

	tests := []struct {
		name      string
		queries   []query
		extra     map[string]bool // names not from the agent
		dashboard bool
	}{
		{"dashboard panels", panels, nil, true},
		{"dashboard variables", variables, nil, true},
		{"alert rules", rules, map[string]bool{"up": true}, false},
	}
	used := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			for _, q := range tt.queries {
				names := metricNames(q.expr)
				if len(names) == 0 {
					t.Errorf("%s: no metric name in %q", q.where, q.expr)
				}
				for _, name := range names {
					n++
					if tt.dashboard {
						used[name] = true
					}
					if !samples[name] && !tt.extra[name] {
						t.Errorf("%s uses %s, which the agent does not export (expr %q)", q.where, name, q.expr)
					}
				}
			}
			t.Logf("%d queries, %d metric names, all exported", len(tt.queries), n)
		})
	}
	for f := range families {
		if !strings.HasPrefix(f, "kaylee_") {
			continue
		}
		if !used[f] && !used[f+"_bucket"] && !used[f+"_sum"] && !used[f+"_count"] {
			t.Errorf("the dashboard shows nothing of %s", f)
		}
	}
}

// A real Prometheus scrapes a running agent with the rules of contrib/: no
// alert fires while the source syncs; KayleeSyncFailing fires, naming the
// source and the command to run, once the repository is gone, and resolves
// when it is back; every dashboard query returns data.
func TestContribPrometheusAlerts(t *testing.T) {
	t.Parallel()
	promBin := gittest.NeedTool(t, "prometheus")
	a := startContribAgent(t)
	prom := startPrometheus(t, promBin, a.addr)

	waitFor(t, 30*time.Second, "Prometheus scrapes the agent", func() bool {
		var targets struct {
			ActiveTargets []struct{ Health, ScrapeURL string }
		}
		prom.api(t, "/api/v1/targets", &targets)
		return len(targets.ActiveTargets) == 1 && targets.ActiveTargets[0].Health == "up"
	})
	waitFor(t, 30*time.Second, "Prometheus has the agent's kaylee_sync_failing", func() bool {
		return len(prom.query(t, `kaylee_sync_failing{source="demo"} == 0`)) == 1
	})
	// A few evaluations (1s apart, every for: shortened to 2s): anything
	// that would fire on a healthy agent has fired by now.
	time.Sleep(5 * time.Second)
	if firing := prom.alerts(t, "firing"); len(firing) > 0 {
		t.Fatalf("alerts firing while the source syncs: %v", firing)
	}

	// The repository goes away: every fetch fails.
	away := a.repo.Dir + ".away"
	if err := os.Rename(a.repo.Dir, away); err != nil {
		t.Fatal(err)
	}
	broke := time.Now()
	var alert promAlert
	waitFor(t, 60*time.Second, "KayleeSyncFailing firing for source demo", func() bool {
		for _, al := range prom.alerts(t, "firing") {
			if al.Labels["alertname"] == "KayleeSyncFailing" && al.Labels["source"] == "demo" {
				alert = al
				return true
			}
		}
		return false
	})
	t.Logf("KayleeSyncFailing firing %s after the repository went away: %s", time.Since(broke).Round(100*time.Millisecond), alert.Annotations["summary"])
	if alert.Labels["job"] != "kaylee" || alert.Annotations["summary"] != "Kaylee cannot sync git source demo" ||
		!strings.Contains(alert.Annotations["description"], "`kaylee sources demo`") {
		t.Errorf("the alert does not name the source and what to run: %+v", alert)
	}
	if _, m := get(a.addr, "/metrics"); !strings.Contains(m, `kaylee_sync_failing{source="demo"} 1`) || !strings.Contains(m, `kaylee_sync_total{result="failed",source="demo"}`) {
		t.Errorf("the agent's metrics do not show the failing source")
	}

	// Back: the next pass applies and the alert resolves.
	if err := os.Rename(away, a.repo.Dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "KayleeSyncFailing resolved", func() bool {
		for _, al := range prom.alerts(t, "") {
			if al.Labels["alertname"] == "KayleeSyncFailing" {
				return false
			}
		}
		return true
	})

	// Every query of the dashboard, its variables filled in as Grafana
	// would with "All", is valid PromQL and has data.
	panels, _ := dashboardQueries(t)
	fill := strings.NewReplacer("$__rate_interval", "10s", "$job", ".*", "$source", ".*")
	for _, q := range panels {
		expr := fill.Replace(q.expr)
		waitFor(t, 30*time.Second, q.where+" has data: "+expr, func() bool { return len(prom.query(t, expr)) > 0 })
	}
}

// promServer is a real Prometheus server started by a test.
type promServer struct {
	addr string
	log  string
}

type promAlert struct {
	Labels      map[string]string
	Annotations map[string]string
	State       string
}

func quoted(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

// startPrometheus runs Prometheus on a free port, scraping targets every
// second with contrib's rules, and stops it at the end of the test (its
// log is printed if the test failed).
func startPrometheus(t *testing.T, bin string, targets ...string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := os.ReadFile(contribRules)
	if err != nil {
		t.Fatal(err)
	}
	// Every for: of the rules is shortened to 2s, so that the test sees an
	// alert fire in seconds instead of minutes; the expressions are the
	// file's own.
	forLine := regexp.MustCompile(`(?m)^(\s+for:\s*)\S+$`)
	if n, want := len(forLine.FindAllIndex(rules, -1)), len(ruleQueries(t)); n != want {
		t.Fatalf("%d for: lines in %s, want one per rule (%d)", n, contribRules, want)
	}
	rules = forLine.ReplaceAll(rules, []byte("${1}2s"))
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
- job_name: kaylee
  static_configs:
  - targets: [%s]
`, strings.Join(quoted(targets), ", "))
	for name, body := range map[string][]byte{"rules.yml": rules, "prometheus.yml": []byte(cfg)} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &promServer{addr: freePort(t), log: filepath.Join(dir, "prometheus.log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file", filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", p.addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("Prometheus's log:\n%s", b)
		}
	})
	waitFor(t, 30*time.Second, "Prometheus ready", func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("Prometheus exited: %v", err)
		default:
		}
		code, _ := get(p.addr, "/-/ready")
		return code == http.StatusOK
	})
	return p
}

// api GETs an API path and decodes its data; an error answer fails the test.
func (p *promServer) api(t *testing.T, path string, data any) {
	t.Helper()
	code, body := get(p.addr, path)
	var r struct {
		Status, Error string
		Data          json.RawMessage
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusOK || r.Status != "success" {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(r.Data, data); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, r.Data)
	}
}

// query runs an instant query and returns its series' labels.
func (p *promServer) query(t *testing.T, expr string) []map[string]string {
	t.Helper()
	var data struct {
		Result []struct{ Metric map[string]string }
	}
	p.api(t, "/api/v1/query?query="+url.QueryEscape(expr), &data)
	var out []map[string]string
	for _, r := range data.Result {
		out = append(out, r.Metric)
	}
	return out
}

// alerts lists the alerts in state (pending or firing; "" for both).
func (p *promServer) alerts(t *testing.T, state string) []promAlert {
	t.Helper()
	var data struct{ Alerts []promAlert }
	p.api(t, "/api/v1/alerts", &data)
	var out []promAlert
	for _, a := range data.Alerts {
		if state == "" || a.State == state {
			out = append(out, a)
		}
	}
	return out
}

// kayleeProc is kaylee run as a real process (see kayleeProcess), stopped
// with SIGTERM as systemd stops it.
type kayleeProc struct {
	args   []string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
}

func startKayleeProcess(t *testing.T, env map[string]string, args ...string) *kayleeProc {
	t.Helper()
	p := &kayleeProc{args: args, cmd: kayleeProcess(t, 0, env, args...), logs: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("kaylee %s's output (last 4000 bytes):\n%s", args[0], tail(p.logs.String(), 4000))
		}
	})
	return p
}

// running fails the test at once if the process has ended.
func (p *kayleeProc) running(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("kaylee %s ended: %v\n%s", strings.Join(p.args, " "), p.cmd.ProcessState, tail(p.logs.String(), 4000))
	default:
	}
}

// stop sends SIGTERM and waits for the process to end.
func (p *kayleeProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("kaylee did not stop within 20s of SIGTERM")
	}
}

// alert returns the alert named name in state (pending or firing; ""
// for either) with the labels of want, if Prometheus has it.
func (p *promServer) alert(t *testing.T, state, name string, want map[string]string) (promAlert, bool) {
	t.Helper()
	for _, al := range p.alerts(t, state) {
		ok := al.Labels["alertname"] == name
		for k, v := range want {
			ok = ok && al.Labels[k] == v
		}
		if ok {
			return al, true
		}
	}
	return promAlert{}, false
}

// The shipped rules in a mixed setup, scraped by a real Prometheus: a
// kaylee server leads the scheduler beside a kaylee sync loop, or beside
// an agent that waits for the scheduler, each a real process on one etcd
// and fleet's engine. While the server leads, KayleeNoSchedulerLeader stays
// quiet; a unit whose new version crash-loops makes KayleeRolloutFailed
// fire from the server's metrics; once the server stops, the alert fires
// beside the sync loop (nothing schedules), and stays quiet beside the
// agent, which takes the scheduler over.
func TestContribAlertsServerBesideSync(t *testing.T) {
	t.Parallel()
	promBin := gittest.NeedTool(t, "prometheus")
	tests := []struct {
		name          string
		beside        func(repo, addr, cache string) []string
		firesWhenGone bool // KayleeNoSchedulerLeader once the server stops
	}{
		{"sync loop", func(repo, addr, cache string) []string {
			return []string{"sync", "--repo", repo, "--source", "demo", "--interval", "1s", "--lease-ttl", "2s", "--cache-dir", cache, "--listen", addr}
		}, true},
		{"agent", func(repo, addr, cache string) []string {
			return []string{"agent", "--repo", repo, "--source", "demo", "--interval", "1s", "--lease-ttl", "2s", "--cache-dir", cache, "--listen", addr,
				"--console-listen", "off", "--min-ready", "3s", "--max-restarts", "2", "--rollout-timeout", "20s"}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case has its own etcd, fleet, processes on free ports
			// and Prometheus; they mostly wait (scrapes, alert rules).
			t.Parallel()
			e := etcdtest.New(t)
			startFleet(t, e, 2)
			repo := gittest.NewRepo(t)
			repo.Write(map[string]string{"web.yaml": unitWeb})
			repo.Commit("first")
			env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL()}
			serverAddr, besideAddr := freePort(t), freePort(t)

			// The server first, so that it leads the scheduler.
			// --min-ready 3s: a replica that crashes 200ms after each start
			// (fleetsim's sim-fail) never counts as ready, whatever fleet's
			// 1s state poll misses; --rollout-timeout fails it anyway.
			server := startKayleeProcess(t, env, "server", "--listen", serverAddr, "--min-ready", "3s", "--lease-ttl", "2s", "--max-restarts", "2",
				"--rollout-timeout", "20s")
			waitFor(t, 60*time.Second, "the server leads the scheduler", func() bool {
				server.running(t)
				_, m := get(serverAddr, "/metrics")
				return strings.Contains(m, `kaylee_leader{role="scheduler",source=""} 1`)
			})
			startKayleeProcess(t, env, tt.beside(repo.FileURL(), besideAddr, t.TempDir())...)
			prom := startPrometheus(t, promBin, serverAddr, besideAddr)
			waitFor(t, 60*time.Second, "Prometheus scrapes both, and web runs", func() bool {
				return len(prom.query(t, `up{job="kaylee"} == 1`)) == 2 &&
					len(prom.query(t, `kaylee_units_phase{phase="running"} == 1`)) == 1 &&
					len(prom.query(t, `kaylee_leader{role="sync",source="demo"} == 1`)) == 1
			})
			// A few evaluations (1s apart, every for: shortened to 2s):
			// anything that would fire has fired by now.
			time.Sleep(5 * time.Second)
			if firing := prom.alerts(t, "firing"); len(firing) > 0 {
				t.Fatalf("alerts firing while the server leads and the source syncs: %v", firing)
			}

			// A new version that crash-loops: the server fails the rollout
			// after --max-restarts, and the alert fires, once.
			repo.Write(map[string]string{"web.yaml": "name: web\nreplicas: 2\napps:\n- image: docker://sim-fail/web:2\n"})
			repo.Commit("crash-looping web")
			var failed promAlert
			waitFor(t, 90*time.Second, "KayleeRolloutFailed firing", func() bool {
				var ok bool
				failed, ok = prom.alert(t, "firing", "KayleeRolloutFailed", map[string]string{"job": "kaylee"})
				return ok
			})
			if n := len(prom.alerts(t, "firing")); n != 1 || failed.Annotations["summary"] != "1 Kaylee unit(s) failed to roll out" {
				t.Errorf("firing: %d alerts, KayleeRolloutFailed %+v; want it alone, for one unit", n, failed)
			}

			// The server stops.
			server.stop(t)
			stopped := time.Now()
			if !tt.firesWhenGone {
				waitFor(t, 30*time.Second, "the agent leads the scheduler", func() bool {
					return len(prom.query(t, `kaylee_leader{role="scheduler",instance="`+besideAddr+`"} == 1`)) == 1
				})
				time.Sleep(5 * time.Second)
				if al, ok := prom.alert(t, "", "KayleeNoSchedulerLeader", nil); ok {
					t.Fatalf("KayleeNoSchedulerLeader %s while the agent leads the scheduler: %+v", al.State, al)
				}
				return
			}
			var none promAlert
			waitFor(t, 30*time.Second, "KayleeNoSchedulerLeader firing", func() bool {
				var ok bool
				none, ok = prom.alert(t, "firing", "KayleeNoSchedulerLeader", map[string]string{"job": "kaylee"})
				return ok
			})
			t.Logf("KayleeNoSchedulerLeader firing %s after the server stopped", time.Since(stopped).Round(100*time.Millisecond))
			if none.Annotations["summary"] != "No Kaylee scheduler leader (job kaylee)" {
				t.Errorf("KayleeNoSchedulerLeader: %+v", none)
			}
		})
	}
}

// contrib's podman cleanup unit passes systemd-analyze verify, runs
// before fleet, and removes only what Kaylee labelled (the real tier
// installs it in its machines: TestRealPodmanMachineKill boots a killed
// machine with it).
func TestContribPodmanClean(t *testing.T) {
	t.Parallel()
	const path = "../../contrib/systemd/kaylee-podman-clean.service"
	analyze := gittest.NeedTool(t, "systemd-analyze")
	u := readUnitFile(t, path)
	if before := u.get("Unit", "Before"); !strings.Contains(before, "fleet.service") {
		t.Errorf("Before=%q, want fleet.service: it must finish before fleet starts units", before)
	}
	execs := u["Service"]["ExecStart"]
	if len(execs) != 2 {
		t.Fatalf("ExecStart=%q, want pods, then containers", execs)
	}
	for _, e := range execs {
		if !strings.Contains(e, "--filter label=io.kaylee.unit ") {
			t.Errorf("ExecStart=%q removes more than Kaylee's pods and containers", e)
		}
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "kaylee-podman-clean") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
