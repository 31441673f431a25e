package jsonread

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestParseVersusEncodingJSON pins where the parser is deliberately
// stricter than encoding/json, and that it is never looser.
func TestParseVersusEncodingJSON(t *testing.T) {
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
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), false, classDepth},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), true, 0},
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
		_, err := Parse([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("%q: err %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.class != tt.class {
				t.Errorf("%q: err %v, want class %d", tt.in, err, tt.class)
			}
		}
		checkParserAgainstStd(t, []byte(tt.in))
	}
}

// checkParserAgainstStd fails if Parse accepts what encoding/json rejects,
// or rejects valid JSON for a reason other than its deliberate extra
// strictness.
func checkParserAgainstStd(t *testing.T, data []byte) {
	t.Helper()
	_, err := Parse(data)
	std := data
	if len(std) >= 3 && string(std[:3]) == "\xef\xbb\xbf" {
		std = std[3:]
	}
	valid := json.Valid(std)
	if err == nil && !valid {
		t.Fatalf("Parse accepts invalid JSON %q", data)
	}
	var se *SyntaxError
	if err != nil && valid && (!errors.As(err, &se) || se.class == classSyntax) {
		t.Fatalf("Parse rejects valid JSON %q: %v", data, err)
	}
}

func TestLineCol(t *testing.T) {
	data := []byte("ab\nçd\n")
	for _, tt := range []struct{ off, line, col int }{
		{0, 1, 1}, {2, 1, 3}, {3, 2, 1}, {5, 2, 2}, {6, 2, 3}, {7, 3, 1}, {100, 3, 1},
	} {
		if l, c := LineCol(data, tt.off); l != tt.line || c != tt.col {
			t.Errorf("offset %d: got %d:%d, want %d:%d", tt.off, l, c, tt.line, tt.col)
		}
	}
}

func TestSafeKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"openai", "openai"},
		{"", "<empty key>"},
		{strings.Repeat("k", 65), "<long key>"},
		{"a\nb", "<key with special characters>"},
		{`a"b`, "<key with special characters>"},
		{"é", "<key with special characters>"},
	} {
		if got := SafeKey(tt.in); got != tt.want {
			t.Errorf("SafeKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := QuoteKey("a"); got != `"a"` {
		t.Errorf("QuoteKey: %s", got)
	}
}
