package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const operatorUsage = `Usage:
  bulkhead operator create --email E --name N
  bulkhead operator list
  bulkhead operator disable OPERATOR_ID
  bulkhead operator delete OPERATOR_ID
Operators are the people who operate the platform; they sign in to the console with a
password and a TOTP code. create prints a temporary password (they choose their own at
first sign-in), the otpauth:// URL of their TOTP secret and recovery codes, all shown once.
Admin tokens (bha_…) remain for automation.
Common flags: --addr, --token, --output json|table`

// operatorFields are the required --email and --name of operator create.
type operatorFields struct {
	email, name string
}

func (f *operatorFields) check() error {
	if f.email == "" || f.name == "" {
		return fmt.Errorf("%w: --email E and --name N are required", errUsage)
	}
	return nil
}

// operatorCreate runs bulkhead operator create; the temporary password and
// the TOTP enrollment are printed once.
func operatorCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("operator create", operatorUsage)
	var f operatorFields
	fs.StringVar(&f.email, "email", "", "the operator's email, to sign in with (required)")
	fs.StringVar(&f.name, "name", "", "the operator's name (required)")
	_, c, err := cf.open(fs, args, 0, s.err, &f)
	if err != nil {
		return err
	}
	o, err := c.CreateOperator(ctx, client.CreateOperator{Email: f.email, Name: f.name})
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, o)
	}
	printOperators(s.out, []client.Operator{o.Operator})
	fmt.Fprintf(s.out, "temporary password (shown once): %s\n", o.Password)
	fmt.Fprintln(s.out, "The operator chooses their own password at first sign-in.")
	fmt.Fprintln(s.out, "TOTP is required: scan this URL with an authenticator app (shown once); the first code at sign-in confirms it:")
	fmt.Fprintf(s.out, "  %s\n", o.TOTP.OTPAuthURL)
	fmt.Fprintln(s.out, "recovery codes (shown once, each usable once):")
	for _, rc := range o.TOTP.RecoveryCodes {
		fmt.Fprintf(s.out, "  %s\n", rc)
	}
	return nil
}

func operatorList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("operator list", operatorUsage)
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	ops, err := c.ListOperators(ctx)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, map[string]any{"items": ops})
	}
	printOperators(s.out, ops)
	return nil
}

func operatorDisable(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("operator disable", operatorUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	o, err := c.DisableOperator(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, o)
	}
	printOperators(s.out, []client.Operator{o})
	return nil
}

func operatorDelete(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("operator delete", operatorUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if err := c.DeleteOperator(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "deleted operator %s\n", pos[0])
	return nil
}

func printOperators(w io.Writer, ops []client.Operator) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tSTATUS\tTOTP\tCREATED")
	for _, o := range ops {
		totp := "not confirmed"
		if o.TOTPConfirmed {
			totp = "confirmed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.ID, o.Email, o.Name, o.Status, totp, o.CreatedAt.Format("2006-01-02T15:04:05Z07:00"))
	}
	tw.Flush()
}
