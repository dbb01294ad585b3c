package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzLoad: any input gives a file or *Errors naming the file, never a
// panic, and a loaded file's sources all have a valid name and a repo.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(twoSources))
	f.Add([]byte("sources:\n- {name: a, repo: r, interval: 1s, maxPrune: 100}\n"))
	f.Add([]byte("sources: [\n"))
	f.Add([]byte("sources:\n- name: a\n  repo: r\n  freeze:\n  - {schedule: \"0 18 * * FRI\", duration: 62h, timeZone: Europe/Berlin, reason: weekend}\n  - {schedule: \"@every 1h\", duration: 0s, timeZone: Nowhere}\n"))
	f.Add([]byte("sources:\n- name: &a x\n  repo: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Load("fuzz.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatal("a file with an error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("%T %v is not an *Error", err, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			return
		}
		if (len(file.Sources) == 0) != (file.NeedSources() != nil) {
			t.Fatal("NeedSources disagrees with the sources loaded")
		}
		for _, s := range file.Sources {
			if !ValidName(s.Name) || s.Repo == "" {
				t.Fatalf("loaded a bad source %+v", s)
			}
		}
	})
}
