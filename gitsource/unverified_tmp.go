package gitsource

import "errors"

// ErrUnverified: placeholder until the verification branch lands.
var ErrUnverified = errors.New("revision not verified")

// VerificationError: placeholder.
type VerificationError struct{ Revision, Ref, Reason string }

func (e *VerificationError) Error() string { return e.Reason }
func (e *VerificationError) Unwrap() error { return ErrUnverified }
