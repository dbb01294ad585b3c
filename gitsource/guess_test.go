package gitsource

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// gitLog is what a smart HTTP server (git http-backend) was asked, in
// order: "GET refs", "POST want X" (X the name of the commit wanted), and
// "401 ..." for a request without the credentials. With hold, a listing
// waits (up to 10s) until a POST was answered: a fetch that asks for the
// pack while it lists the refs shows its POST first; one that asks after
// the listing shows the GET first, 10s late.
type gitLog struct {
	mu     gosync.Mutex
	names  map[string]string // commit hash → name
	lines  []string
	hold   bool
	posted chan struct{} // closed once the first POST was answered
	// atListing, when set, runs once, when a held listing goes on,
	// before the server lists the refs.
	atListing func()
}

var wantLine = regexp.MustCompile(`want ([0-9a-f]{40})`)

func (g *gitLog) around(user string) func(*http.Request, func()) {
	return func(req *http.Request, serve func()) {
		line := req.Method + " " + req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]
		post := req.Method == http.MethodPost
		if post {
			body, _ := io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(body))
			line = "POST want"
			for _, m := range wantLine.FindAllStringSubmatch(string(body), -1) {
				g.mu.Lock()
				name := g.names[m[1]]
				g.mu.Unlock()
				if name == "" {
					name = m[1][:7]
				}
				line += " " + name
			}
		}
		if u, _, ok := req.BasicAuth(); user != "" && (!ok || u != user) {
			line = "401 " + line
		}
		g.mu.Lock()
		hold, posted, atListing := g.hold, g.posted, g.atListing
		g.mu.Unlock()
		if hold && !post && posted != nil {
			select {
			case <-posted:
			case <-time.After(10 * time.Second):
				line += " (no POST came while it was held)"
			}
			if atListing != nil {
				atListing()
				g.mu.Lock()
				g.atListing = nil
				g.mu.Unlock()
			}
		}
		g.mu.Lock()
		g.lines = append(g.lines, line)
		g.mu.Unlock()
		serve()
		if post {
			g.mu.Lock()
			if g.posted != nil {
				close(g.posted)
				g.posted = nil
			}
			g.mu.Unlock()
		}
	}
}

// start forgets what was asked; with hold, the next listing waits for a
// POST.
func (g *gitLog) start(hold bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lines, g.hold, g.posted = nil, hold, nil
	if hold {
		g.posted = make(chan struct{})
	}
}

func (g *gitLog) name(name, hash string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.names[hash] = name
}

func (g *gitLog) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.lines, ", ")
}

