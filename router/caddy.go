package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Caddy runs a caddy process (caddy run) with a bootstrap configuration
// that holds only the admin API on AdminSocket, and starts it again when
// it exits; the Router then loads the routes into it.
type Caddy struct {
	Path        string // the caddy binary
	AdminSocket string
	Output      io.Writer // caddy's own log (its stderr and stdout); nil: discarded
	Log         *slog.Logger
}

// Run runs caddy until ctx ends, then stops it (SIGTERM: it finishes
// the requests in flight). Each time its admin API answers, ready is
// called (the router loads its configuration then). A caddy that exits is
// started again after a second; one that cannot start the first time is
// an error.
func (c *Caddy) Run(ctx context.Context, ready func()) error {
	boot, err := c.bootstrap()
	if err != nil {
		return err
	}
	defer os.Remove(boot)
	for first := true; ; first = false {
		err := c.runOnce(ctx, boot, ready)
		if ctx.Err() != nil {
			return nil
		}
		if first && errors.Is(err, errNotStarted) {
			return err
		}
		c.Log.Error("caddy exited; starting it again in a second", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

var errNotStarted = errors.New("caddy did not start")

// bootstrap writes the configuration caddy starts with: the admin API
// only, on the socket, whose directory it makes.
func (c *Caddy) bootstrap() (string, error) {
	if err := os.MkdirAll(filepath.Dir(c.AdminSocket), 0o750); err != nil {
		return "", fmt.Errorf("caddy admin socket: %w", err)
	}
	cfg := struct {
		Admin caddyAdmin `json:"admin"`
	}{caddyAdmin{Listen: "unix/" + c.AdminSocket, Origins: []string{adminHost}, Config: &adminConfig{}}}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("caddy bootstrap config: %w", err)
	}
	f, err := os.CreateTemp("", "kaylee-router-caddy-*.json")
	if err != nil {
		return "", fmt.Errorf("caddy bootstrap config: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", fmt.Errorf("caddy bootstrap config: %w", err)
	}
	return f.Name(), f.Close()
}

func (c *Caddy) runOnce(ctx context.Context, boot string, ready func()) error {
	removeStaleSocket(c.AdminSocket)
	cmd := exec.CommandContext(ctx, c.Path, "run", "--config", boot)
	cmd.Stdout, cmd.Stderr = c.Output, c.Output
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute // the grace period, and some
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %s: %w", errNotStarted, c.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	admin := NewAdmin(c.AdminSocket)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case err := <-exited:
			return fmt.Errorf("%w: %s run: %v", errNotStarted, c.Path, err)
		case <-tick.C:
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := admin.Config(actx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%w: its admin API on %s did not answer in 30s: %v", errNotStarted, c.AdminSocket, err)
		}
	}
	c.Log.Info("caddy runs", "pid", cmd.Process.Pid, "admin", c.AdminSocket)
	ready()
	err := <-exited
	if err == nil {
		err = errors.New("exited 0")
	}
	return fmt.Errorf("%s run: %w", c.Path, err)
}

// removeStaleSocket removes a socket file nothing listens on any more (a
// caddy that was killed leaves it, and a new one cannot bind it).
func removeStaleSocket(path string) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return
	}
	_ = os.Remove(path)
}
