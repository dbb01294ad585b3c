package gitsource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/gitsource/gittest"
)

// The snapshot carries the repository's .kaylee/recipients, from its root
// whatever the source's path, never as a unit file, and bounded like one.
func TestFetchRecipients(t *testing.T) {
	const recipients = "db age1d5e53pe9ch9f3skw2sskw98lmumqapxacu0tvlxt8t2rk7ajryqs4fapks role=db\n"
	for _, tt := range []struct {
		name  string
		files map[string]string
		link  string // .kaylee/recipients as a symlink to this
		path  string
		want  string // its data; "" none
		err   string // its file error
		units string
	}{
		{name: "at the root, source path units", files: map[string]string{".kaylee/recipients": recipients, "units/a.yaml": "name: a\n"},
			path: "units", want: recipients, units: "units/a.yaml"},
		{name: "at the root, source at the root", files: map[string]string{".kaylee/recipients": recipients, ".kaylee/x.yaml": "name: x\n", "a.yaml": "name: a\n"},
			want: recipients, units: "a.yaml"},
		{name: "only the root's counts", files: map[string]string{"units/.kaylee/recipients": recipients, "units/a.yaml": "name: a\n"},
			path: "units", units: "units/a.yaml"},
		{name: "none", files: map[string]string{"a.yaml": "name: a\n"}, units: "a.yaml"},
		{name: "too big", files: map[string]string{".kaylee/recipients": strings.Repeat("#", MaxFileSize+1), "a.yaml": "name: a\n"},
			err: ".kaylee/recipients: 1048577 bytes;", units: "a.yaml"},
		{name: "a symlink inside the repository", files: map[string]string{"keys/recipients": recipients, "a.yaml": "name: a\n"},
			link: "../keys/recipients", want: recipients, units: "a.yaml"},
		{name: "a symlink leaving it", files: map[string]string{"a.yaml": "name: a\n"},
			link: "/etc/passwd", err: ".kaylee/recipients: symlink to /etc/passwd leaves the repository", units: "a.yaml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := gittest.NewRepo(t)
			r.Write(tt.files)
			if tt.link != "" {
				if err := os.MkdirAll(filepath.Join(r.Dir, ".kaylee"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(tt.link, filepath.Join(r.Dir, ".kaylee", "recipients")); err != nil {
					t.Fatal(err)
				}
			}
			r.Commit("one")
			snap, err := fetch(t, Config{URL: r.FileURL(), Path: tt.path})
			if err != nil {
				t.Fatal(err)
			}
			if fileNames(snap) != tt.units {
				t.Errorf("unit files %s, want %s", fileNames(snap), tt.units)
			}
			switch {
			case tt.want == "" && snap.Recipients != nil:
				t.Errorf("recipients %+v, want none", snap.Recipients)
			case tt.want != "" && (snap.Recipients == nil || string(snap.Recipients.Data) != tt.want || snap.Recipients.Path != ".kaylee/recipients"):
				t.Errorf("recipients %+v, want %q", snap.Recipients, tt.want)
			}
			var errs []string
			for _, e := range snap.Errors {
				errs = append(errs, e.Error())
			}
			if got := strings.Join(errs, "\n"); tt.err == "" && got != "" || !strings.HasPrefix(got, tt.err) {
				t.Errorf("file errors %q, want %q", got, tt.err)
			}
		})
	}
}
