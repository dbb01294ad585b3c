package realfleet_test

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
)

// TestServingWaitsForASlowAnswer: a container that answers /healthz after
// Get's 2 s serves (a busy machine); one that answers 500, or refuses,
// does not.
func TestServingWaitsForASlowAnswer(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name  string
		delay time.Duration // of the first answer
		code  int           // 0: nothing listens
		want  bool
	}{
		{"answers at once", 0, http.StatusOK, true},
		{"answers after 3s", 3 * time.Second, http.StatusOK, true},
		{"answers 500", 0, http.StatusInternalServerError, false},
		{"refuses", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ip := net.IPv4(127, 0, 77, byte(1+i)).String() // Serving asks port 8080
			if tc.code != 0 {
				l, err := net.Listen("tcp", ip+":8080")
				if err != nil {
					t.Fatal(err)
				}
				var asked atomic.Int32
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if asked.Add(1) == 1 {
						time.Sleep(tc.delay)
					}
					w.WriteHeader(tc.code)
				})}
				go srv.Serve(l)
				t.Cleanup(func() { srv.Close() })
			}
			if got := (realfleet.Container{IP: ip}).Serving(context.Background()); got != tc.want {
				t.Errorf("Serving = %v, want %v", got, tc.want)
			}
		})
	}
}
