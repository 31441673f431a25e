package authfile

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// /proc files are regular but report size 0, which exercises the growing
// read and the cap on bytes read.
func TestReadCappedGrowth(t *testing.T) {
	const p = "/proc/self/status"
	if _, err := os.Stat(p); err != nil {
		t.Skip("no /proc")
	}
	data, err := readCapped(p, MaxFileSize)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "Name:") {
		t.Errorf("short read: %q", data)
	}
	if _, err := readCapped(p, 16); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than 16 bytes") {
		t.Errorf("got %v", err)
	}
}

// TestParseJSONVersusEncodingJSON pins where the parser is deliberately
// stricter than encoding/json, and that it is never looser.
func TestParseJSONVersusEncodingJSON(t *testing.T) {
	tests := []struct {
		in    string
		ok    bool
		class errClass // when !ok
	}{
		{`{}`, true, 0},
		{` [1, -0.5e+3, "x", true, false, null, {"a": {}}] `, true, 0},
		{`"\ud83d\ude00"`, true, 0},
		{"\xef\xbb\xbf{}", true, 0}, // BOM: encoding/json refuses it, we skip it
		{`{"a":1,"a":1}`, false, classDuplicate},
		{`"\ud800"`, false, classSurrogate},
		{`"\ud800\u0041"`, false, classSurrogate},
		{`"\udc00\ud800"`, false, classSurrogate},
		{"\"\xff\"", false, classUTF8},
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), false, classDepth},
		{strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), true, 0},
		{`01`, false, classSyntax},
		{`1.`, false, classSyntax},
		{`.5`, false, classSyntax},
		{`1e`, false, classSyntax},
		{`-`, false, classSyntax},
		{`"a` + "\t" + `"`, false, classSyntax},
		{`[1,]`, false, classSyntax},
		{`{"a":1,}`, false, classSyntax},
		{`nul`, false, classSyntax},
		{`"\x"`, false, classSyntax},
	}
	for _, tt := range tests {
		_, err := parseJSON([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("%q: err %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err != nil {
			var se *syntaxError
			if !errors.As(err, &se) || se.class != tt.class {
				t.Errorf("%q: err %v, want class %d", tt.in, err, tt.class)
			}
		}
		checkParserAgainstStd(t, []byte(tt.in))
	}
}

// checkParserAgainstStd fails if parseJSON accepts what encoding/json
// rejects, or rejects valid JSON for a reason other than its deliberate
// extra strictness.
func checkParserAgainstStd(t *testing.T, data []byte) {
	t.Helper()
	_, err := parseJSON(data)
	std := data
	if len(std) >= 3 && string(std[:3]) == "\xef\xbb\xbf" {
		std = std[3:]
	}
	valid := json.Valid(std)
	if err == nil && !valid {
		t.Fatalf("parseJSON accepts invalid JSON %q", data)
	}
	var se *syntaxError
	if err != nil && valid && (!errors.As(err, &se) || se.class == classSyntax) {
		t.Fatalf("parseJSON rejects valid JSON %q: %v", data, err)
	}
}

func TestLineCol(t *testing.T) {
	data := []byte("ab\nçd\n")
	for _, tt := range []struct{ off, line, col int }{
		{0, 1, 1}, {2, 1, 3}, {3, 2, 1}, {5, 2, 2}, {6, 2, 3}, {7, 3, 1}, {100, 3, 1},
	} {
		if l, c := lineCol(data, tt.off); l != tt.line || c != tt.col {
			t.Errorf("offset %d: got %d:%d, want %d:%d", tt.off, l, c, tt.line, tt.col)
		}
	}
}
