package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestEnvHash: --env-hash's line and GET /envhash show the SHA-256 of a
// variable's value, never the value; an unset variable is told as such.
func TestEnvHash(t *testing.T) {
	const value = "p\"a's\\s $HOME `x` #=\n é "
	// sha256 of value, computed independently: printf '%s' "$value" | sha256sum
	const want = "d7b0c0b58fccd5831b1d9035c27275d5fe72675e6b4646fc272ea6a5e442a9dc"
	t.Setenv("KAYLEE_TEST_SECRET", value)
	got := envHashLine("KAYLEE_TEST_SECRET")
	if strings.Contains(got, "HOME") || !strings.HasPrefix(got, "sha256(KAYLEE_TEST_SECRET)=") {
		t.Errorf("envHashLine = %q", got)
	}
	if line := envHashLine("KAYLEE_TEST_NOT_SET"); line != "KAYLEE_TEST_NOT_SET unset" {
		t.Errorf("envHashLine of an unset variable = %q", line)
	}
	srv := httptest.NewServer(newMux("v1", ":8080", "", func() bool { return true }))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		code int
		body string
	}{
		{"KAYLEE_TEST_SECRET", 200, strings.TrimPrefix(got, "sha256(KAYLEE_TEST_SECRET)=")},
		{"KAYLEE_TEST_NOT_SET", 404, "unset\n"},
	} {
		resp, err := http.Get(srv.URL + "/envhash?name=" + tc.name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || string(b) != tc.body {
			t.Errorf("GET /envhash?name=%s = %d %q, want %d %q", tc.name, resp.StatusCode, b, tc.code, tc.body)
		}
	}
	if got != "sha256(KAYLEE_TEST_SECRET)="+want {
		t.Errorf("envHashLine = %q, want the hash %s", got, want)
	}
}
