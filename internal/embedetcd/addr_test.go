package embedetcd

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

// A port taken between the check and etcd's bind is ErrAddrInUse too, so
// that a caller picking free ports tries others: etcd reports the bind's
// error wrapped, or only in its text.
func TestAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, bindErr := net.Listen("tcp", ln.Addr().String())
	if bindErr == nil {
		t.Fatal("a second listener on a taken port")
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"the bind's error", bindErr, true},
		{"wrapped", fmt.Errorf("listen client: %w", bindErr), true},
		{"as text only", errors.New("listen tcp " + ln.Addr().String() + ": bind: address already in use"), true},
		{"another error", errors.New("member already bootstrapped"), false},
	}
	for _, tt := range tests {
		if got := addrInUse(tt.err); got != tt.want {
			t.Errorf("%s: addrInUse(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
