package pgtest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/joinincard/engine/postgres"
)

// maxProxiedMessage bounds one client message the proxy reads whole: far above any statement or
// COPY chunk the engine sends, so that a garbled length fails the connection instead of
// allocating without bound.
const maxProxiedMessage = 1 << 30

// Proxy stands between the engine and PostgreSQL and loses answers to COMMIT: once armed, the
// next connection that sends COMMIT gets it to the server, the server commits, and the
// connection is cut before the server's answer reaches the client. That is the one moment at
// which a client cannot know whether its transaction landed: a network cut, a failover or a
// killed server, seen from the engine. It speaks only as much of PostgreSQL's protocol as it
// needs to find COMMIT among the client's messages.
type Proxy struct {
	ln     net.Listener
	target string

	armed   atomic.Int64 // COMMITs still to lose
	lost    atomic.Int64 // COMMITs whose answer was lost
	commits atomic.Int64 // COMMITs forwarded, lost or not

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartProxy listens on a free loopback port and forwards to the PostgreSQL server of u; it is
// closed when t ends.
func StartProxy(t testing.TB, u string) *Proxy {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: parsed.Host, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Open opens a Store on the database at u through the proxy, closed when t ends.
func (p *Proxy) Open(t testing.TB, u string) *postgres.Store {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("pgtest: proxy url: %v", err)
	}
	parsed.Host = p.ln.Addr().String()
	return Open(t, parsed.String())
}

// LoseCommits arms the proxy to lose the answers of the next n COMMITs.
func (p *Proxy) LoseCommits(n int) { p.armed.Add(int64(n)) }

// Disarm makes the proxy lose no more answers.
func (p *Proxy) Disarm() { p.armed.Store(0) }

// Armed is how many COMMITs the proxy is still to lose.
func (p *Proxy) Armed() int { return int(p.armed.Load()) }

// Commits is how many COMMITs the proxy has forwarded, their answers lost or not.
func (p *Proxy) Commits() int { return int(p.commits.Load()) }

// Lost is how many COMMITs' answers the proxy has lost so far.
func (p *Proxy) Lost() int { return int(p.lost.Load()) }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		pc := &proxyConn{p: p, client: client, server: server, commitStmts: map[string]bool{}}
		p.wg.Add(2)
		go pc.clientToServer()
		go pc.serverToClient()
	}
}

// track records a connection's two sockets, or closes them and says false once the proxy is closed.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// proxyConn is one client connection and its server connection.
type proxyConn struct {
	p              *Proxy
	client, server net.Conn
	// swallow is set once the connection has sent a COMMIT whose answer is to be lost.
	swallow atomic.Bool
	// commitStmts are the names of the statements the client parsed from COMMIT.
	commitStmts map[string]bool
	once        sync.Once
}

func (c *proxyConn) cut() {
	c.once.Do(func() {
		c.client.Close()
		c.server.Close()
	})
}

// clientToServer forwards the client's messages: the startup message (a length, then its body),
// then typed messages (a type byte, a length, then its body).
func (c *proxyConn) clientToServer() {
	defer c.p.wg.Done()
	defer c.cut()
	first := true
	var head [5]byte
	for {
		h := head[1:]
		if !first {
			h = head[:]
		}
		if _, err := io.ReadFull(c.client, h); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(h[len(h)-4:])) - 4
		if n < 0 || n > maxProxiedMessage {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(c.client, body); err != nil {
			return
		}
		if !first && c.commits(head[0], body) {
			c.p.commits.Add(1)
			if c.p.take() {
				c.swallow.Store(true)
			}
		}
		// A startup message asking for TLS or a cancel has a code of its own and no answer
		// the proxy cares about: everything is forwarded as it came.
		if _, err := c.server.Write(append(h[:len(h):len(h)], body...)); err != nil {
			return
		}
		first = first && isRequestCode(body)
	}
}

// commits reports whether a client message runs COMMIT: a simple query, or the binding of a
// statement parsed from it (pgx sends a COMMIT queued in a batch so, prepared once per
// connection under a name of its own).
func (c *proxyConn) commits(typ byte, body []byte) bool {
	switch typ {
	case 'Q':
		return isCommit(body)
	case 'P': // Parse: statement name, query text, parameter types
		name, rest, _ := bytes.Cut(body, []byte{0})
		query, _, _ := bytes.Cut(rest, []byte{0})
		if isCommit(query) {
			c.commitStmts[string(name)] = true
		} else {
			delete(c.commitStmts, string(name))
		}
	case 'B': // Bind: portal name, statement name, parameters
		_, rest, _ := bytes.Cut(body, []byte{0})
		stmt, _, _ := bytes.Cut(rest, []byte{0})
		return c.commitStmts[string(stmt)]
	}
	return false
}

// isRequestCode reports whether a startup-phase message was an SSL or GSS encryption request,
// after which the client sends its real startup message, still without a type byte.
func isRequestCode(body []byte) bool {
	if len(body) != 4 {
		return false
	}
	code := binary.BigEndian.Uint32(body)
	return code == 80877103 || code == 80877104
}

// take uses one armed COMMIT, if any.
func (p *Proxy) take() bool {
	for {
		n := p.armed.Load()
		if n <= 0 {
			return false
		}
		if p.armed.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// isCommit reports whether a query's text (NUL-terminated or not) is COMMIT.
func isCommit(body []byte) bool {
	q := bytes.TrimSpace(bytes.TrimRight(body, "\x00"))
	q = bytes.TrimRight(q, ";")
	return bytes.EqualFold(q, []byte("commit")) || bytes.EqualFold(q, []byte("commit transaction"))
}

// serverToClient forwards the server's answers, except the answer to a COMMIT being lost: that
// one is read, which proves the server has decided the transaction, and the connection is cut.
func (c *proxyConn) serverToClient() {
	defer c.p.wg.Done()
	defer c.cut()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			if c.swallow.Load() {
				c.p.lost.Add(1)
				return
			}
			if _, werr := c.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
