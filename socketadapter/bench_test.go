package socketadapter_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/auraos/realtime/socketadapter"
	"github.com/auraos/realtime/socketadapter/sockettest"
)

// BenchmarkFloodIsolation measures a calm socket's send_message ack latency
// alone and while another socket floods 2,000 messages as fast as it can.
// Run: go test -run '^$' -bench FloodIsolation -benchtime 1x ./socketadapter
func BenchmarkFloodIsolation(b *testing.B) {
	for b.Loop() {
		st := startStack(b, socketadapter.Config{})
		calm := sockettest.Dial(b, st.URL, "websocket", nil)
		calm.EmitAck("join_chat_room", map[string]any{"roomName": "calm", "userProfile": sockettest.Profile("calm")})
		measure := func(n int) []time.Duration {
			out := make([]time.Duration, 0, n)
			for i := range n {
				start := time.Now()
				ack := calm.EmitAck("send_message", map[string]any{"roomName": "calm", "message": fmt.Sprint(i), "userProfile": sockettest.Profile("calm")})
				out = append(out, time.Since(start))
				if ack["ok"] != true {
					b.Fatalf("calm socket refused: %v", ack)
				}
				time.Sleep(50 * time.Millisecond) // a person's pace, below the rate limit
			}
			return out
		}
		baseline := measure(40)

		flood := sockettest.Dial(b, st.URL, "websocket", nil)
		var wg sync.WaitGroup
		limited := 0
		var mu sync.Mutex
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inner sync.WaitGroup
			for i := range 2000 {
				inner.Add(1)
				flood.S.EmitWithAck("send_message", map[string]any{"roomName": "flood", "message": fmt.Sprint(i), "userProfile": sockettest.Profile("flood")})(func(args []any, err error) {
					defer inner.Done()
					if m, ok := args[0].(map[string]any); ok && m["ok"] == false {
						mu.Lock()
						limited++
						mu.Unlock()
					}
				})
			}
			inner.Wait()
		}()
		flooded := measure(40)
		wg.Wait()
		b.ReportMetric(percentile(baseline, 0.50), "calm-p50-ms")
		b.ReportMetric(percentile(baseline, 0.99), "calm-p99-ms")
		b.ReportMetric(percentile(flooded, 0.50), "flooded-p50-ms")
		b.ReportMetric(percentile(flooded, 0.99), "flooded-p99-ms")
		b.ReportMetric(float64(limited), "flood-rate-limited")
	}
}

func percentile(d []time.Duration, q float64) float64 {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q * float64(len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}
