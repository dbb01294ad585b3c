package agent

import (
	"crypto/rand"
	"fmt"
	"os"
)

// NewID names this process in elections and in what it records:
// host/pid/random, the suffix telling runs in one process apart.
func NewID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}
