// Command bulkhead is the tenant isolation layer for multi-tenant SaaS:
// the server (serve, init, migrate) and a client for its API (tenant, audit).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `bulkhead — the tenant isolation layer for multi-tenant SaaS

Usage:
  bulkhead serve [flags]        run the server (see bulkhead serve --help)
  bulkhead init [flags]         create the data directory, root key, database and admin token
  bulkhead migrate [flags]      migrate the database as its owner role and grant the serving role
                                (PostgreSQL; see bulkhead migrate --help)
  bulkhead nats-config [flags]  write an external NATS server's configuration and Bulkhead's
                                credentials there (see bulkhead nats-config --help)
  bulkhead version              print the version
  bulkhead tenant <command>     create|get|list|update|suspend|resume|delete tenants
  bulkhead audit <command>      list|verify the audit trail
  bulkhead user <command>       create|get|list|update|delete a tenant's users
  bulkhead group <command>      create|list|add-member|remove-member a tenant's groups
  bulkhead client <command>     create|list|delete OAuth clients (a tenant's, or platform-wide)
  bulkhead operator <command>   create|list|disable|delete the platform's operators (people; TOTP required)
  bulkhead policy <command>     list|get|create|link|replace|delete Cedar policies (a tenant's, or --global);
                                template|schema|store commands (see bulkhead policy --help)
  bulkhead authorize [flags]    ask a tenant's policies for a decision (see bulkhead authorize --help)
  bulkhead key <command>        create|list|get|rotate|schedule-deletion|cancel-deletion|import-params|import
                                a tenant's KMS keys (see bulkhead key --help)
  bulkhead kms <command>        encrypt|decrypt with a tenant's key, with a tenant credential (see bulkhead kms --help)
  bulkhead function <command>   create|list|invoke|delete WebAssembly functions (see bulkhead function --help)
  bulkhead connection <command> create|list|get|update|delete|grant|activity|alerts a tenant's connections to
                                third-party APIs, split tokens and grants (see bulkhead connection --help)
  bulkhead route <command>      add|list|remove the edge gateway's routes (see bulkhead route --help)
  bulkhead cluster <command>    add|list|remove|migrate|migrations the application's PostgreSQL clusters
                                and their migrations (see bulkhead cluster --help)
  bulkhead placement TENANT     where a tenant's application data lives
  bulkhead rls lint [flags]     check an application database's row-level security for cross-tenant
                                leaks (see bulkhead rls --help)
  bulkhead webhook <command>    create|list|get|delete|deliveries the operator's webhooks of Bulkhead's
                                own events (see bulkhead webhook --help)
  bulkhead partner <command>    create|list|get|delete|rotate-secret integration partners, and assume
                                (the partner's side: a token for a tenant that trusts it)
  bulkhead trust <command>      create|list|get|update|suspend|resume|delete|rotate-external-id a
                                tenant's trusts in partners (see bulkhead trust --help)
  bulkhead posture [flags]      the deployment's posture findings (risky settings), --scan to scan now
  bulkhead probe [flags]        test a running application's API for cross-tenant access, driven by its
                                OpenAPI document (see bulkhead probe --help)

bulkhead <group> --help prints a group's commands; bulkhead <group> <command>
--help adds that command's flags.
Client commands talk to a running server: BULKHEAD_ADDR (default
http://127.0.0.1:8080) and BULKHEAD_TOKEN (falls back to BULKHEAD_ADMIN_TOKEN),
or --addr and --token. --output json|table chooses the output format.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stdio is where a command reads its input and writes its output.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// A unit is what a command path names in the table: a verb, which parses
// its own flags and arguments (what follows the path) and does its work, or
// a group of verbs, whose usage "bulkhead <group> --help" prints.
type unit struct {
	run   func(ctx context.Context, s stdio, args []string) error
	usage string // a group's
}

// commands is the table from each command path to its unit. A verb's path
// is its group's path and its name; the words of a path come before any
// flag.
func commands() map[string]unit {
	policies, templates := policyVerbs(), templateVerbs()
	return map[string]unit{
		"serve":       {run: serve},
		"init":        {run: initData},
		"migrate":     {run: migrate},
		"nats-config": {run: natsConfig},
		"version":     {run: printVersion},
		"--version":   {run: printVersion},
		"-v":          {run: printVersion},
		"help":        {run: printUsage},
		// Not in the usage: the password hashing child that serve starts.
		"hash-worker": {run: hashWorker},
		"-h":          {run: printUsage},
		"--help":      {run: printUsage},

		"tenant":         {usage: tenantUsage},
		"tenant create":  {run: tenantCreate},
		"tenant get":     {run: tenantAction("get", (*client.Client).GetTenant)},
		"tenant list":    {run: tenantList},
		"tenant update":  {run: tenantUpdate},
		"tenant suspend": {run: tenantAction("suspend", (*client.Client).SuspendTenant)},
		"tenant resume":  {run: tenantAction("resume", (*client.Client).ResumeTenant)},
		"tenant delete":  {run: tenantAction("delete", (*client.Client).DeleteTenant)},
		"tenant migrate": {run: tenantMigrate},

		"domain":        {usage: domainUsage},
		"domain add":    {run: domainVerb("add", 1, addDomain)},
		"domain list":   {run: domainVerb("list", 0, listDomains)},
		"domain get":    {run: domainVerb("get", 1, getDomain)},
		"domain verify": {run: domainVerb("verify", 1, verifyDomain)},
		"domain delete": {run: domainVerb("delete", 1, deleteDomain)},

		"certs":         {usage: certsUsage},
		"certs list":    {run: certsList},
		"certs reissue": {run: certsReissue},

		"audit":        {usage: auditUsage},
		"audit list":   {run: auditList},
		"audit verify": {run: auditVerify},

		"user":        {usage: userUsage},
		"user create": {run: userCreate},
		"user get":    {run: userGet},
		"user list":   {run: userList},
		"user update": {run: userUpdate},
		"user delete": {run: userDelete},

		"group":               {usage: groupUsage},
		"group create":        {run: groupCreate},
		"group list":          {run: groupList},
		"group add-member":    {run: groupMember(true)},
		"group remove-member": {run: groupMember(false)},

		"client":        {usage: clientUsage},
		"client create": {run: clientCreate},
		"client list":   {run: clientList},
		"client delete": {run: clientDelete},

		"operator":         {usage: operatorUsage},
		"operator create":  {run: operatorCreate},
		"operator list":    {run: operatorList},
		"operator disable": {run: operatorDisable},
		"operator delete":  {run: operatorDelete},

		"policy":         {usage: policyUsage},
		"policy list":    {run: policies.list},
		"policy get":     {run: policies.get},
		"policy create":  {run: policies.create("create")},
		"policy link":    {run: policies.create("link")},
		"policy replace": {run: policies.replace},
		"policy delete":  {run: policies.delete},

		"policy template":         {usage: templateUsage},
		"policy template list":    {run: templates.list},
		"policy template get":     {run: templates.get},
		"policy template create":  {run: templates.create("create")},
		"policy template replace": {run: templates.replace},
		"policy template delete":  {run: templates.delete},

		"policy schema":     {usage: schemaUsage},
		"policy schema get": {run: schemaGet},
		"policy schema put": {run: schemaPut},

		"policy store":        {usage: storeUsage},
		"policy store get":    {run: storeGet},
		"policy store update": {run: storeUpdate},

		"authorize": {run: authorize},

		"key":                   {usage: keyUsage},
		"key create":            {run: keyCreate},
		"key list":              {run: keyList},
		"key get":               {run: keyAction("get", (*client.Client).GetKey)},
		"key rotate":            {run: keyAction("rotate", (*client.Client).RotateKey)},
		"key schedule-deletion": {run: keyScheduleDeletion},
		"key cancel-deletion":   {run: keyAction("cancel-deletion", (*client.Client).CancelKeyDeletion)},
		"key import-params":     {run: keyImportParams},
		"key import":            {run: keyImport},

		"kms":         {usage: kmsUsage},
		"kms encrypt": {run: kmsEncrypt},
		"kms decrypt": {run: kmsDecrypt},

		"function":        {usage: functionUsage},
		"function create": {run: functionCreate},
		"function list":   {run: functionList},
		"function invoke": {run: functionInvoke},
		"function delete": {run: functionDelete},

		"connection":          {usage: connectionUsage},
		"connection create":   {run: connectionCreate},
		"connection list":     {run: connectionList},
		"connection get":      {run: connectionGet},
		"connection update":   {run: connectionUpdate},
		"connection delete":   {run: connectionDelete},
		"connection activity": {run: connectionActivity},
		"connection alerts":   {run: connectionAlerts},

		"connection grant":         {usage: grantUsage},
		"connection grant create":  {run: grantIssue("create")},
		"connection grant list":    {run: grantList},
		"connection grant rotate":  {run: grantIssue("rotate")},
		"connection grant suspend": {run: grantSuspend},
		"connection grant resume":  {run: grantResume},
		"connection grant delete":  {run: grantDelete},

		"route":              {usage: routeUsage},
		"route add":          {run: routeAdd},
		"route list":         {run: routeList},
		"route remove":       {run: routeRemove},
		"cluster":            {usage: clusterUsage},
		"cluster add":        {run: clusterAdd},
		"cluster list":       {run: clusterList},
		"cluster remove":     {run: clusterRemove},
		"cluster migrate":    {run: clusterMigrate},
		"cluster migrations": {run: clusterMigrations},
		"placement":          {run: placementGet},
		"rls":                {usage: rlsUsage},
		"rls lint":           {run: rlsLint},

		"webhook":            {usage: webhookUsage},
		"webhook create":     {run: webhookCreate},
		"webhook list":       {run: webhookList},
		"webhook get":        {run: webhookGet},
		"webhook delete":     {run: webhookDelete},
		"webhook deliveries": {run: webhookDeliveries},

		"partner":                  {usage: partnerUsage},
		"partner create":           {run: partnerCreate},
		"partner list":             {run: partnerList},
		"partner get":              {run: partnerGet},
		"partner delete":           {run: partnerDelete},
		"partner rotate-secret":    {run: partnerRotateSecret},
		"partner assume":           {run: partnerAssume},
		"trust":                    {usage: trustUsage},
		"trust create":             {run: trustCreate},
		"trust list":               {run: trustList},
		"trust get":                {run: trustGet},
		"trust update":             {run: trustUpdate},
		"trust suspend":            {run: trustAct("suspend")},
		"trust resume":             {run: trustAct("resume")},
		"trust delete":             {run: trustAct("delete")},
		"trust rotate-external-id": {run: trustAct("rotate-external-id")},
		"posture":                  {run: postureList},
		"probe":                    {run: probeRun},
	}
}

// errUsage marks an error in how the command was called (exit status 2).
var errUsage = errors.New("usage")

// errSilent is returned when the command already explained its failure.
var errSilent = errors.New("failed")

// errSilentOK ends a command successfully with nothing more to say (--help).
var errSilentOK = errors.New("done")

// errDenied is authorize --exit-code's answer to a deny (exit status 3).
var errDenied = errors.New("denied")

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	table := commands()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if len(args) > 1 && isHelp(args[0]) {
		// "bulkhead help tenant create" is "bulkhead tenant create --help".
		args = append(slices.Clone(args[1:]), "--help")
	}
	if _, ok := table[args[0]]; !ok {
		fmt.Fprintf(stderr, "bulkhead: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	err := dispatch(ctx, table, stdio{stdin, stdout, stderr}, args)
	switch {
	case err == nil, errors.Is(err, errSilentOK):
		return 0
	case errors.Is(err, errDenied):
		return 3 // authorize --exit-code and a deny
	case errors.Is(err, errUsage), errors.Is(err, errCannotCheck):
		fmt.Fprintln(stderr, "bulkhead:", err)
		return 2
	case errors.Is(err, errSilent):
		return 1
	default:
		fmt.Fprintln(stderr, "bulkhead:", err)
		return 1
	}
}

// dispatch runs the verb that args name: it follows args[0] (a path of the
// table) through groups, word by word, to a verb, and runs it with the
// words after its path. A group's help asked for is its usage, on stdout.
func dispatch(ctx context.Context, table map[string]unit, s stdio, args []string) error {
	path := args[0]
	for i := 1; ; i++ {
		u := table[path]
		switch {
		case u.run != nil:
			return u.run(ctx, s, args[i:])
		case i == len(args):
			return fmt.Errorf("%w: %s needs a command\n%s", errUsage, path, u.usage)
		case isHelp(args[i]):
			fmt.Fprintln(s.out, u.usage)
			return nil
		}
		next := path + " " + args[i]
		if _, ok := table[next]; !ok {
			return fmt.Errorf("%w: unknown %s command %q\n%s", errUsage, path, args[i], u.usage)
		}
		path = next
	}
}

// isHelp reports whether a word after a group asks for its usage.
func isHelp(word string) bool {
	return word == "help" || word == "-h" || word == "--help"
}

func printVersion(_ context.Context, s stdio, _ []string) error {
	fmt.Fprintln(s.out, "bulkhead", version)
	return nil
}

func printUsage(_ context.Context, s stdio, _ []string) error {
	fmt.Fprint(s.out, usage)
	return nil
}
