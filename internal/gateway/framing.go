package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync"
)

// Request smuggling is two parties disagreeing on where a request ends.
// Go's server resolves the ambiguous cases its own way rather than
// refusing them: a request with both Content-Length and Transfer-Encoding:
// chunked is read as chunked (the length dropped), a folded header line
// (obs-fold) is unfolded, and Transfer-Encoding on an HTTP/1.0 request is
// ignored. The gateway re-frames what it forwards, so it never disagrees
// with the application; but a front proxy before the gateway may have
// framed the same bytes the other way. So the gateway refuses such
// requests, and it must do so before net/http parses them, which hides
// what was ambiguous: a listener whose connections read each request's
// header block, check it, and follow its body's framing to find the next
// one.
//
// A request that fails the check never reaches net/http. In its place the
// connection hands net/http a request of its own that names the refusal;
// the server's handler (NewServer) answers it 400 problem+json and closes
// the connection. So the refusal is written in turn, after the answers to
// the requests before it, and never in the middle of one.

// maxChunkLine bounds a chunk-size line, as Go's chunked reader does.
const maxChunkLine = 4096

// refusedHeader names, in the request that stands for a refused one, its
// sequence number on the connection (see checkedConn.refused).
const refusedHeader = "X-Bulkhead-Framing-Refused"

// errFraming fails the reads of a connection whose request body is not
// well framed, so that net/http ends the request and the connection.
var errFraming = errors.New("gateway: malformed request framing")

// NewListener returns ln with every HTTP/1.x request on its connections
// checked for ambiguous framing before net/http reads it; maxHeaderBytes is
// the server's MaxHeaderBytes. Serve it with a server from NewServer, which
// answers the refusals. It is for plain HTTP: a TLS listener's connections
// must stay *tls.Conn for net/http.
func NewListener(ln net.Listener, maxHeaderBytes int) net.Listener {
	// net/http reads up to MaxHeaderBytes+4096 bytes of headers before it
	// answers 431; past more than that, there is nothing left to check.
	return &checkedListener{Listener: ln, max: maxHeaderBytes + 8192}
}

type checkedListener struct {
	net.Listener
	max int
}

func (l *checkedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &checkedConn{Conn: c, max: l.max}, nil
}

// framing states: what the next bytes of the connection are.
const (
	stHeader    = iota // a request's header block, held until it is whole
	stBody             // length more bytes of body
	stChunkSize        // a chunk-size line
	stChunkData        // length more bytes of chunk data
	stChunkEnd         // the CRLF after a chunk's data
	stTrailer          // trailer lines until an empty one
	stTunnel           // not HTTP any more (an upgrade): unchecked
	stRefused          // a request was refused: the request standing for it, then nothing
	stBroken           // a body was malformed: reads fail
)

// checkedConn checks the requests read from it; see NewListener.
//
// Its framing state belongs to Read, which net/http never calls from two
// goroutines at once (nor does a tunnel after an upgrade); mu guards only
// what the handler asks through refusal, so that the handler never waits
// for a Read blocked on the client.
type checkedConn struct {
	net.Conn
	max int
	// tls is the connection's TLS state when it is a TLS connection
	// (NewTLSListener), which net/http no longer sees as one.
	tls *tls.ConnectionState

	state   int
	length  int64 // bytes left in stBody and stChunkData
	line    []byte
	hdr     []byte // the header block being read
	out     []byte // checked bytes net/http has yet to read
	buf     []byte
	seq     int  // requests read so far
	upgrade bool // the current request asks for an upgrade

	mu sync.Mutex
	// refused is the sequence number of the refused request, 0 if none.
	refused int
	reason  string
}

func (c *checkedConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		// After a refusal the client's bytes are dropped, but reads still
		// wait on the connection: net/http reads ahead while it answers
		// the requests before the refused one, and an error would cancel
		// them.
		// A malformed body fails its reads, so that net/http ends that
		// request and the connection. (Were it pipelined behind a good
		// request, net/http's read-ahead would end that one too: the
		// client's own loss.)
		if c.state == stBroken {
			return 0, errFraming
		}
		if c.buf == nil {
			c.buf = make([]byte, 4096)
		}
		n, err := c.Conn.Read(c.buf)
		c.feed(c.buf[:n])
		if len(c.out) > 0 {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil // do not keep a large backing array
	}
	return n, nil
}

