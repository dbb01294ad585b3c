package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/kaylee-gitops/kaylee/store"
	"github.com/kaylee-gitops/kaylee/store/etcdtest"
	"github.com/kaylee-gitops/kaylee/view"
)

// How long `run --wait` (waitRollouts) takes to notice that the scheduler
// wrote the status it waits for: each round starts a wait on a unit that
// is progressing, writes its running status a while later (the delay
// varies, so that it falls anywhere in a polling period), and times the
// write to the wait's return. Figures, not a check:
//
//	go test -run '^$' -bench WaitRolloutsNotice -benchtime 20x ./cmd/kaylee
func BenchmarkWaitRolloutsNotice(b *testing.B) {
	e := etcdtest.New(b)
	s := store.New(e.Client(b), store.DefaultPrefix)
	ctx := context.Background()
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		name, hash := fmt.Sprintf("u%d", i), fmt.Sprintf("h%d", i)
		if err := s.PutStatus(ctx, &store.Status{Name: name, SpecHash: hash, Phase: store.PhaseProgressing, Desired: 1}, store.Fence{}); err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- waitRollouts(ctx, s, io.Discard, func(string) map[string]view.Want { return map[string]view.Want{name: {Hash: hash}} }, time.Minute)
		}()
		time.Sleep(100*time.Millisecond + time.Duration(i*137%500)*time.Millisecond)
		wrote := time.Now()
		if err := s.PutStatus(ctx, &store.Status{Name: name, SpecHash: hash, Phase: store.PhaseRunning, Desired: 1, Running: 1}, store.Fence{}); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(wrote))
	}
	slices.Sort(took)
	var sum time.Duration
	for _, d := range took {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(sum/time.Duration(len(took))), "ms-mean/notice")
	b.ReportMetric(ms(took[len(took)/2]), "ms-median/notice")
	b.ReportMetric(ms(took[len(took)-1]), "ms-max/notice")
}
