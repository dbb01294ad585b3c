package sync

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource"
)

// FuzzParse: any two files parse without panic; every error names one of
// the files; a unit is either applied (valid, defined once) or held or
// absent, never both applied and in error.
func FuzzParse(f *testing.F) {
	f.Add(webV1, apiDB)
	f.Add(webV1, webV2)
	f.Add("name: a\napps: [\n", "---\n---\nname: b\napps:\n- image: x\n")
	f.Add("spec:\n  image: x\nname: old\n", "{\"name\":\"j\",\"apps\":[{\"image\":\"x\"}]}")
	f.Add(site("a", "x", "a.example.com", "*.example.com"), site("b", "x", "b.example.com", "a.example.com")+"---\n"+site("c", "x", "x.a.example.com"))
	f.Add(dependant("a", "x", "b"), dependant("b", "x", "a")+"---\n"+dependant("c", "x", "c", "dbb", "c"))
	f.Add("name: a\napps: [{image: x}]\nfreeze: [{schedule: \"0 18 * * FRI\", duration: 62h, timeZone: Europe/Berlin}]\n", "name: b\napps: [{image: x}]\nfreeze: [{schedule: \"61 * * * *\", duration: 0s, timeZone: Nowhere}]\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		snap := &gitsource.Snapshot{Files: []gitsource.File{{Path: "u/a.yaml", Data: []byte(a)}, {Path: "u/b.yaml", Data: []byte(b)}}}
		p, _ := parse(context.Background(), snap, "")
		for _, e := range p.errors {
			if e.File != "u/a.yaml" && e.File != "u/b.yaml" {
				t.Fatalf("error without its file: %+v", e)
			}
		}
		claimed := map[string]string{} // domain → the unit not held that claims it
		for name, docs := range p.defs {
			if _, held := p.held[name]; !held {
				for _, dom := range docs[0].Spec.Domains {
					if other, ok := claimed[dom]; ok {
						t.Fatalf("%s claimed by %s and %s, neither held", dom, other, name)
					}
					claimed[dom] = name
				}
			}
			if _, held := p.held[name]; !held && len(docs) != 1 {
				t.Fatalf("%s defined %d times and not held", name, len(docs))
			}
			for _, d := range docs {
				if d.Err != nil {
					t.Fatalf("invalid document among defs: %v", d.Err)
				}
			}
		}
	})
}

// FuzzWebhook: no payload or header makes the handler panic, and nothing
// unsigned triggers a sync.
func FuzzWebhook(f *testing.F) {
	f.Add(`{"after":"`+strings.Repeat("a", 40)+`"}`, "sha256=00", "")
	f.Add("{}", "", "secret")
	f.Add("\x00", "sha256=zz", "wrong")
	f.Add(`{"repository":{"clone_url":"ssh://git@h:22/a.git","ssh_url":"git@h:a"}}`, "", "secret")
	f.Fuzz(func(t *testing.T, body, sig, token string) {
		triggered := false
		h := &Webhooks{Secret: []byte("secret"), Sources: []WebhookSource{{Name: "units", URL: "git@github.com:org/units.git", Ref: "main"}},
			Trigger: func(context.Context, string, string) error {
				triggered = true
				return nil
			}}
		req := httptest.NewRequest("POST", "/hooks/git", strings.NewReader(body))
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		if token != "" {
			req.Header.Set("X-Gitlab-Token", token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if triggered && token != "secret" && sig != githubSig("secret", body) {
			t.Fatalf("unsigned webhook triggered a sync (sig %q token %q)", sig, token)
		}
	})
}
