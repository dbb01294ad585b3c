package main

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/kaylee-gitops/kaylee/agent"
)

// A listener the agent cannot open is told by its flag, as before the
// runtime moved to package agent. Nothing listens here: the addresses
// (TEST-NET-1) are only text.
func TestListenFlagError(t *testing.T) {
	t.Parallel()
	inUse := fmt.Errorf("listen tcp 192.0.2.10:8080: bind: %w", syscall.EADDRINUSE)
	other := errors.New("scheduler: unit prefix: bad")
	tests := []struct {
		err  error
		want string
	}{
		{&agent.ListenError{Listener: agent.ListenMain, Addr: "192.0.2.10:8080", Err: inUse},
			"--listen 192.0.2.10:8080: listen tcp 192.0.2.10:8080: bind: address already in use"},
		{&agent.ListenError{Listener: agent.ListenConsole, Addr: "192.0.2.10:8081", Err: inUse},
			"--console-listen 192.0.2.10:8081: listen tcp 192.0.2.10:8080: bind: address already in use"},
		{other, other.Error()},
	}
	for _, tt := range tests {
		got := listenFlagError(tt.err)
		if got.Error() != tt.want {
			t.Errorf("%v: %q, want %q", tt.err, got, tt.want)
		}
		if !errors.Is(got, syscall.EADDRINUSE) && got != other {
			t.Errorf("%v: the cause is lost", got)
		}
	}
	if listenFlagError(nil) != nil {
		t.Error("nil is an error")
	}
}
