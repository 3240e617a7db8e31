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

func userCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	sub, fs, cf, err := subcommand("user", userUsage, args)
	if err != nil {
		return err
	}
	var (
		groups                             stringList
		attrs, email, status, cursor, find string
		passwordStdin                      bool
		limit                              int
	)
	positional := 2
	switch sub {
	case "create":
		fs.Var(&groups, "group", "a group the user joins (repeatable)")
		fs.StringVar(&attrs, "attributes", "", "user attributes, a JSON object")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	case "update":
		fs.StringVar(&email, "email", "", "new email")
		fs.StringVar(&status, "status", "", "active or disabled")
		fs.StringVar(&attrs, "attributes", "", "replace the attributes: a JSON object")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read a new password from stdin")
	case "list":
		positional = 1
		fs.IntVar(&limit, "limit", 0, "page size (1-1000)")
		fs.StringVar(&cursor, "cursor", "", "cursor from a previous page")
		fs.StringVar(&find, "email", "", "only the user with this email")
	case "get", "delete":
	default:
		return fmt.Errorf("%w: unknown user command %q\n%s", errUsage, sub, userUsage)
	}
	pos, err := parseArgs(fs, args[1:], positional, stderr)
	if err != nil {
		return err
	}
	if attrs != "" && !json.Valid([]byte(attrs)) {
		return fmt.Errorf("%w: --attributes is not valid JSON", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var u client.User
	switch sub {
	case "create":
		in := client.CreateUser{Email: pos[1], Groups: groups}
		if attrs != "" {
			in.Attributes = json.RawMessage(attrs)
		}
		if passwordStdin {
			if in.Password, err = readPassword(stdin); err != nil {
				return err
			}
		}
		u, err = c.CreateUser(ctx, pos[0], in)
	case "get":
		u, err = c.GetUser(ctx, pos[0], pos[1])
	case "update":
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
			pw, err := readPassword(stdin)
			if err != nil {
				return err
			}
			p.Password = &pw
		}
		u, err = c.UpdateUser(ctx, pos[0], pos[1], p)
	case "delete":
		if err := c.DeleteUser(ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %s\n", pos[1])
		return nil
	case "list":
		page, err := c.ListUsers(ctx, pos[0], limit, cursor, find)
		if err != nil {
			return err
		}
		if cf.output == "json" {
			return printJSON(stdout, page)
		}
		printUsers(stdout, page.Items)
		printMore(stdout, page.NextCursor)
		return nil
	}
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(stdout, u)
	}
	printUsers(stdout, []client.User{u})
	if u.TemporaryPassword != "" {
		fmt.Fprintf(stdout, "temporary password (shown once; the user must change it): %s\n", u.TemporaryPassword)
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

func groupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, fs, cf, err := subcommand("group", groupUsage, args)
	if err != nil {
		return err
	}
	var description string
	positional, ok := map[string]int{"create": 2, "list": 1, "add-member": 3, "remove-member": 3}[sub]
	if !ok {
		return fmt.Errorf("%w: unknown group command %q\n%s", errUsage, sub, groupUsage)
	}
	if sub == "create" {
		fs.StringVar(&description, "description", "", "what the group is for")
	}
	pos, err := parseArgs(fs, args[1:], positional, stderr)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var gs []client.Group
	switch sub {
	case "create":
		g, err := c.CreateGroup(ctx, pos[0], pos[1], description)
		if err != nil {
			return err
		}
		gs = []client.Group{g}
	case "list":
		if gs, err = c.ListGroups(ctx, pos[0]); err != nil {
			return err
		}
	case "add-member", "remove-member":
		if err := c.SetMember(ctx, pos[0], pos[1], pos[2], sub == "add-member"); err != nil {
			return err
		}
		verb := map[bool]string{true: "added to", false: "removed from"}[sub == "add-member"]
		fmt.Fprintf(stdout, "user %s %s group %s\n", pos[2], verb, pos[1])
		return nil
	}
	if cf.output == "json" {
		return printJSON(stdout, map[string]any{"items": gs})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMEMBERS\tDESCRIPTION")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", g.Name, g.Members, g.Description)
	}
	tw.Flush()
	return nil
}
