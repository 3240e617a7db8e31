package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const userUsage = `Usage:
  bulkhead user create TENANT EMAIL [--group G]... [--attributes JSON] [--password-stdin]
  bulkhead user get TENANT USER_ID
  bulkhead user list TENANT [--limit N] [--cursor C] [--email E]
  bulkhead user update TENANT USER_ID [--email E] [--status active|disabled] [--attributes JSON] [--password-stdin]
  bulkhead user delete TENANT USER_ID
Without --password-stdin, create answers with a temporary password, shown once.
Common flags: --addr, --token, --output json|table`

// readPassword reads one line from stdin (a password never goes on the
// command line, where ps and shell history would keep it).
func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("%w: --password-stdin: no password on stdin", errUsage)
	}
	return pw, nil
}

// validAttributes checks --attributes before anything is sent.
func validAttributes(attrs string) error {
	if attrs != "" && !json.Valid([]byte(attrs)) {
		return fmt.Errorf("%w: --attributes is not valid JSON", errUsage)
	}
	return nil
}

// userCreate runs bulkhead user create: with a password from stdin, or a
// temporary one in the answer, printed once.
func userCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("user create", userUsage)
	var (
		groups        stringList
		attrs         string
		passwordStdin bool
	)
	fs.Var(&groups, "group", "a group the user joins (repeatable)")
	fs.StringVar(&attrs, "attributes", "", "user attributes, a JSON object")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	pos, err := parseArgs(fs, args, 2, s.err)
	if err != nil {
		return err
	}
	if err := validAttributes(attrs); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	in := client.CreateUser{Email: pos[1], Groups: groups}
	if attrs != "" {
		in.Attributes = json.RawMessage(attrs)
	}
	if passwordStdin {
		if in.Password, err = readPassword(s.in); err != nil {
			return err
		}
	}
	u, err := c.CreateUser(ctx, pos[0], in)
	if err != nil {
		return err
	}
	return printUser(s.out, cf.output, u)
}

func userGet(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("user get", userUsage)
	pos, c, err := cf.open(fs, args, 2, s.err)
	if err != nil {
		return err
	}
	u, err := c.GetUser(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	return printUser(s.out, cf.output, u)
}

// userUpdate runs bulkhead user update: it sends only the fields given.
func userUpdate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("user update", userUsage)
	var (
		email, status, attrs string
		passwordStdin        bool
	)
	fs.StringVar(&email, "email", "", "new email")
	fs.StringVar(&status, "status", "", "active or disabled")
	fs.StringVar(&attrs, "attributes", "", "replace the attributes: a JSON object")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "read a new password from stdin")
	pos, err := parseArgs(fs, args, 2, s.err)
	if err != nil {
		return err
	}
	if err := validAttributes(attrs); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var p client.UserPatch
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "email":
			p.Email = &email
		case "status":
			p.Status = &status
		case "attributes":
			p.Attributes = json.RawMessage(attrs)
		}
	})
	if passwordStdin {
		pw, err := readPassword(s.in)
		if err != nil {
			return err
		}
		p.Password = &pw
	}
	u, err := c.UpdateUser(ctx, pos[0], pos[1], p)
	if err != nil {
		return err
	}
	return printUser(s.out, cf.output, u)
}

func userDelete(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("user delete", userUsage)
	pos, c, err := cf.open(fs, args, 2, s.err)
	if err != nil {
		return err
	}
	if err := c.DeleteUser(ctx, pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "deleted user %s\n", pos[1])
	return nil
}

func userList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("user list", userUsage)
	var lf listFlags
	var email string
	lf.register(fs)
	fs.StringVar(&email, "email", "", "only the user with this email")
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	page, err := c.ListUsers(ctx, pos[0], lf.limit, lf.cursor, email)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, page)
	}
	printUsers(s.out, page.Items)
	printMore(s.out, page.NextCursor)
	return nil
}

// printUser prints one user, and the temporary password when the answer
// holds it (once).
func printUser(w io.Writer, output string, u client.User) error {
	if output == "json" {
		return printJSON(w, u)
	}
	printUsers(w, []client.User{u})
	if u.TemporaryPassword != "" {
		fmt.Fprintf(w, "temporary password (shown once; the user must change it): %s\n", u.TemporaryPassword)
	}
	return nil
}

func printUsers(w io.Writer, us []client.User) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tSTATUS\tGROUPS\tCREATED")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.ID, u.Email, u.Status, strings.Join(u.Groups, ","), u.CreatedAt.Format(time.RFC3339))
	}
	tw.Flush()
}

const groupUsage = `Usage:
  bulkhead group create TENANT NAME [--description D]
  bulkhead group list TENANT
  bulkhead group add-member TENANT GROUP USER_ID
  bulkhead group remove-member TENANT GROUP USER_ID
Common flags: --addr, --token, --output json|table`

func groupCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("group create", groupUsage)
	var description string
	fs.StringVar(&description, "description", "", "what the group is for")
	pos, c, err := cf.open(fs, args, 2, s.err)
	if err != nil {
		return err
	}
	g, err := c.CreateGroup(ctx, pos[0], pos[1], description)
	if err != nil {
		return err
	}
	return printGroups(s.out, cf.output, []client.Group{g})
}

func groupList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("group list", groupUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	gs, err := c.ListGroups(ctx, pos[0])
	if err != nil {
		return err
	}
	return printGroups(s.out, cf.output, gs)
}

// groupMember returns the verb add-member (add) or remove-member.
func groupMember(add bool) func(context.Context, stdio, []string) error {
	path, verb := "group remove-member", "removed from"
	if add {
		path, verb = "group add-member", "added to"
	}
	return func(ctx context.Context, s stdio, args []string) error {
		fs, cf := clientFlagSet(path, groupUsage)
		pos, c, err := cf.open(fs, args, 3, s.err)
		if err != nil {
			return err
		}
		if err := c.SetMember(ctx, pos[0], pos[1], pos[2], add); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "user %s %s group %s\n", pos[2], verb, pos[1])
		return nil
	}
}

// printGroups prints groups; as JSON, {"items": [...]} (create's one too).
func printGroups(w io.Writer, output string, gs []client.Group) error {
	if output == "json" {
		return printJSON(w, map[string]any{"items": gs})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMEMBERS\tDESCRIPTION")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", g.Name, g.Members, g.Description)
	}
	return tw.Flush()
}
