package main

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/kaylee-gitops/kaylee/agent"
)

// A listener the agent cannot open is told by its flag, as before the
// runtime moved to package agent.
func TestListenFlagError(t *testing.T) {
	inUse := fmt.Errorf("listen tcp 127.0.0.1:9520: bind: %w", syscall.EADDRINUSE)
	other := errors.New("scheduler: unit prefix: bad")
	tests := []struct {
		err  error
		want string
	}{
		{&agent.ListenError{Listener: agent.ListenMain, Addr: "127.0.0.1:9520", Err: inUse},
			"--listen 127.0.0.1:9520: listen tcp 127.0.0.1:9520: bind: address already in use"},
		{&agent.ListenError{Listener: agent.ListenConsole, Addr: "127.0.0.1:9521", Err: inUse},
			"--console-listen 127.0.0.1:9521: listen tcp 127.0.0.1:9520: bind: address already in use"},
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
