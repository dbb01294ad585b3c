package gitsource

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/internal/testutil"
)

const (
	testPassword = "s3cretPW"
	testToken    = "ghp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)

// noSecret fails when s shows a test secret, in any case.
func noSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{testPassword, testToken} {
		if strings.Contains(strings.ToLower(s), strings.ToLower(secret)) {
			t.Errorf("%s shows the secret %q: %s", what, secret, s)
		}
	}
}

// A fetch that fails names the host and the path, never the credentials
// of the URL or of the auth: with the server down, answering 401 or 404,
// or echoing the credentials it got; errors.Is still sees go-git's
// errors.
func TestFetchErrorsHideCredentials(t *testing.T) {
	down := testutil.FreeAddr(t) // nothing listens there
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"web.yaml": "name: web\n"})
	r.Commit("web")
	other := strings.TrimPrefix(r.ServeHTTP("admin", "other-secret"), "http://")
	open := strings.TrimPrefix(r.ServeHTTP("", ""), "http://")
	openHost, _, _ := strings.Cut(open, "/")
	// A server that answers 401 with the credentials it was sent.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		u, p, _ := req.BasicAuth()
		http.Error(w, "bad credentials "+u+":"+p+" for "+req.URL.String(), http.StatusUnauthorized)
	}))
	t.Cleanup(echo.Close)
	echoHost := strings.TrimPrefix(echo.URL, "http://")

	tests := []struct {
		name   string
		url    string
		auth   transport.AuthMethod
		is     error
		wantIn []string
	}{
		{"password, server down", "http://kaylee:" + testPassword + "@" + down + "/units.git", nil, nil,
			[]string{"listing refs of http://***@" + down + "/units.git", "connection refused"}},
		{"token as user, server down", "http://" + testToken + "@" + down + "/units.git", nil, nil,
			[]string{"listing refs of http://***@" + down + "/units.git", "connection refused"}},
		{"password, 401", "http://kaylee:" + testPassword + "@" + other, nil, transport.ErrAuthenticationRequired,
			[]string{"http://***@" + other, "authentication required"}},
		{"token as user, 404", "http://" + testToken + "@" + openHost + "/nope.git", nil, transport.ErrRepositoryNotFound,
			[]string{"http://***@" + openHost + "/nope.git", "repository not found"}},
		{"percent-encoded password echoed", "http://kaylee:" + testPassword + "%2Fx@" + echoHost + "/r.git", nil, transport.ErrAuthenticationRequired,
			[]string{"http://***@" + echoHost + "/r.git", "bad credentials kaylee:***"}},
		{"token as user echoed", "http://" + testToken + "@" + echoHost + "/r.git", nil, transport.ErrAuthenticationRequired,
			[]string{"bad credentials ***:"}},
		{"auth password echoed", "http://" + echoHost + "/r.git", &githttp.BasicAuth{Username: "git", Password: testToken}, transport.ErrAuthenticationRequired,
			[]string{"http://" + echoHost + "/r.git", "bad credentials git:***"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{URL: tt.url, Auth: tt.auth, CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			noSecret(t, "URL()", s.URL())
			_, err = s.Fetch(context.Background())
			if err == nil {
				t.Fatal("fetched")
			}
			noSecret(t, "the error", err.Error())
			for _, w := range tt.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error lacks %q: %v", w, err)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}
}

// The cache's remote holds the URL with its credentials masked, and a
// cache written by an older version (the URL as given) is corrected.
func TestCacheHoldsNoCredentials(t *testing.T) {
	r := gittest.NewRepo(t)
	r.Write(map[string]string{"web.yaml": "name: web\n"})
	r.Commit("web")
	host := strings.TrimPrefix(r.ServeHTTP("kaylee", testPassword), "http://")
	raw := "http://kaylee:" + testPassword + "@" + host
	cache := t.TempDir()
	config := func() string {
		t.Helper()
		var out []string
		m, _ := filepath.Glob(filepath.Join(cache, "git", "*", "config"))
		for _, f := range m {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
		if len(out) == 0 {
			t.Fatal("no cache config")
		}
		return strings.Join(out, "\n")
	}
	s, err := New(Config{URL: raw, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := config(); !strings.Contains(c, "http://***@"+host) {
		t.Errorf("the cache's remote should be the masked URL:\n%s", c)
	}
	noSecret(t, "the cache's config", config())

	// An older version wrote the URL as given: the next fetch corrects it.
	m, _ := filepath.Glob(filepath.Join(cache, "git", "*", "config"))
	old := strings.ReplaceAll(config(), "http://***@"+host, raw)
	if err := os.WriteFile(m[0], []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Write(map[string]string{"api.yaml": "name: api\n"})
	r.Commit("api")
	again, err := New(Config{URL: raw, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := again.Fetch(context.Background())
	if err != nil || len(snap.Files) != 2 {
		t.Fatalf("fetch after the correction: %v %+v", err, snap)
	}
	noSecret(t, "the cache's config", config())
}
