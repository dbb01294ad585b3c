package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/store"
)

// EvidenceConfig configures the evidence publisher: the role that runs on
// every machine and publishes what the replicas there left in Dir when
// they stopped (deploy renders the step that writes it) to etcd, at
// <prefix>/evidence/<unit>/<fleet unit>/<machine>, under a lease of its
// own: a publisher that stops takes its machine's evidence with it.
type EvidenceConfig struct {
	Store   *store.Store
	Dir     string        // default deploy.EvidenceDir
	Machine string        // fleet's machine ID; default /etc/machine-id's
	Every   time.Duration // how often Dir is read; default 1s
	// Keep: a file older than this is not published (its key goes);
	// default 1h.
	Keep time.Duration
	TTL  time.Duration // the lease's; default 60s
	Log  *slog.Logger
}

// maxEvidenceFile bounds what is read of one evidence file.
const maxEvidenceFile = 64 << 10

// PublishEvidence runs the evidence publisher until ctx ends.
func PublishEvidence(ctx context.Context, cfg EvidenceConfig) error {
	if cfg.Dir == "" {
		cfg.Dir = deploy.EvidenceDir
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.Keep <= 0 {
		cfg.Keep = time.Hour
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 60 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Machine == "" {
		b, err := os.ReadFile("/etc/machine-id")
		if err != nil {
			return fmt.Errorf("evidence: the machine's ID: %w", err)
		}
		cfg.Machine = strings.TrimSpace(string(b))
	}
	p := &publisher{cfg: cfg, published: map[string]publishedFile{}}
	tick := time.NewTicker(cfg.Every)
	defer tick.Stop()
	for {
		if err := p.pass(ctx); err != nil && ctx.Err() == nil {
			cfg.Log.Warn("evidence: not published; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

type publisher struct {
	cfg       EvidenceConfig
	lease     clientv3.LeaseID
	alive     <-chan *clientv3.LeaseKeepAliveResponse
	published map[string]publishedFile // file name → what was published of it
}

type publishedFile struct {
	mod  time.Time
	size int64
	unit string
}

// ensureLease grants the publisher's lease, again when it was lost (etcd
// away longer than TTL): everything is published again under the new one.
func (p *publisher) ensureLease(ctx context.Context) error {
	if p.lease != clientv3.NoLease {
		if !p.leaseLost() {
			return nil
		}
		p.cfg.Log.Warn("evidence: lease lost; publishing again")
		p.lease, p.published = clientv3.NoLease, map[string]publishedFile{}
	}
	c := p.cfg.Store.Client()
	g, err := c.Grant(ctx, int64(p.cfg.TTL/time.Second))
	if err != nil {
		return fmt.Errorf("granting the evidence lease: %w", err)
	}
	alive, err := c.KeepAlive(ctx, g.ID)
	if err != nil {
		return fmt.Errorf("keeping the evidence lease: %w", err)
	}
	p.lease, p.alive = g.ID, alive
	return nil
}

// leaseLost drains the keep-alive answers: a closed channel is a lease
// gone (expired while etcd was away).
func (p *publisher) leaseLost() bool {
	for {
		select {
		case _, ok := <-p.alive:
			if !ok {
				return true
			}
		default:
			return false
		}
	}
}

// pass publishes the files that are new or changed, and deletes the keys
// of files gone or older than Keep. It writes nothing in Dir: it runs as
// a user of its own.
func (p *publisher) pass(ctx context.Context) error {
	if err := p.ensureLease(ctx); err != nil {
		return err
	}
	entries, err := os.ReadDir(p.cfg.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", p.cfg.Dir, err)
	}
	seen := map[string]bool{}
	var errs []error
	for _, de := range entries {
		name := de.Name()
		unit, ok := evidenceUnit(name)
		if !ok || !de.Type().IsRegular() {
			continue // temporary files, probe answers, anything else
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		path := filepath.Join(p.cfg.Dir, name)
		if time.Since(info.ModTime()) > p.cfg.Keep {
			continue // too old to tell: its key goes (the evidence step removes the file after a day)
		}
		seen[name] = true
		if was, ok := p.published[name]; ok && was.mod.Equal(info.ModTime()) && was.size == info.Size() {
			continue
		}
		if err := p.publish(ctx, path, name, unit); err != nil {
			errs = append(errs, err)
			continue
		}
		p.published[name] = publishedFile{mod: info.ModTime(), size: info.Size(), unit: unit}
	}
	for name, was := range p.published {
		if seen[name] {
			continue
		}
		if err := p.cfg.Store.DeleteEvidence(ctx, was.unit, name, p.cfg.Machine); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(p.published, name)
	}
	return errors.Join(errs...)
}

// evidenceUnit is the Kaylee unit of an evidence file, named after its
// fleet unit (<unit prefix>:<name>:<spec hash>:<group>:<i>.service).
func evidenceUnit(file string) (string, bool) {
	prefix, _, ok := strings.Cut(file, ":")
	if !ok || strings.HasPrefix(file, ".") {
		return "", false
	}
	n, ok := deploy.ParseUnitName(prefix, file)
	if !ok {
		return "", false
	}
	return n.Name, true
}

func (p *publisher) publish(ctx context.Context, path, fleetUnit, unit string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	e, err := ParseEvidence(io.LimitReader(f, maxEvidenceFile))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	e.Unit, e.FleetUnit, e.Machine = unit, fleetUnit, p.cfg.Machine
	// The unit's env values never leave the machine, even when the
	// process printed them: its spec's, and its env files' here.
	if u, err := p.cfg.Store.GetUnit(ctx, unit); err == nil && u.Err == nil {
		e.Scrub(EnvValues(&u.Spec))
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("reading unit %s to hide its env values: %w", unit, err)
	}
	if err := p.cfg.Store.PutEvidence(ctx, e, p.lease); err != nil {
		return err
	}
	p.cfg.Log.Info("evidence published", "fleetUnit", fleetUnit, "result", e.Result, "exit", e.Exit(), "restarts", e.Restarts)
	return nil
}

// ParseEvidence reads an evidence file (see deploy's evidence step):
// key=value lines, j= once per journal line. Unknown keys are ignored;
// the result is bounded (store.Evidence.Bound).
func ParseEvidence(r io.Reader) (*store.Evidence, error) {
	e := &store.Evidence{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEvidenceFile)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "time":
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return nil, fmt.Errorf("time=%q: %w", v, err)
			}
			e.Time = t
		case "result":
			e.Result = v
		case "code":
			e.ExitCode = v
		case "status":
			e.ExitStatus = v
		case "restarts":
			e.Restarts, _ = strconv.Atoi(v)
		case "probe":
			e.Probe = probeAnswer(v)
		case "j":
			e.Journal = append(e.Journal, v)
			if len(e.Journal) > 2*store.EvidenceLinesMax {
				e.Journal = e.Journal[1:]
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return nil, err
	}
	if e.Time.IsZero() {
		return nil, errors.New("no time= line: not an evidence file")
	}
	e.Bound()
	return e, nil
}

// EnvValues are the values a unit's evidence must not show: its env's,
// and those of its env files that can be read here.
func EnvValues(s *deploy.Spec) []string {
	var vals []string
	for _, e := range s.Env {
		vals = append(vals, e.Value)
	}
	for _, f := range s.EnvFiles {
		b, err := os.ReadFile(strings.TrimPrefix(f, "-"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			_, v, ok := strings.Cut(line, "=")
			if ok {
				vals = append(vals, strings.Trim(v, `"'`))
			}
		}
	}
	return vals
}

// probeAnswer is the health check's last answer in the last line it
// wrote to the journal ("kaylee-health: ID not healthy within 30s (last:
// HTTP 500 from 10.0.0.2:8080)"): what follows "(last: ", else the line
// without its "kaylee-health: ID " head.
func probeAnswer(line string) string {
	if _, why, ok := strings.Cut(line, "(last: "); ok {
		return strings.TrimSuffix(why, ")")
	}
	if rest, ok := strings.CutPrefix(line, "kaylee-health: "); ok {
		if _, msg, ok := strings.Cut(rest, " "); ok {
			return msg
		}
	}
	return line
}
