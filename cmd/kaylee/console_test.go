package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			return r.StatusCode, string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// --console-listen gives the dashboard and API a listener of their own;
// --listen then serves only health, metrics and webhooks; off serves none.
func TestConsoleListen(t *testing.T) {
	t.Parallel()
	e := etcdtest.New(t)
	repo := gittest.NewRepo(t)
	repo.Write(map[string]string{"units/web.yaml": unitWeb})
	repo.Commit("web")
	env := map[string]string{"KAYLEE_ETCD_ENDPOINTS": e.ClientURL(), "KAYLEE_CACHE_DIR": t.TempDir()}
	tests := []struct {
		console string
		onMain  int // GET /api/v1/units on --listen
	}{
		{"", http.StatusOK},
		{"own", http.StatusNotFound},
		{"off", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("console-listen=%q", tt.console), func(t *testing.T) {
			main := freePort(t)
			args := []string{"agent", "--repo", repo.FileURL(), "--path", "units", "--listen", main, "--interval", "1h", "--lease-ttl", "2s"}
			own := ""
			switch tt.console {
			case "own":
				own = freePort(t)
				args = append(args, "--console-listen", own)
			case "off":
				args = append(args, "--console-listen", "off")
			}
			p := startKaylee(t, env, args...)
			if code, _ := httpGet(t, "http://"+main+"/metrics"); code != http.StatusOK {
				t.Errorf("metrics on --listen: %d", code)
			}
			if code, body := httpGet(t, "http://"+main+"/api/v1/units"); code != tt.onMain {
				t.Errorf("API on --listen: %d %s, want %d", code, body, tt.onMain)
			}
			if own != "" {
				code, body := httpGet(t, "http://"+own+"/api/v1/units")
				if code != http.StatusOK || !strings.HasPrefix(body, "[") {
					t.Errorf("API on --console-listen: %d %s", code, body)
				}
				if code, _ := httpGet(t, "http://"+own+"/metrics"); code != http.StatusNotFound {
					t.Errorf("metrics on --console-listen: %d, want 404", code)
				}
			}
			if code, err := p.Stop(); err != nil || code != 0 {
				t.Errorf("stop: %d %v\n%s", code, err, p.errb.String())
			}
		})
	}
}
