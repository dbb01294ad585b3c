package gitsource

import "errors"

// ErrUnverified: placeholder until the verification branch lands.
var ErrUnverified = errors.New("revision not verified")
