package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	addr   string
	token  string
	output string
}

func (cf *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.addr, "addr", envOr("BULKHEAD_ADDR", "http://127.0.0.1:8080"), "server address (env BULKHEAD_ADDR)")
	// No default from the environment: flag usage prints defaults, and a token must never be printed.
	fs.StringVar(&cf.token, "token", "", "bearer token (default: env BULKHEAD_TOKEN, else BULKHEAD_ADMIN_TOKEN)")
	fs.StringVar(&cf.output, "output", "table", "output format: table or json")
}

func (cf *clientFlags) client() (*client.Client, error) {
	if cf.output != "table" && cf.output != "json" {
		return nil, fmt.Errorf("%w: --output must be table or json", errUsage)
	}
	if cf.token == "" {
		cf.token = os.Getenv("BULKHEAD_TOKEN")
	}
	if cf.token == "" {
		cf.token = os.Getenv("BULKHEAD_ADMIN_TOKEN")
	}
	if cf.token == "" {
		return nil, fmt.Errorf("%w: no token: set BULKHEAD_TOKEN (or BULKHEAD_ADMIN_TOKEN, which the CLI falls back to) or pass --token", errUsage)
	}
	addr := cf.addr
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return client.New(addr, cf.token), nil
}

// clientFlagSet is the start of every client verb: its flag set, named by
// the verb's path (e.g. "tenant create"), with the flags every client
// command takes; its --help prints usage, its group's, before the flags.
// open is the opening of a client verb: it parses the verb's flags and
// positional arguments (parseArgs) and returns them with the client its
// flags name.
func (cf *clientFlags) open(fs *flag.FlagSet, args []string, positional int, stderr io.Writer, checks ...checker) ([]string, *client.Client, error) {
	pos, err := parseArgs(fs, args, positional, stderr, checks...)
	if err != nil {
		return nil, nil, err
	}
	c, err := cf.client()
	if err != nil {
		return nil, nil, err
	}
	return pos, c, nil
}

func clientFlagSet(path, usage string) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	withUsage(fs, usage)
	cf := &clientFlags{}
	cf.register(fs)
	return fs, cf
}

// withUsage makes --help print usage before the flags.
func withUsage(fs *flag.FlagSet, usage string) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nFlags of %s:\n", usage, fs.Name())
		fs.PrintDefaults()
	}
}

// A checker is a set of flags that checks, once parsed, that the command
// line gave what it needs (e.g. a required --tenant).
type checker interface {
	check() error
}

// parseArgs parses flags that may come before or after positional
// arguments, and checks the number of positional arguments, then each of
// checks.
func parseArgs(fs *flag.FlagSet, args []string, positional int, stderr io.Writer, checks ...checker) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args, stderr); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != positional {
		return nil, fmt.Errorf("%w: %s takes %d argument(s), got %d", errUsage, fs.Name(), positional, len(pos))
	}
	for _, c := range checks {
		if err := c.check(); err != nil {
			return nil, err
		}
	}
	return pos, nil
}

// tenantFlag is the --tenant that a verb of a tenant's keys or connections
// requires.
type tenantFlag struct {
	id string
}

// register adds --tenant; what says what the verb manages.
func (t *tenantFlag) register(fs *flag.FlagSet, what string) {
	fs.StringVar(&t.id, "tenant", "", "the tenant whose "+what+" to manage (required)")
}

func (t *tenantFlag) check() error {
	if t.id == "" {
		return fmt.Errorf("%w: --tenant T is required", errUsage)
	}
	return nil
}

// parseFlags parses the flags of a verb that takes no arguments (serve,
// init, migrate).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// parse parses args with fs. --help prints fs's usage on stderr and ends
// the command with exit status 0 (errSilentOK); a flag error is returned,
// for run to print once: the flag package would print it too, and the
// whole usage after it, burying it.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return errSilentOK
	}
	return fmt.Errorf("%w: %v (bulkhead %s --help lists the flags)", errUsage, err, fs.Name())
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// listFlags are the paging flags of list.
type listFlags struct {
	limit  int
	cursor string
}

func (l *listFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&l.limit, "limit", 0, "page size (1-1000)")
	fs.StringVar(&l.cursor, "cursor", "", "cursor from a previous page")
}

// printMore tells how to ask for the next page, if there is one.
func printMore(w io.Writer, next string) {
	if next != "" {
		fmt.Fprintf(w, "more: --cursor %s\n", next)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// readSource reads a file, or stdin for "-".
func readSource(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	return os.ReadFile(path)
}
