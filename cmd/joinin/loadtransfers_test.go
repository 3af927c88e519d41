package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The load client reads the engine's answers as net/http frames them: a short body with its
// Content-Length, a long one chunked, a closing connection, one request after another on one
// connection.
func TestLoadConnReadsNetHTTPAnswers(t *testing.T) {
	long := strings.Repeat("0123456789", 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"ok":true}`)
		case "/long":
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, long)
			w.(http.Flusher).Flush()
			fmt.Fprint(w, "end")
		case "/close":
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, "bye")
		}
	}))
	defer srv.Close()
	lc := &loadConn{addr: strings.TrimPrefix(srv.URL, "http://"), token: "t"}
	defer lc.close()
	for range 3 {
		for _, c := range []struct {
			path, want string
			status     int
			closed     bool
		}{
			{"/short", `{"ok":true}`, 200, false},
			{"/long", long + "end", 503, false},
			{"/short", `{"ok":true}`, 200, false},
			{"/close", "bye", 200, true},
		} {
			status, got, err := lc.post(c.path, []byte(`{}`))
			if err != nil || status != c.status || string(got) != c.want || (lc.conn == nil) != c.closed {
				t.Fatalf("%s: %d %.40q %v, connection closed %v", c.path, status, got, err, lc.conn == nil)
			}
		}
	}
}

// A response the load client cannot frame fails, rather than being misread.
func TestLoadConnRefusesMalformedAnswers(t *testing.T) {
	for _, resp := range []string{
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"SMTP 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	} {
		lc := &loadConn{r: bufio.NewReader(strings.NewReader(resp))}
		if status, _, err := lc.readResponse(); err == nil {
			t.Errorf("%q: status %d, no error", resp, status)
		}
	}
	lc := &loadConn{r: bufio.NewReader(strings.NewReader("HTTP/1.0 200 OK\r\n\r\nto the end"))}
	if status, closing, err := lc.readResponse(); err != nil || status != 200 || !closing || !bytes.Equal(lc.got, []byte("to the end")) {
		t.Errorf("HTTP/1.0 without length: %d %v %v %q", status, closing, err, lc.got)
	}
}