// CloseWrite lets net/http half-close the connection before it closes it,
// so that a client still sending gets the answer rather than a reset.
func (c *checkedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// refusal returns why the request of sequence number seq (the value of
// its refusedHeader) was refused, "" if it was not.
func (c *checkedConn) refusal(seq string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refused == 0 || seq != strconv.Itoa(c.refused) {
		return ""
	}
	return c.reason
}

// feed runs b through the framing, appending to out what net/http may read.
func (c *checkedConn) feed(b []byte) {
	for len(b) > 0 {
		switch c.state {
		case stTunnel:
			c.out = append(c.out, b...)
			return
		case stRefused, stBroken:
			return
		case stBody, stChunkData:
			n := int(min(int64(len(b)), c.length))
			c.out = append(c.out, b[:n]...)
			b = b[n:]
			c.length -= int64(n)
			if c.length == 0 {
				if c.state == stChunkData {
					c.state = stChunkEnd
				} else {
					c.next()
				}
			}
		case stHeader:
			b = c.feedHeader(b)
		default: // the lines of a chunked body
			i := bytes.IndexByte(b, '\n')
			end := len(b)
			if i >= 0 {
				end = i + 1
			}
			c.line = append(c.line, b[:end]...)
			c.out = append(c.out, b[:end]...)
			b = b[end:]
			if len(c.line) > maxChunkLine {
				c.state = stBroken
				return
			}
			if i >= 0 {
				c.chunkLine(c.line)
				c.line = c.line[:0]
			}
		}
	}
}

// feedHeader adds b to the header block; once the block is whole it is
// checked. It returns what follows the block.
func (c *checkedConn) feedHeader(b []byte) []byte {
	if len(c.hdr) == 0 {
		// Empty lines before a request line: net/http skips a few after a
		// POST and refuses the rest; they end no header block.
		i := 0
		for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
			i++
		}
		c.out = append(c.out, b[:i]...)
		b = b[i:]
		if len(b) == 0 {
			return nil
		}
	}
	start := len(c.hdr)
	c.hdr = append(c.hdr, b...)
	end := headerEnd(c.hdr, max(start-3, 0))
	if end < 0 {
		if len(c.hdr) > c.max {
			// Longer than net/http reads before it answers 431: let it.
			c.out = append(c.out, c.hdr...)
			c.hdr = nil
			c.state = stTunnel
		}
		return nil
	}
	rest := b[len(b)-(len(c.hdr)-end):]
	block := c.hdr[:end]
	c.hdr = nil
	c.seq++
	if reason := c.check(block); reason != "" {
		c.mu.Lock()
		c.refused, c.reason = c.seq, reason
		c.mu.Unlock()
		c.state = stRefused
		c.out = append(c.out, "GET / HTTP/1.1\r\nHost: refused.invalid\r\nConnection: close\r\n"+
			refusedHeader+": "+strconv.Itoa(c.seq)+"\r\n\r\n"...)
		return nil
	}
	c.out = append(c.out, block...)
	return rest
}

// headerEnd returns the length of the header block at the start of b
// (through its empty line, CRLF or LF), or -1 if b does not hold it all;
// from is where to start looking.
func headerEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

// check checks a request's header block and sets the framing of its body;
// it returns why the request is refused, "" if it is not.
func (c *checkedConn) check(block []byte) string {
	lines := bytes.Split(bytes.TrimRight(block, "\r\n"), []byte("\n"))
	for i := range lines {
		lines[i] = bytes.TrimSuffix(lines[i], []byte("\r"))
	}
	proto := lines[0][bytes.LastIndexByte(lines[0], ' ')+1:]
	method, _, _ := bytes.Cut(lines[0], []byte(" "))
	var te, cl [][]byte
	c.upgrade = string(method) == "CONNECT"
	for _, l := range lines[1:] {
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			return "a folded header line (obs-fold)"
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue // net/http refuses it
		}
		value = bytes.Trim(value, " \t")
		switch {
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te = append(te, value)
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl = append(cl, value)
		case bytes.EqualFold(name, []byte("Upgrade")):
			c.upgrade = true
		case bytes.EqualFold(name, []byte(refusedHeader)):
			return "a reserved header field"
		}
	}
	switch {
	case len(te) > 0 && len(cl) > 0:
		return "both Transfer-Encoding and Content-Length"
	case len(te) > 0 && string(proto) != "HTTP/1.1":
		return "Transfer-Encoding in an HTTP/1.0 request"
	case len(te) > 1 || len(te) == 1 && !bytes.EqualFold(te[0], []byte("chunked")):
		return "a Transfer-Encoding other than chunked"
	case len(cl) > 1:
		return "more than one Content-Length"
	case len(te) == 1:
		c.state = stChunkSize
		return ""
	case len(cl) == 1:
		n, err := strconv.ParseInt(string(cl[0]), 10, 64)
		if err != nil || n < 0 || cl[0][0] == '+' {
			return "an invalid Content-Length"
		}
		if n > 0 {
			c.state, c.length = stBody, n
			return ""
		}
	}
	c.next()
	return ""
}

// next starts the next request, or the tunnel after an upgrade request.
func (c *checkedConn) next() {
	c.state = stHeader
	if c.upgrade {
		// What follows may be another protocol; if the upgrade is
		// refused, NewServer's handler closes the connection.
		c.state = stTunnel
	}
}

// chunkLine handles one line of a chunked body (with its line end).
func (c *checkedConn) chunkLine(l []byte) {
	switch c.state {
	case stChunkEnd:
		if string(l) != "\r\n" {
			c.state = stBroken
			return
		}
		c.state = stChunkSize
	case stChunkSize:
		s, ok := bytes.CutSuffix(l, []byte("\r\n"))
		if !ok {
			c.state = stBroken
			return
		}
		s, _, _ = bytes.Cut(s, []byte(";"))
		s = bytes.TrimRight(s, " \t")
		n, err := strconv.ParseUint(string(s), 16, 63)
		if err != nil || len(s) == 0 || len(s) > 16 || s[0] == '+' {
			c.state = stBroken
			return
		}
		if n == 0 {
			c.state = stTrailer
			return
		}
		c.state, c.length = stChunkData, int64(n)
	case stTrailer:
		s := bytes.TrimSuffix(bytes.TrimSuffix(l, []byte("\n")), []byte("\r"))
		switch {
		case len(s) == 0:
			c.next()
		case s[0] == ' ' || s[0] == '\t':
			c.state = stBroken
		}
	}
}
