package agent

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/config"
)

// where names fields as a config file would.
func where(field string) string { return "kaylee.yaml:3: sources[0]." + field }

// OpenSource names the field that is wrong, as the config says where it
// was set, and records what allows rewinds.
func TestOpenSource(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name    string
		cs      config.Source
		wantErr string // "" for none
		check   func(t *testing.T, s Source)
	}{
		{"named from the repository", config.Source{Repo: "https://git.example.com/ops/units.git", Path: "prod"}, "", func(t *testing.T, s Source) {
			if s.Options.Source == "" || strings.ContainsAny(s.Options.Source, "/ ") {
				t.Errorf("source name %q", s.Options.Source)
			}
			if s.URL != "https://git.example.com/ops/units.git" || s.Options.Path != "prod" {
				t.Errorf("URL %q, path %q", s.URL, s.Options.Path)
			}
		}},
		{"a name with a slash", config.Source{Repo: "https://git.example.com/u.git", Name: "a/b"}, `kaylee.yaml:3: sources[0].name "a/b": no / or spaces`, nil},
		{"password file missing", config.Source{Repo: "https://git.example.com/u.git", PasswordFile: missing}, "kaylee.yaml:3: sources[0].passwordFile: open " + missing, nil},
		{"rewinds allowed in the file", config.Source{Repo: "https://git.example.com/u.git", AllowRewind: true}, "", func(t *testing.T, s Source) {
			if s.Options.AllowRewind != "kaylee.yaml:3: sources[0].allowRewind: true" {
				t.Errorf("AllowRewind %q", s.Options.AllowRewind)
			}
		}},
		{"no rewinds", config.Source{Repo: "https://git.example.com/u.git"}, "", func(t *testing.T, s Source) {
			if s.Options.AllowRewind != "" {
				t.Errorf("AllowRewind %q", s.Options.AllowRewind)
			}
		}},
		{"bad verify mode", config.Source{Repo: "https://git.example.com/u.git", Verify: &config.Verify{Mode: "sometimes"}}, "kaylee.yaml:3: sources[0].verify: ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cs.Where = where
			s, err := OpenSource(tt.cs, SourceEnv{CacheDir: t.TempDir()})
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q...", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}
