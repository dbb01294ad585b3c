package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
)

// At most MaxStreams event streams are open at once: one more gets 503
// with a JSON error, and a stream that ends frees its place.
func TestStreamLimit(t *testing.T) {
	s := store.New(etcdtest.New(t).Client(t), store.DefaultPrefix)
	mux := http.NewServeMux()
	New(Config{Store: s, MaxStreams: 2}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	open := func() (*http.Response, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/stream", nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return r, func() { cancel(); r.Body.Close() }
	}
	tests := []struct {
		name  string
		close int // index of a stream to close first, or -1
		want  int
	}{
		{"first", -1, http.StatusOK},
		{"second", -1, http.StatusOK},
		{"third, over the limit", -1, http.StatusServiceUnavailable},
		{"after the first ended", 0, http.StatusOK},
	}
	var ends []context.CancelFunc
	defer func() {
		for _, end := range ends {
			end()
		}
	}()
	for _, tt := range tests {
		if tt.close >= 0 {
			ends[tt.close]()
			time.Sleep(200 * time.Millisecond) // the handler returns
		}
		r, end := open()
		ends = append(ends, end)
		if r.StatusCode != tt.want {
			t.Fatalf("%s: %d, want %d", tt.name, r.StatusCode, tt.want)
		}
		if tt.want == http.StatusServiceUnavailable {
			var e apiError
			if err := json.NewDecoder(r.Body).Decode(&e); err != nil || !strings.Contains(e.Error, "too many event streams open (2)") ||
				r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Retry-After") == "" {
				t.Fatalf("%s: %v %q %v", tt.name, err, e.Error, r.Header)
			}
		}
	}
}
