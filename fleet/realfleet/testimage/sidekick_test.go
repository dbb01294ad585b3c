package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSidekickArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"the seed's words, as the YAML lists them",
			[]string{"--cidr 10.5.0.0/16", "--interval 10m", "--expireDir /services", "--format '$ip:80'", "/services/countly/k2_countly_1"},
			[]string{"--cidr", "10.5.0.0/16", "--interval", "10m", "--expireDir", "/services", "--format", "$ip:80", "/services/countly/k2_countly_1"}},
		{"split by a shell or systemd already",
			[]string{"--cidr", "10.5.0.0/16", "--format", "$ip:80", "/services/countly/x"},
			[]string{"--cidr", "10.5.0.0/16", "--format", "$ip:80", "/services/countly/x"}},
		{"quoted value on its own", []string{"--format", `"$ip:8080"`, "p"}, []string{"--format", "$ip:8080", "p"}},
		{"flag=value stays", []string{"--cidr=10.5.0.0/16", "p"}, []string{"--cidr=10.5.0.0/16", "p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sidekickArgs(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("sidekickArgs(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestSidekickReportsTheMainApp runs the sidekick against a main app on
// loopback: its own address is looked up in 127.0.0.0/8, and it retries
// until the main app answers.
func TestSidekickReportsTheMainApp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close() // nothing answers at first: the sidekick must retry
	r, w := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		code <- sidekick(ctx, []string{"--cidr 127.0.0.0/8", "--interval 1h", "--expireDir /services", "--format '$ip:" + port + "'", "/services/countly/k2_countly_1"}, w, &stderr)
		w.Close()
	}()
	lines := bufio.NewScanner(r)
	if !lines.Scan() {
		t.Fatal("no first line")
	}
	wantFail := "sidekick: countly/k2_countly_1: 127.0.0.1:" + port + " → GET http://localhost:" + port + "/ dial tcp"
	if !strings.HasPrefix(lines.Text(), wantFail) || !strings.HasSuffix(lines.Text(), "(retrying)") {
		t.Errorf("first line %q, want %q… (retrying)", lines.Text(), wantFail)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "testimage v1 on :80\nsecond line\n")
	}))
	if srv.Listener, err = net.Listen("tcp", "127.0.0.1:"+port); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Close()
	done := make(chan string)
	go func() {
		lines.Scan()
		done <- lines.Text()
	}()
	want := "sidekick: countly/k2_countly_1: 127.0.0.1:" + port + " → GET http://localhost:" + port + "/ 200 testimage v1 on :80"
	select {
	case got := <-done:
		if got != want {
			t.Errorf("report %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report 10s after the main app started")
	}
	cancel()
	go io.Copy(io.Discard, r)
	if c := <-code; c != 143 {
		t.Errorf("exit code %d after a stop, want 143", c)
	}
}

func TestSidekickRefusesOtherArguments(t *testing.T) {
	for _, args := range [][]string{
		{"/services/countly/x"},                      // no --cidr
		{"--cidr", "10.5.0.0/16"},                    // no PATH
		{"--cidr", "10.5.0.0/33", "/services/x"},     // bad cidr
		{"--cidr", "10.5.0.0/16", "--ttl", "1", "p"}, // unknown flag
	} {
		var stderr strings.Builder
		if code := sidekick(context.Background(), args, io.Discard, &stderr); code != 2 {
			t.Errorf("sidekick(%q) = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
}
