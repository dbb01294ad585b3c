// Command testimage is the container the real fleet tier runs: a static HTTP
// server with a health endpoint and flags that make it misbehave on purpose.
// The tests build it with CGO_ENABLED=0 and `docker import` a tar holding
// only this binary, so no registry is needed.
//
//	GET /healthz  200 "ok" (500 with --unhealthy, or after --unhealthy-after)
//	GET /env      the environment, one NAME=value a line
//	GET /file?path=P  the file at P (volumes)
//	GET /version  the --version value
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	version := flag.String("version", "v1", "what /version answers")
	exitCode := flag.Int("exit", -1, "exit at once with this code (a version that never runs)")
	crashAfter := flag.Duration("crash-after", 0, "exit 1 after this long (a crash loop under Restart=always)")
	startDelay := flag.Duration("start-delay", 0, "sleep this long before serving (a slow start)")
	unhealthy := flag.Bool("unhealthy", false, "answer 500 on /healthz")
	unhealthyAfter := flag.Duration("unhealthy-after", 0, "answer 500 on /healthz once serving this long (a replica that turns unhealthy)")
	termExit := flag.Int("term-exit", 143, "exit code on SIGTERM (143: as a process killed by it)")
	flag.Parse()

	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "testimage %s: %s\n", *version, fmt.Sprintf(format, a...))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		logf("%v: exiting %d", s, *termExit)
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
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if *unhealthy || *unhealthyAfter > 0 && time.Since(serving) >= *unhealthyAfter {
			http.Error(w, "unhealthy on purpose", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, *version) })
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		for _, e := range env {
			fmt.Fprintln(w, e)
		}
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	logf("serving on %s", *listen)
	if err := http.ListenAndServe(*listen, mux); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
}
