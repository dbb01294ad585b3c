package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kaylee-gitops/kaylee/config"
	"github.com/kaylee-gitops/kaylee/notify"
	"github.com/kaylee-gitops/kaylee/store"
)

// newNotifications builds the endpoints of a config file's notifications:
// (each with its secret and the kinds it asked for) and the follower that
// tells them the event log while this process leads the notifications.
// With no endpoints, its Run returns at once: the process never leads.
func newNotifications(cf *config.File, s *store.Store, id string, ttl time.Duration, log *slog.Logger) (*notify.Follower, error) {
	var targets []notify.Target
	if cf != nil {
		for _, c := range cf.Notifications {
			var secret []byte
			if c.SecretFile != "" {
				b, err := os.ReadFile(c.SecretFile)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", c.Where("secretFile"), err)
				}
				if secret = []byte(strings.TrimSpace(string(b))); len(secret) == 0 {
					return nil, fmt.Errorf("%s: %s is empty", c.Where("secretFile"), c.SecretFile)
				}
			}
			if _, err := notify.New([]notify.Endpoint{{URL: c.URL}}, notify.Options{}); err != nil {
				return nil, fmt.Errorf("%s: %w", c.Where("url"), err)
			}
			targets = append(targets, notify.Target{Endpoint: notify.Endpoint{URL: c.URL, Secret: secret}, Wants: c.Wants})
		}
	}
	return notify.NewFollower(s, targets, notify.FollowOptions{ID: id, TTL: ttl, Notifier: notify.Options{Log: log}})
}
