package gittest

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// Damage is what a crash or a full disk can leave of a cached repository.
type Damage struct {
	Name string
	Do   func(t testing.TB, dir string) // dir: the cached (bare) repository
}

// Damages are the kinds of damage the cache tests inflict.
func Damages() []Damage {
	write := func(name, data string) func(testing.TB, string) {
		return func(t testing.TB, dir string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return []Damage{
		{"packs truncated to half", func(t testing.TB, dir string) {
			n := 0
			err := filepath.WalkDir(filepath.Join(dir, "objects", "pack"), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				n++
				return os.Truncate(p, info.Size()/2)
			})
			if err != nil || n == 0 {
				t.Fatalf("truncating %d pack files: %v", n, err)
			}
		}},
		{"empty HEAD", write("HEAD", "")},
		{"objects deleted", func(t testing.TB, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "objects")); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage config", write("config", "[[[ not git config \x00\n")},
		{"empty config", write("config", "")},
		{"empty HEAD and config", func(t testing.TB, dir string) {
			write("HEAD", "")(t, dir)
			write("config", "")(t, dir)
		}},
	}
}

// PeakHeap runs f and returns the highest live heap seen while it ran,
// above what was live before, for benchmarks' memory figures.
func PeakHeap(f func() error) (uint64, error) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	peak := base
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak {
				peak = v
			}
		}
	}()
	err := f()
	close(done)
	<-stopped
	return peak - base, err
}
