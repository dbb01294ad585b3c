// Command testimage is the container the real fleet tier runs: a static HTTP
// server with a health endpoint and flags that make it misbehave on purpose.
// The tests build it with CGO_ENABLED=0 and `docker import` a tar holding
// only this binary, so no registry is needed.
//
//	GET /healthz  200 "ok" (500 with --unhealthy, or after --unhealthy-after)
//	GET /env      the environment, one NAME=value a line
//	GET /getenv?name=N  the value of N exactly as the process has it (404
//	              when unset): values with newlines are compared byte for byte
//	GET /envhash?name=N  the hex SHA-256 of N's value (404 when unset): a
//	              secret's value checked without showing it anywhere
//	GET /file?path=P  the file at P (volumes)
//	GET /version  the --version value
//	GET /count    with --count FILE: adds 1 to the number in FILE (0 if
//	              there is none) and answers the new number (state on a volume)
//	GET /         "testimage VERSION on ADDR" (what a sidekick reports)
//
// With --env-hash NAME it logs, at start, "sha256(NAME)=<hex>" of that
// variable's value (or "NAME unset"), never the value itself.
//
// On SIGTERM it logs the time, stops accepting connections, lets the
// requests in flight finish (up to --drain) and exits --term-exit (143).
//
// Run as rkt-sidekick (its argv0's base name: the sidekick image's
// entrypoint is a link to this binary), it is the seed's sidekick instead:
// see sidekick.go.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if filepath.Base(os.Args[0]) == sidekickName {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		code := sidekick(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	listen := flag.String("listen", ":8080", "address to serve on")
	version := flag.String("version", "v1", "what /version answers")
	exitCode := flag.Int("exit", -1, "exit at once with this code (a version that never runs)")
	crashAfter := flag.Duration("crash-after", 0, "exit 1 after this long (a crash loop under Restart=always)")
	startDelay := flag.Duration("start-delay", 0, "sleep this long before serving (a slow start)")
	unhealthy := flag.Bool("unhealthy", false, "answer 500 on /healthz")
	unhealthyAfter := flag.Duration("unhealthy-after", 0, "answer 500 on /healthz once serving this long (a replica that turns unhealthy)")
	termExit := flag.Int("term-exit", 143, "exit code on SIGTERM (143: as a process killed by it)")
	drain := flag.Duration("drain", 10*time.Second, "on SIGTERM, how long requests in flight may take to finish")
	countFile := flag.String("count", "", "file that /count keeps its counter in")
	envHash := flag.String("env-hash", "", "log the SHA-256 of this environment variable's value at start (never the value)")
	flag.Parse()

	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "testimage %s: %s\n", *version, fmt.Sprintf(format, a...))
	}
	if *envHash != "" {
		logf("%s", envHashLine(*envHash))
	}
	// On SIGTERM a serving server shuts down gracefully: it stops
	// accepting connections, lets the requests in flight finish (for up to
	// --drain) and exits --term-exit; one not serving yet exits at once.
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second}
	var servingNow atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		logf("%v at %s: exiting %d", s, time.Now().UTC().Format(time.RFC3339Nano), *termExit)
		if servingNow.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), *drain)
			start := time.Now()
			err := srv.Shutdown(ctx)
			cancel()
			logf("drained in %s (%v)", time.Since(start).Round(time.Millisecond), err)
		}
		os.Exit(*termExit)
	}()
	if *exitCode >= 0 {
		logf("exiting %d at once", *exitCode)
		os.Exit(*exitCode)
	}
	if *crashAfter > 0 {
		time.AfterFunc(*crashAfter, func() {
			logf("crashing after %s", *crashAfter)
			os.Exit(1)
		})
	}
	if *startDelay > 0 {
		logf("starting in %s", *startDelay)
		time.Sleep(*startDelay)
	}

	serving := time.Now()
	healthy := func() bool {
		return !*unhealthy && (*unhealthyAfter == 0 || time.Since(serving) < *unhealthyAfter)
	}
	srv.Handler = newMux(*version, *listen, *countFile, healthy)
	logf("serving on %s", *listen)
	servingNow.Store(true)
	if err := srv.ListenAndServe(); err != nil {
		if errors.Is(err, http.ErrServerClosed) {
			select {} // the signal handler exits once the requests in flight are done
		}
		logf("%v", err)
		os.Exit(1)
	}
}

// newMux serves the test image's endpoints (see the package comment).
func newMux(version, listen, countFile string, healthy func() bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !healthy() {
			http.Error(w, "unhealthy on purpose", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "testimage %s on %s\n", version, listen)
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, version) })
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		for _, e := range env {
			fmt.Fprintln(w, e)
		}
	})
	mux.HandleFunc("/getenv", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.URL.Query().Get("name"))
		if !ok {
			http.Error(w, "unset", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, v)
	})
	mux.HandleFunc("/envhash", func(w http.ResponseWriter, r *http.Request) {
		sum, ok := envSum(r.URL.Query().Get("name"))
		if !ok {
			http.Error(w, "unset", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, sum)
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	var countMu sync.Mutex
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		countMu.Lock()
		defer countMu.Unlock()
		n, err := bump(countFile)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, n)
	})
	return mux
}

// envSum is the hex SHA-256 of environment variable name's value; ok is
// false when it is unset.
func envSum(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return "", false
	}
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:]), true
}

// envHashLine is what --env-hash NAME logs: "sha256(NAME)=<hex>" or
// "NAME unset".
func envHashLine(name string) string {
	sum, ok := envSum(name)
	if !ok {
		return name + " unset"
	}
	return "sha256(" + name + ")=" + sum
}

// bump adds 1 to the counter in file (written to a temporary file and
// renamed, so a kill never leaves half a number) and returns it.
func bump(file string) (int, error) {
	if file == "" {
		return 0, fmt.Errorf("no --count file")
	}
	n := 0
	b, err := os.ReadFile(file)
	if err == nil {
		if n, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return 0, fmt.Errorf("counter in %s: %w", file, err)
		}
	} else if !os.IsNotExist(err) {
		return 0, err
	}
	n++
	if err := os.WriteFile(file+".tmp", []byte(fmt.Sprintln(n)), 0o644); err != nil {
		return 0, err
	}
	return n, os.Rename(file+".tmp", file)
}
