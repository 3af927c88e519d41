package http

import "testing"

func TestUnpairedSurrogateNamesWhereItIs(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"name":"Zhang Wei"}`, ""},
		{`{"name":"\u5f20\u4f1f"}`, ""},
		{`{"name":"\ud83d\ude00 \uD83D\uDE00"}`, ""},                              // a pair, either case
		{`{"name":"\\ud800"}`, ""},                                                // an escaped backslash, then text
		{`{"name":"\ufffd"}`, ""},                                                 // U+FFFD itself is a character
		{`{"name":"a\ud800"}`, "name: has a \\u escape of a lone surrogate"},      // at the end
		{`{"name":"\ud800x"}`, "name: has a \\u escape of a lone surrogate"},      // before text
		{`{"name":"\ud800\u0041"}`, "name: has a \\u escape of a lone surrogate"}, // before another escape
		{`{"name":"\ud800\\udc00"}`, "name: has a \\u escape of a lone surrogate"},
		{`{"a":"b","name":"\udc00"}`, "name: has a \\u escape of a lone surrogate"},
		{`{"name":"\ude00\ud83d"}`, "name: has a \\u escape of a lone surrogate"},
		{`{"items":[{"code":"X"},{"code":"\udfff"}]}`, "items[1].code: has a \\u escape of a lone surrogate"},
		{`{"flags":["linked","\udbff"]}`, "flags[1]: has a \\u escape of a lone surrogate"},
		{`{"lines":[{"stations":[{},{},{"id":{"n":1},"name":"\ud800"}]}]}`, "lines[0].stations[2].name: has a \\u escape of a lone surrogate"},
		{`[{"id":"a"},{"id":"\ud800"}]`, "[1].id: has a \\u escape of a lone surrogate"},
		{`"\ud800"`, "request body: has a \\u escape of a lone surrogate"},
		{`{"na\ud800me":"x"}`, "unknown field: its name has a \\u escape of a lone surrogate"},
		{`{"items":[{"c\udc00":"x"}]}`, "items[0]: unknown field: its name has a \\u escape of a lone surrogate"},
		{`{"name":"x",}"\ud800"`, ""}, // not json before the escape: the reader says so
	} {
		got := unpairedSurrogate([]byte(c.body))
		if c.want == "" && got != "" || len(got) < len(c.want) || got[:len(c.want)] != c.want {
			t.Errorf("%s: %q, want %q...", c.body, got, c.want)
		}
	}
}

// BenchmarkDecodeAuthorizationBody reads an authorization's body as the hot path does, and the
// surrogate check alone on it: the check is one scan for a backslash.
func BenchmarkDecodeAuthorizationBody(b *testing.B) {
	body := []byte(`{"card_token":"tok_3f9a1c2e7b5d4e6f8a9b0c1d2e3f4a5b","amount":"12.34","currency":"CNY","merchant_id":"pharmacy-1"}`)
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var req authorizeRequest
			if err := decodeBytes(body, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("surrogate check", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if why := unpairedSurrogate(body); why != "" {
				b.Fatal(why)
			}
		}
	})
}