// A fetch told the commit of a push webhook (WithAfter), over smart HTTP,
// asks for that commit's pack while it lists the refs, and takes it only
// when the listing names it as the ref's head: when the branch moved on
// since, the server never had it, or it was force-pushed away, the fetch
// gets the head the listing names, as a fetch without the commit does.
// When the cache holds the commit, or the Source has not fetched before,
// nothing is guessed. Each case ends with a fetch without the commit,
// which finds the ref unmoved (the cache's copy of the ref is right).
func TestFetchAfterWebhook(t *testing.T) {
	tests := []struct {
		name string
		// push changes the repository after the Source's first fetch
		// (when fetched) and returns the webhook's commit and the head.
		push    func(r *gittest.Repo, s *Source, log *gitLog) (after, head string)
		fetched bool   // the Source fetched before the push
		guessed bool   // the pack is asked for while the refs are listed
		want    string // the requests
	}{
		{
			name: "the webhook's commit is the head", fetched: true, guessed: true,
			push: func(r *gittest.Repo, _ *Source, log *gitLog) (string, string) {
				r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 2\n"})
				a := r.Commit("A")
				log.name("A", a)
				return a, a
			},
			want: "POST want A, GET refs",
		},
		{
			name: "the branch moved on since the webhook", fetched: true, guessed: true,
			push: func(r *gittest.Repo, _ *Source, log *gitLog) (string, string) {
				r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 2\n"})
				a := r.Commit("A")
				r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 3\n"})
				b := r.Commit("B")
				log.name("A", a)
				log.name("B", b)
				return a, b
			},
			want: "POST want A, GET refs, POST want B",
		},
		{
			name: "the server does not have the webhook's commit", fetched: true, guessed: true,
			push: func(r *gittest.Repo, _ *Source, log *gitLog) (string, string) {
				r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 2\n"})
				a := r.Commit("A")
				log.name("A", a)
				log.name("X", strings.Repeat("ab", 20))
				return strings.Repeat("ab", 20), a
			},
			want: "POST want X, GET refs, POST want A",
		},
		{
			name: "the webhook's commit was force-pushed away", fetched: true, guessed: true,
			push: func(r *gittest.Repo, _ *Source, log *gitLog) (string, string) {
				r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 2\n"})
				a := r.Commit("A")
				r.Git("reset", "-q", "--hard", "HEAD~1")
				r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 4\n"})
				c := r.Commit("C")
				log.name("A", a)
				log.name("C", c)
				return a, c
			},
			want: "POST want A, GET refs, POST want C",
		},
		{
			// (git servers can lag behind their webhooks: the commit
			// reached the ref between the two requests)
			name: "the server had not the webhook's commit when asked for its pack", fetched: true, guessed: true,
			push: func(r *gittest.Repo, _ *Source, log *gitLog) (string, string) {
				one := r.Git("rev-parse", "HEAD")
				r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 2\n"})
				a := r.Commit("A")
				r.Git("update-ref", "refs/heads/main", one)
				log.name("A", a)
				log.atListing = func() {
					// On the server's goroutine: no t.Fatal here; a ref
					// not moved fails the fetch's checks.
					_ = exec.Command("git", "-C", r.Dir, "update-ref", "refs/heads/main", a).Run()
				}
				return a, a
			},
			want: "POST want A, GET refs, POST want A",
		},
		{
			name: "the cache holds the webhook's commit (the branch was moved back)", fetched: true,
			push: func(r *gittest.Repo, s *Source, log *gitLog) (string, string) {
				one := r.Git("rev-parse", "HEAD")
				r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 2\n"})
				r.Commit("A")
				if _, err := s.Fetch(context.Background()); err != nil {
					panic(err)
				}
				r.Git("reset", "-q", "--hard", one)
				return one, one
			},
			want: "GET refs",
		},
		{
			name: "the first fetch", fetched: false,
			push: func(r *gittest.Repo, _ *Source, log *gitLog) (string, string) {
				r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: 2\n"})
				a := r.Commit("A")
				log.name("A", a)
				return a, a
			},
			want: "GET refs, POST want A",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := gittest.NewRepo(t)
			r.Write(map[string]string{"units/a.yaml": "name: a\n", "units/b.yaml": "name: b\n"})
			r.Commit("one")
			log := &gitLog{names: map[string]string{}}
			url := r.ServeHTTPAround("", "", log.around(""))
			s, err := New(Config{URL: url, Path: "units", CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.fetched {
				if _, err := s.Fetch(ctx); err != nil {
					t.Fatal(err)
				}
			}
			after, head := tc.push(r, s, log)
			log.start(tc.guessed)
			snap, err := s.Fetch(WithAfter(ctx, after))
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if snap.Revision != head {
				t.Errorf("fetched %s, want the head %s (the webhook said %s)", snap.Revision, head, after)
			}
			if got, want := fileData(snap, "units/a.yaml"), r.Git("show", head+":units/a.yaml")+"\n"; got != want {
				t.Errorf("units/a.yaml: %q, want %q", got, want)
			}
			if got := log.String(); got != tc.want {
				t.Errorf("requests %q, want %q", got, tc.want)
			}
			log.start(false)
			again, err := s.Fetch(ctx)
			if err != nil || again != snap {
				t.Errorf("fetch again: %+v, %v; want the same snapshot", again, err)
			}
			if got := log.String(); got != "GET refs" {
				t.Errorf("fetch again: requests %q, want %q", got, "GET refs")
			}
		})
	}
}

func fileData(snap *Snapshot, path string) string {
	for _, f := range snap.Files {
		if f.Path == path {
			return string(f.Data)
		}
	}
	return ""
}

// The guessed pack is asked for with the Source's credentials (its own
// session), and over SSH a commit changes nothing: one git-upload-pack
// session a fetch, the refs listed, then the pack asked for.
func TestFetchAfterWebhookAuthAndSSH(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"units/a.yaml": "name: a\n"})
	r.Commit("one")
	log := &gitLog{names: map[string]string{}}
	base := r.ServeHTTPAround("kay", "s3cret", log.around("kay"))
	key := gittest.NewKey(t)
	srv := r.ServeSSH(key.Public)
	sshAuth, err := Auth(srv.URL, AuthConfig{SSHKeyFile: key.File, KnownHostsFile: srv.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	httpAuth, err := Auth(base, AuthConfig{Username: "kay", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	inURL := strings.Replace(base, "http://", "http://kay:s3cret@", 1)
	sources := map[string]Config{
		"basic auth":         {URL: base, Auth: httpAuth},
		"credentials in URL": {URL: inURL},
		"ssh":                {URL: srv.URL, Auth: sshAuth},
	}
	ctx := context.Background()
	srcs := map[string]*Source{}
	for name, cfg := range sources {
		cfg.Path, cfg.CacheDir = "units", t.TempDir()
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Fetch(ctx); err != nil {
			t.Fatalf("%s: first fetch: %v", name, err)
		}
		srcs[name] = s
	}
	for i, name := range []string{"basic auth", "credentials in URL", "ssh"} {
		r.Write(map[string]string{"units/a.yaml": "name: a\nreplicas: " + string(rune('2'+i)) + "\n"})
		a := r.Commit(name)
		log.name("A", a)
		log.start(name != "ssh")
		execs := srv.Execs()
		snap, err := srcs[name].Fetch(WithAfter(ctx, a))
		if err != nil || snap.Revision != a {
			t.Fatalf("%s: %+v, %v; want %s", name, snap, err, a)
		}
		if name == "ssh" {
			if n := srv.Execs() - execs; n != 1 {
				t.Errorf("ssh: %d git-upload-pack sessions, want 1", n)
			}
			continue
		}
		if got, want := log.String(), "POST want A, GET refs"; got != want {
			t.Errorf("%s: requests %q, want %q", name, got, want)
		}
	}
}
