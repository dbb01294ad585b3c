// Package browsertest drives a real headless Chromium (Debian's chromium)
// from Go tests with chromedp, and keeps screenshots as test artifacts.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds Chromium: $KAYLEE_TEST_CHROMIUM, or chromium (Debian), or
// chromium-browser, google-chrome on the PATH.
func Path() (string, bool) {
	if p := os.Getenv("KAYLEE_TEST_CHROMIUM"); p != "" {
		return p, true
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// New starts a headless Chromium for the test, with a window of width ×
// height, and returns a tab's context; both end with the test. Without
// Chromium the test is skipped, except in CI (CI=true), where it fails.
func New(t *testing.T, width, height int) context.Context {
	t.Helper()
	path, ok := Path()
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found: CI must run the browser tests (apt-get install chromium)")
		}
		t.Skip("chromium not found (apt-get install chromium): browser test skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root, Chromium needs it
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser, which lives as long as the context
	// of that run: it must be ctx itself, not one with a timeout.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v", path, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start within 60s", path)
	}
	return ctx
}

// ArtifactDir is where a test keeps what it shows: the directory
// $KAYLEE_TEST_ARTIFACTS/<test name> (scripts/test sets it), or a
// temporary directory removed after the test.
func ArtifactDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("KAYLEE_TEST_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Screenshot saves a PNG of the whole page as name.png in the test's
// artifact directory and returns its path.
func Screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(ArtifactDir(t), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
	}
	t.Logf("screenshot: %s", p)
	return p
}

// Clipped is a script that lists the elements matching selector whose text
// is not wholly readable: wider than the element, cut by the box that
// scrolls around it (the nearest .scroll) or by the window, or ended with
// an ellipsis. Each is named by the start of its text and what is wrong.
func Clipped(selector string) string {
	return `(() => [...document.querySelectorAll(` + strconv.Quote(selector) + `)].map((m) => {
	const sc = m.closest(".scroll"), box = (sc || document.documentElement).getBoundingClientRect(), r = m.getBoundingClientRect(), cs = getComputedStyle(m);
	const bad = [];
	if (m.scrollWidth > m.clientWidth + 1) bad.push("text " + m.scrollWidth + "px wide in a cell of " + m.clientWidth + "px");
	if (r.left < box.left - 1 || r.right > box.right + 1) bad.push("cell at " + Math.round(r.left) + "-" + Math.round(r.right) + "px, its box shows " + Math.round(box.left) + "-" + Math.round(box.right) + "px");
	if (r.right > document.documentElement.clientWidth + 1) bad.push("past the window's " + document.documentElement.clientWidth + "px");
	if (cs.textOverflow === "ellipsis" && cs.overflow !== "visible") bad.push("ellipsis");
	return bad.length ? JSON.stringify(m.textContent.slice(0, 50)) + ": " + bad.join(", ") : "";
}).filter(Boolean))()`
}
