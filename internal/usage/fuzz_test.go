package usage

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzMeter: a Meter never panics, never holds more than its limits, and
// gives the same usage whether the body comes whole, a byte at a time or
// in random pieces, with the real limits and with small ones that the
// fuzzer can reach.
func FuzzMeter(f *testing.F) {
	for _, tc := range meterCases {
		f.Add(tc.body, tc.contentType == ctSSE, uint64(len(tc.body)))
	}
	f.Add("data: {\"usage\":{\"input_tokens\":1}}\r", true, uint64(3))
	f.Add("data:\r\n\r\rdata: {\"model\":\"a\"}\n\r\n", true, uint64(9))
	f.Add(`[{"usageMetadata":{"promptTokenCount":"3"}},{"modelVersion":"x"}]`, false, uint64(1))
	f.Fuzz(func(t *testing.T, body string, isSSE bool, seed uint64) {
		ct := ctJSON
		if isSSE {
			ct = ctSSE
		}
		for _, lim := range [][2]int{{MaxEvent, MaxBody}, {16, 64}} {
			whole := meterChecked(t, newMeter(ct, lim[0], lim[1]), body, func(int) int { return len(body) })
			if byByte := meterChecked(t, newMeter(ct, lim[0], lim[1]), body, func(int) int { return 1 }); byByte != whole {
				t.Fatalf("limits %v: whole %+v, a byte at a time %+v", lim, whole, byByte)
			}
			r := rand.New(rand.NewPCG(seed, 1))
			if pieces := meterChecked(t, newMeter(ct, lim[0], lim[1]), body, func(left int) int { return r.IntN(left + 1) }); pieces != whole {
				t.Fatalf("limits %v: whole %+v, in random pieces %+v", lim, whole, pieces)
			}
			if !whole.Known && (whole.Input != 0 || whole.Output != 0) {
				t.Fatalf("unknown usage with counts: %+v", whole)
			}
			if len(whole.Model) > maxModel {
				t.Fatalf("model of %d bytes", len(whole.Model))
			}
		}
	})
}

// meterChecked writes body to m in pieces of next(bytes left) bytes
// (empty writes too), checking after each that m holds no more than its
// limits allow.
func meterChecked(t *testing.T, m *Meter, body string, next func(left int) int) Usage {
	b := []byte(body)
	for len(b) > 0 {
		k := min(next(len(b)), len(b))
		if n, err := m.Write(b[:k]); n != k || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		b = b[k:]
		s := &m.sse
		if len(s.line) > m.maxEvent || len(s.data) > m.maxEvent || len(m.body) > m.maxBody ||
			cap(s.line) > 2*m.maxEvent+64 || cap(s.data) > 2*m.maxEvent+64 || cap(m.body) > 2*m.maxBody+64 {
			t.Fatalf("holds line %d/%d, data %d/%d, body %d/%d bytes (len/cap)", len(s.line), cap(s.line), len(s.data), cap(s.data), len(m.body), cap(m.body))
		}
	}
	return m.Usage()
}

// FuzzSummary: reading an audit log never panics, gives the same rows
// however the reader splits it, and counts every line it does not skip.
func FuzzSummary(f *testing.F) {
	for _, tc := range summaryCases {
		f.Add(strings.ReplaceAll(tc.log, strings.Repeat("x", maxRecord), strings.Repeat("x", 300)))
	}
	f.Add("{\"op\":\"relay\",\"decision\":\"allow\",\"time\":\"2026-12-05T10:00:00Z\",\"hops\":[\"\"],\"remote_reported\":{\"hostname\":\"\\u202e\"}}\r\n\n")
	f.Fuzz(func(t *testing.T, log string) {
		// A small line limit, within the fuzzer's reach.
		a := NewSummary(testZone)
		a.maxRecord = 256
		if err := a.Read(bytes.NewReader([]byte(log)), "a"); err != nil {
			t.Fatal(err)
		}
		b := NewSummary(testZone)
		b.maxRecord = 256
		if err := b.Read(iotest.OneByteReader(bytes.NewReader([]byte(log))), "a"); err != nil {
			t.Fatal(err)
		}
		ra, rb := a.Rows(), b.Rows()
		if len(ra) != len(rb) || a.Malformed != b.Malformed || a.FirstMalformed != b.FirstMalformed {
			t.Fatalf("whole: %+v, %d malformed; a byte at a time: %+v, %d", ra, a.Malformed, rb, b.Malformed)
		}
		lines := bytes.Count([]byte(log), []byte("\n")) + 1
		var requests uint64
		for i := range ra {
			if ra[i] != rb[i] {
				t.Fatalf("row %d: %+v, a byte at a time %+v", i, ra[i], rb[i])
			}
			if ra[i].Requests == 0 {
				t.Fatalf("row %+v", ra[i])
			}
			requests += ra[i].Requests
		}
		if int(requests)+a.Malformed > lines {
			t.Fatalf("%d requests and %d malformed in %d lines", requests, a.Malformed, lines)
		}
	})
}
