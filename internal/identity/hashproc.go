package identity

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
)

// Password hashing in child processes.
//
// A hash takes one core for a fifth of a second. Inside the server, a
// tenant creating users as fast as its share of the hasher allowed kept
// one of a 2-core node's two Go processors busy: the other tenants' requests
// shared the other one, Go's scheduler cannot rank goroutines, and the
// 64 MiB each hash allocates drove the server's garbage collector. Their
// p99 went to 2–5 times what it was alone. In child processes at a lower
// CPU priority (nice 10, a tenth of the server's weight), hashes use the
// CPU the server leaves idle: the kernel runs a request of another tenant
// as soon as it is ready, and the server's heap never holds a hash's
// memory. A hash still finishes in its usual time on a node that is not
// saturated.
//
// The children are the server's own binary (HashCommand, "/proc/self/exe"
// so that an upgrade that replaces the file does not stop them), one per
// hashing slot, started by Directory.Run and stopped when it returns. They
// get no environment from the server (no secrets, no configuration), die
// with it (SIGKILL on the parent's death), and answer one request at a
// time over a pipe. When a child is missing (before Run, while one is
// restarted, after it fails mid-request) the slot hashes in the server as
// before, so a child's failure never fails a sign-in.

// hashNice is the children's nice value: weight 110 against the server's
// 1024, so contended CPU goes to requests, and idle CPU to hashes.
const hashNice = 10

// hashTimeout bounds one exchange with a child: the slowest hash a stored
// hash may ask for (1 GiB, 16 passes) takes well under it.
const hashTimeout = 2 * time.Minute

// hashRequest is one job for a child: verify Password against Encoded,
// or, when Encoded is empty, hash it with Params. Password is bytes (JSON
// base64) so that no byte of it is changed on the way.
type hashRequest struct {
	Password []byte       `json:"password"`
	Encoded  string       `json:"encoded,omitempty"`
	Params   Argon2Params `json:"params"`
}

// hashResponse is a child's answer.
type hashResponse struct {
	Hash string `json:"hash,omitempty"`
	OK   bool   `json:"ok,omitempty"`
}

// ServeHashing is a hashing child's main loop (the hidden
// `bulkhead hash-worker` verb): it lowers its own CPU priority, then
// answers requests on in, one JSON line each, until in ends.
func ServeHashing(in io.Reader, out io.Writer) error {
	if err := lowerPriority(hashNice); err != nil {
		return fmt.Errorf("identity: hash worker: %w", err)
	}
	dec := json.NewDecoder(bufio.NewReader(in))
	enc := json.NewEncoder(out)
	for {
		var req hashRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("identity: hash worker: read: %w", err)
		}
		var resp hashResponse
		if req.Encoded != "" {
			resp.OK = VerifyPassword(req.Encoded, string(req.Password))
		} else {
			resp.Hash = HashPassword(string(req.Password), req.Params)
		}
		clear(req.Password)
		if err := enc.Encode(resp); err != nil {
			return fmt.Errorf("identity: hash worker: write: %w", err)
		}
	}
}

// lowerPriority sets the nice value of every thread of the process (on
// Linux a nice value is a thread's; threads started later inherit their
// creator's).
func lowerPriority(nice int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("list threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("set priority of thread %d: %w", tid, err)
		}
	}
	return nil
}

// hashChild is one running child.
type hashChild struct {
	cmd *exec.Cmd
	w   *os.File // its stdin
	r   *os.File // its stdout
	dec *json.Decoder
}

// do sends req and reads the answer, within hashTimeout.
func (c *hashChild) do(req hashRequest) (hashResponse, error) {
	var resp hashResponse
	line, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	line = append(line, '\n')
	deadline := time.Now().Add(hashTimeout)
	c.w.SetWriteDeadline(deadline)
	c.r.SetReadDeadline(deadline)
	_, err = c.w.Write(line)
	clear(line)
	if err != nil {
		return resp, fmt.Errorf("write: %w", err)
	}
	if err := c.dec.Decode(&resp); err != nil {
		return resp, fmt.Errorf("read: %w", err)
	}
	return resp, nil
}

// stop ends the child and waits for it.
func (c *hashChild) stop() error {
	c.w.Close()
	c.cmd.Process.Kill()
	err := c.cmd.Wait()
	c.r.Close()
	return err
}

// hashProcs is the pool of children: idle ones wait in idle, a failed one
// is sent to dead for Run to replace.
type hashProcs struct {
	command []string
	n       int
	clock   clock.Clock
	log     *slog.Logger

	idle chan *hashChild
	dead chan *hashChild
}

func newHashProcs(command []string, n int, clk clock.Clock, log *slog.Logger) *hashProcs {
	return &hashProcs{command: command, n: n, clock: clk, log: log,
		idle: make(chan *hashChild, n), dead: make(chan *hashChild, n)}
}

// start runs a new child.
func (p *hashProcs) start() (*hashChild, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command(p.command[0], p.command[1:]...)
	cmd.Stdin, cmd.Stdout = inR, outW
	cmd.Env = []string{"GOMAXPROCS=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("identity: start hash worker: %w", err)
	}
	return &hashChild{cmd: cmd, w: inW, r: outR, dec: json.NewDecoder(outR)}, nil
}

// take returns an idle child, or nil when there is none.
func (p *hashProcs) take() *hashChild {
	if p == nil {
		return nil
	}
	select {
	case c := <-p.idle:
		return c
	default:
		return nil
	}
}

// put returns c after a good exchange, or hands it to Run to replace.
func (p *hashProcs) put(c *hashChild, failed error) {
	if failed != nil {
		p.log.Warn("password hash worker failed; hashing in the server until it is replaced", "err", failed)
		p.dead <- c // never blocks: at most n children exist
		return
	}
	p.idle <- c
}

// Run starts the children, replaces those that fail, and stops them all
// when ctx ends. A child that cannot be started is retried with backoff;
// its slot hashes in the server meanwhile.
func (p *hashProcs) Run(ctx context.Context) error {
	live := map[*hashChild]bool{}
	spawn := func() bool {
		c, err := p.start()
		if err != nil {
			p.log.Warn("password hash worker", "err", err)
			return false
		}
		live[c] = true
		p.idle <- c
		return true
	}
	missing := 0
	for range p.n {
		if !spawn() {
			missing++
		}
	}
	backoff := time.Second
	for {
		var timer clock.Timer
		var retry <-chan time.Time
		if missing > 0 {
			timer, retry = p.clock.NewTimer(backoff)
		}
		select {
		case <-ctx.Done():
			// Children in use see their pipes close, and their callers
			// hash in the server.
			for c := range live {
				c.stop()
			}
			// Nothing stopped stays to be taken: callers hash in the
			// server from now on.
			for drained := false; !drained; {
				select {
				case <-p.idle:
				case <-p.dead:
				default:
					drained = true
				}
			}
		case c := <-p.dead:
			delete(live, c)
			c.stop()
			if !spawn() {
				missing++
			}
		case <-retry:
			for missing > 0 && spawn() {
				missing--
			}
			backoff = min(2*backoff, time.Minute)
			if missing == 0 {
				backoff = time.Second
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}
